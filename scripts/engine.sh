#!/usr/bin/env bash
# The Docker engine, the local registry (standing in for ECR) and the offline base image that the
# docker-mode tests and a local flock in docker mode need. Idempotent: what already answers is
# left alone.
#
#   scripts/engine.sh up          start dockerd and the registry (installing them with apt-get
#                                 when missing and we are root on Debian); exit 3 if impossible
#   scripts/engine.sh base-image  build shepard-base:bookworm with debootstrap + docker import,
#                                 once: reused while its recipe (this file's BASE_* lines) is unchanged
#   scripts/engine.sh status      print what answers
#
# Nothing here reaches Docker Hub: the base image is built from Debian's packages.
set -euo pipefail

STATE=${SHEPARD_ENGINE_DIR:-/var/tmp/shepard-engine}
REGISTRY_ADDR=${SHEPARD_REGISTRY:-127.0.0.1:5000}
BASE_IMAGE=${SHEPARD_BASE_IMAGE:-shepard-base:bookworm}
BASE_SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
DOCKER=(docker)

log() { printf 'engine: %s\n' "$*" >&2; }

engine_answers() { "${DOCKER[@]}" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
registry_answers() { python3 - "$REGISTRY_ADDR" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2).read()
PY
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! can_install; then
    log "missing ${missing[*]} and not root on Debian: install them, or run the docker tests elsewhere"
    return 3
  fi
  log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >"$STATE/apt.log" 2>&1 \
    || { apt-get update -qq >>"$STATE/apt.log" 2>&1 && apt-get install -y -qq "${missing[@]}" >>"$STATE/apt.log" 2>&1; } \
    || { log "apt-get failed: see $STATE/apt.log"; return 3; }
}

start_engine() {
  engine_answers && return 0
  command -v dockerd >/dev/null || return 3
  log "starting dockerd (log: $STATE/dockerd.log)"
  # setsid: the engine outlives this script and the make target that started it.
  setsid dockerd --host=unix:///var/run/docker.sock >"$STATE/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    engine_answers && { log "dockerd answers"; return 0; }
    sleep 0.5
  done
  log "dockerd did not answer in 30 s; last lines of its log:"
  tail -n 20 "$STATE/dockerd.log" >&2 || true
  return 3
}

start_registry() {
  registry_answers && return 0
  command -v docker-registry >/dev/null || return 3
  cat >"$STATE/registry.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $STATE/registry}
  delete: {enabled: true}
http: {addr: $REGISTRY_ADDR}
YAML
  log "starting the registry on $REGISTRY_ADDR (log: $STATE/registry.log)"
  setsid docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 < /dev/null &
  for _ in $(seq 1 40); do
    registry_answers && { log "registry answers"; return 0; }
    sleep 0.25
  done
  log "the registry did not answer; see $STATE/registry.log"
  return 3
}

base_recipe() { printf '%s\n' "$BASE_SUITE" "$BASE_PACKAGES" "minbase"; }

base_image_current() {
  local want=$1 have
  have=$("${DOCKER[@]}" image inspect --format '{{index .Config.Labels "shepard.recipe"}}' "$BASE_IMAGE" 2>/dev/null || true)
  [ "$have" = "$want" ]
}

base_image() {
  local want root
  want=$(base_recipe | sha256sum | cut -c1-16)
  base_image_current "$want" && { log "$BASE_IMAGE is up to date (recipe $want)"; return 0; }
  command -v debootstrap >/dev/null || install_packages
  # One build at a time: a second caller waits, then finds the image built.
  exec 9>"$STATE/base-image.lock"
  flock 9
  base_image_current "$want" && { log "$BASE_IMAGE was built meanwhile (recipe $want)"; return 0; }
  root=$(mktemp -d "$STATE/rootfs.XXXXXX")
  # debootstrap mounts /proc and /sys inside the new root; a failed run leaves them mounted.
  trap 'umount -R "$root/proc" "$root/sys" 2>/dev/null || true; rm -rf --one-file-system "$root"' EXIT
  log "building $BASE_IMAGE with debootstrap ($BASE_SUITE, $BASE_PACKAGES): about a minute"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" "$root" >"$STATE/debootstrap.log" 2>&1; then
    log "debootstrap failed; last lines of $STATE/debootstrap.log:"
    tail -n 15 "$STATE/debootstrap.log" >&2 || true
    return 3
  fi
  umount -R "$root/proc" "$root/sys" 2>/dev/null || true
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | "${DOCKER[@]}" import \
    --change "LABEL shepard.recipe=$want" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  log "built $BASE_IMAGE"
}

mkdir -p "$STATE"
case "${1:-up}" in
  up)
    install_packages
    start_engine
    start_registry
    ;;
  base-image)
    engine_answers || { log "no Docker engine answers: run scripts/engine.sh up first"; exit 3; }
    base_image
    ;;
  status)
    engine_answers && echo "engine: $("${DOCKER[@]}" version --format '{{.Server.Version}}')" || echo "engine: none"
    registry_answers && echo "registry: $REGISTRY_ADDR" || echo "registry: none"
    "${DOCKER[@]}" image inspect "$BASE_IMAGE" >/dev/null 2>&1 && echo "base image: $BASE_IMAGE" || echo "base image: none"
    ;;
  *)
    echo "usage: $0 up|base-image|status" >&2
    exit 2
    ;;
esac
