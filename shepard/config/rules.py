"""Rules that look at more than one key, and the derived values they settle.

Runs after :mod:`shepard.config.convert` on a config built from the file (bad values already
replaced by defaults). Each rule adds an error or a warning at the key path a user must edit;
then :func:`resolve` fills in what the flock derives (subnets, zones, compute environments, state
backend defaults) so the result needs no further interpretation.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Iterable
from typing import Any

from shepard.config import ec2
from shepard.config.model import (
    BatchConfig,
    ComputeEnvironmentConfig,
    FlockConfig,
    NetworkConfig,
    NetworkMode,
    StateConfig,
)
from shepard.config.source import Document, Issue, Path_, format_path

# The seed's rule of thumb: a job can use about 90% of an instance's memory (the ECS agent and
# the OS keep the rest); a job asking for more is never placed.
USABLE_MEMORY_FRACTION = 0.9
IAM_POLICY_MAX_CHARS = 6144  # managed policy size limit, whitespace excluded
IAM_VERSIONS = ("2012-10-17", "2008-10-17")
MAX_COMPUTE_ENVIRONMENTS = 3  # a Batch job queue takes at most 3
# terraform/modules/network: subnets not given are cidrsubnet(vpc_cidr, 4, i), private ones
# blocks 0 to 7 and public ones 8 to 15. AWS keeps 5 addresses of a subnet; EFS mount targets,
# Lustre and the NAT gateway take a few more. A sheep counts 2 vCPUs (the smallest instances).
TERRAFORM_SUBNET_NEWBITS = 4
TERRAFORM_SUBNET_START = {"private": 0, "public": 8}
SUBNET_RESERVED_ADDRESSES = 5 + 8
VCPUS_PER_SHEEP = 2
SHORTHAND_KEYS = (
    "instance_types",
    "compute_environment_type",
    "spot_bid_price_percent",
    "compute_environment_name",
)


class Rules:
    def __init__(
        self, config: FlockConfig, given: set[Path_], doc: Document, invalid: set[Path_]
    ) -> None:
        self.config = config
        self.given = given
        self.invalid = invalid  # key paths whose value was rejected (and replaced by a default)
        self.doc = doc
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []

    def error(self, path: Path_, message: str) -> None:
        self.errors.append(Issue(path, message, self.doc.line_of(path)))

    def warn(self, path: Path_, message: str) -> None:
        self.warnings.append(Issue(path, message, self.doc.line_of(path)))

    def is_given(self, *path: str | int) -> bool:
        return tuple(path) in self.given

    def unreported(self, *path: str | int) -> bool:
        """Not set by the file (a value that was set but rejected is reported already)."""
        return tuple(path) not in self.invalid

    def run(self) -> FlockConfig:
        self.check_target()
        self.check_tags()
        environments = self.check_batch()
        self.check_memory(environments)
        self.check_storage()
        network = self.check_network(environments)
        state = self.check_state()
        self.check_lambda()
        self.check_scheduler()
        self.check_policy()
        self.check_spot(environments)
        self.check_oom(environments)
        batch = dataclasses.replace(
            self.config.batch,
            compute_environments=environments,
            compute_environment_type=_shorthand_type(self.config.batch, self.given),
        )
        return dataclasses.replace(self.config, batch=batch, network=network, state=state)

    # -- general ---------------------------------------------------------------------------------

    def check_target(self) -> None:
        c = self.config
        if c.target == "aws" and any(p[0] == "local" for p in self.given):
            self.warn(("local",), "ignored: these settings apply only with target: local")
        if c.target == "local" and c.lustre.create:
            self.warn(
                ("lustre", "create"),
                "the emulator cannot create FSx for Lustre; the local flock will not get one",
            )

    def check_tags(self) -> None:
        for key, value in self.config.resource_tags.items():
            path: Path_ = ("resource_tags", key)
            if key.lower().startswith("aws:"):
                self.error(path, "tag keys starting with aws: are reserved by AWS; rename the tag")
            elif len(key) > 128:
                self.error(path, "tag keys may be at most 128 characters")
            if len(value) > 256:
                self.error(path, "tag values may be at most 256 characters")
        if len(self.config.resource_tags) > 45:
            self.error(("resource_tags",), "at most 45 tags (AWS allows 50; shepard adds some)")

    # -- batch -----------------------------------------------------------------------------------

    def check_batch(self) -> tuple[ComputeEnvironmentConfig, ...]:
        b = self.config.batch
        if b.desired_cpu > b.max_cpu:
            self.error(
                ("batch", "desired_cpu"),
                f"a job asks for {b.desired_cpu} vCPUs but batch.max_cpu is {b.max_cpu}, so no "
                "job could ever run; raise max_cpu or lower desired_cpu",
            )
        if b.compute_environments:
            for key in SHORTHAND_KEYS:
                if self.is_given("batch", key):
                    self.error(
                        ("batch", key),
                        "not used together with batch.compute_environments; set it on each "
                        "environment there instead",
                    )
            environments = b.compute_environments
            base: Path_ = ("batch", "compute_environments")
            if len(environments) > MAX_COMPUTE_ENVIRONMENTS:
                self.error(
                    base,
                    f"{len(environments)} compute environments, but a Batch job queue takes at "
                    f"most {MAX_COMPUTE_ENVIRONMENTS}; merge some (an environment takes several "
                    "instance types)",
                )
            paths = [(*base, i) for i in range(len(environments))]
        elif self.is_given("batch", "compute_environments"):
            self.error(("batch", "compute_environments"), "list at least one compute environment")
            return ()
        else:
            if not b.instance_types:
                if not self.unreported("batch", "instance_types"):
                    return ()
                self.error(
                    ("batch", "instance_types"),
                    "required: list instance types, families or optimal (for example "
                    "[c5.xlarge]), or give batch.compute_environments",
                )
                return ()
            kind = _shorthand_type(b, self.given)
            if (
                b.spot_bid_price_percent is not None
                and self.is_given("batch", "compute_environment_type")
                and kind == "ec2"
            ):
                self.error(
                    ("batch", "spot_bid_price_percent"),
                    "a bid percentage makes the environment Spot, but compute_environment_type "
                    "is ec2; set compute_environment_type: spot or remove the bid",
                )
            environments = (
                ComputeEnvironmentConfig(
                    id="default",
                    instance_types=b.instance_types,
                    type=kind,
                    spot_bid_price_percent=b.spot_bid_price_percent if kind == "spot" else None,
                    gpu=b.gpus > 0 or any(ec2.is_gpu(t) for t in b.instance_types),
                    name=b.compute_environment_name,
                ),
            )
            paths = [("batch",)]
        seen: dict[str, Path_] = {}
        for env, path in zip(environments, paths, strict=True):
            self.check_environment(env, path, seen)
        if b.gpus > 0 and not any(env.gpu for env in environments):
            self.error(
                ("batch", "gpus"),
                "jobs ask for GPUs but no compute environment has gpu: true; add a GPU "
                "environment (for example instance_types: [g4dn.xlarge], gpu: true)",
            )
        elif b.gpus > 0:
            for env, path in zip(environments, paths, strict=True):
                if not env.gpu:
                    self.warn(path, f"jobs ask for GPUs, so they never run in {env.id!r}")
        return environments

    def check_environment(
        self, env: ComputeEnvironmentConfig, path: Path_, seen: dict[str, Path_]
    ) -> None:
        shorthand = path == ("batch",)
        types_path = (*path, "instance_types")
        if not shorthand:
            if env.id in seen and env.id:
                self.error(
                    (*path, "id"), f"{env.id!r} is already the id of {format_path(seen[env.id])}"
                )
            seen[env.id] = path
            if not env.instance_types and self.is_given(*types_path):
                self.error(types_path, "list at least one instance type")
            if env.max_cpu is not None and env.min_cpu > env.max_cpu:
                self.error((*path, "min_cpu"), "more than max_cpu; lower min_cpu")
            if env.type == "ec2" and env.spot_bid_price_percent is not None:
                self.error(
                    (*path, "spot_bid_price_percent"), "only for type: spot; remove it or use spot"
                )
        for index, instance_type in enumerate(env.instance_types):
            problem = ec2.check_instance_type(instance_type)
            if problem:
                self.error((*types_path, index), problem)
        if (
            env.gpu
            and env.instance_types
            and not any(ec2.is_gpu(t) or t in ec2.BATCH_KEYWORDS for t in env.instance_types)
        ):
            where = (*path, "gpu") if not shorthand else ("batch", "gpus")
            self.warn(where, "none of the instance types has GPUs; GPU jobs will never start")

    def check_memory(self, environments: Iterable[ComputeEnvironmentConfig]) -> None:
        b = self.config.batch
        known: dict[str, int] = {}
        unknown = False
        for env in environments:
            for instance_type in env.instance_types:
                mib = ec2.memory_mib(instance_type)
                if mib is None:
                    unknown = True
                else:
                    known[instance_type] = mib
        too_small = {t: m for t, m in known.items() if b.desired_ram > m * USABLE_MEMORY_FRACTION}
        if not too_small:
            return
        listed = ", ".join(
            f"{t} ({int(m * USABLE_MEMORY_FRACTION)} of {m} MiB)" for t, m in too_small.items()
        )
        path: Path_ = ("batch", "desired_ram")
        if len(too_small) == len(known) and not unknown:
            self.warn(
                path,
                f"{b.desired_ram} MiB is more than ~90% of the memory of every instance type "
                f"({listed}); jobs will never start. Lower desired_ram or add larger instances",
            )
        else:
            self.warn(
                path,
                f"{b.desired_ram} MiB is more than ~90% of the memory of {listed}; "
                "jobs will never start on those",
            )

    # -- storage ---------------------------------------------------------------------------------

    def check_storage(self) -> None:
        lustre = self.config.lustre
        capacity = lustre.storage_capacity
        if capacity != 1200 and capacity % 2400 != 0:
            self.error(
                ("lustre", "storage_capacity"),
                f"{capacity} GiB is not a Lustre size; use 1200 or a multiple of 2400 "
                f"(for example {max(2400, round(capacity / 2400) * 2400)})",
            )
        if lustre.bucket_name and lustre.existing_bucket:
            self.error(
                ("lustre", "existing_bucket"),
                "give either bucket_name (a new bucket) or existing_bucket, not both",
            )

    # -- network ---------------------------------------------------------------------------------

    def check_network(self, environments: Iterable[ComputeEnvironmentConfig]) -> NetworkConfig:
        n = self.network_mode(self.config.network)
        b = self.config.batch
        vcpus = sum(e.max_cpu if e.max_cpu is not None else b.max_cpu for e in environments)
        max_sheep = -(-vcpus // VCPUS_PER_SHEEP)
        create = n.create_new_vpc
        if n.existing_vpc:
            if self.is_given("network", "create_new_vpc") and n.create_new_vpc:
                self.error(
                    ("network", "create_new_vpc"),
                    "true, but network.existing_vpc is set; set create_new_vpc: false to use "
                    "the existing VPC, or remove existing_vpc",
                )
            create = False
        # Not given: terraform/flock looks up the first 2 zones that exist; one subnet per zone.
        zones = n.availability_zones
        zone_count = len(zones) or 2
        for index, zone in enumerate(n.availability_zones):
            if not zone.startswith(self.config.region):
                self.error(
                    ("network", "availability_zones", index),
                    f"{zone} is not in region {self.config.region}",
                )
        if len(set(zones)) != len(zones):
            self.error(("network", "availability_zones"), "each zone may be listed once")
        if not create:
            if not n.existing_vpc and self.unreported("network", "existing_vpc"):
                self.error(
                    ("network", "existing_vpc"),
                    "required when create_new_vpc is false: the id of the VPC to use",
                )
            if not n.existing_subnet_ids and self.unreported("network", "existing_subnet_ids"):
                self.error(
                    ("network", "existing_subnet_ids"),
                    "an existing VPC needs its subnets; list at least one subnet id",
                )
        else:
            for key in ("existing_subnet_ids", "existing_vpc_cidr"):
                if self.is_given("network", key):
                    self.warn(("network", key), "ignored: the flock creates its own VPC")
        public, private = (
            self.subnets(n, zone_count, max_sheep)
            if create
            else (n.public_subnet_cidrs, n.private_subnet_cidrs)
        )
        if (
            n.allow_ssh
            and not n.cidr_to_allow_ssh_access_to
            and self.unreported("network", "cidr_to_allow_ssh_access_to")
        ):
            self.error(
                ("network", "cidr_to_allow_ssh_access_to"),
                "required when allow_ssh is true: the CIDR allowed to reach port 22",
            )
        if n.cidr_to_allow_ssh_access_to:
            if not n.allow_ssh:
                self.warn(("network", "cidr_to_allow_ssh_access_to"), "ignored: allow_ssh is false")
            elif n.cidr_to_allow_ssh_access_to.endswith("/0"):
                self.warn(
                    ("network", "cidr_to_allow_ssh_access_to"),
                    "opens SSH to the whole internet; narrow it to your own address range",
                )
        return dataclasses.replace(
            n,
            create_new_vpc=create,
            environment_name=n.environment_name or self.config.name,
            availability_zones=tuple(zones),
            public_subnet_cidrs=tuple(public),
            private_subnet_cidrs=tuple(private),
        )

    def network_mode(self, n: NetworkConfig) -> NetworkConfig:
        """Resolve ``mode`` (docs/decisions/0009-network-mode.md): given, or the seed's
        ``make_subnets_public`` (false asks for private sheep behind NAT), else ``public``."""
        seed_given = self.is_given("network", "make_subnets_public")
        seed_mode: NetworkMode = "public" if n.make_subnets_public else "nat"
        mode: NetworkMode | None = n.mode
        if mode is None:
            mode = seed_mode if seed_given else "public"
        elif seed_given and n.make_subnets_public != (mode == "public"):
            self.error(
                ("network", "make_subnets_public"),
                f"{str(n.make_subnets_public).lower()} contradicts network.mode {mode}; "
                "remove make_subnets_public (mode says it all)",
            )
        if self.is_given("network", "mode") and (n.existing_vpc or not n.create_new_vpc):
            self.warn(
                ("network", "mode"),
                "ignored: an existing VPC keeps its own routes, NAT and endpoints",
            )
        return dataclasses.replace(n, mode=mode, make_subnets_public=mode == "public")

    def subnets(self, n: NetworkConfig, count: int, max_sheep: int) -> tuple[list[str], list[str]]:
        """Check the given subnets and derive those asked for by a mask, one subnet per zone.

        A role with neither CIDRs nor a mask is left to Terraform (an empty list, rendered as
        null): terraform/modules/network carves one sixteenth of the VPC per zone for it. Those
        blocks are computed here only to check that the other subnets miss them.
        """
        vpc = ipaddress.IPv4Network(n.vpc_cidr)
        unchanged = list(n.public_subnet_cidrs), list(n.private_subnet_cidrs)
        if ("network", "vpc_cidr") in self.invalid:
            return unchanged
        if not 16 <= vpc.prefixlen <= 28:
            self.error(("network", "vpc_cidr"), "AWS VPCs are /16 to /28; use for example /16")
            return unchanged
        roles = ("public", "private")
        given = {role: tuple(getattr(n, f"{role}_subnet_cidrs")) for role in roles}
        masks: dict[str, int | None] = {role: getattr(n, f"vpc_cidr_mask_{role}") for role in roles}
        left = [role for role in roles if not given[role] and masks[role] is None]
        taken: list[tuple[ipaddress.IPv4Network, str]] = []
        if left and vpc.prefixlen + TERRAFORM_SUBNET_NEWBITS > 28:
            self.error(
                ("network", "vpc_cidr"),
                f"{vpc} is too small for the subnets Terraform carves (one sixteenth of it per "
                "zone, and AWS subnets are /28 or wider); use a /24 or wider VPC, or give "
                f"network.{left[0]}_subnet_cidrs",
            )
            return unchanged
        carved: dict[str, list[str]] = {}
        for role in left:
            blocks = list(vpc.subnets(prefixlen_diff=TERRAFORM_SUBNET_NEWBITS))
            first = TERRAFORM_SUBNET_START[role]
            mine = blocks[first:][:count]
            carved[role] = [str(block) for block in mine]
            taken += [(block, f"Terraform's {role} subnet") for block in mine]
        result: dict[str, list[str]] = {role: [] for role in roles}
        for role in roles:
            key = f"{role}_subnet_cidrs"
            if not given[role]:
                continue
            if len(given[role]) != count:
                self.error(
                    ("network", key),
                    f"{len(given[role])} subnets for {count} availability zones; give one per zone",
                )
            for index, text in enumerate(given[role]):
                net = ipaddress.IPv4Network(text)
                path: Path_ = ("network", key, index)
                if not net.subnet_of(vpc):
                    self.error(path, f"{text} is not inside network.vpc_cidr {vpc}")
                elif clash := next((t for t in taken if t[0].overlaps(net)), None):
                    self.error(path, f"{text} overlaps {clash[1]} {clash[0]}")
                taken.append((net, "the subnet"))
            result[role] = list(given[role])
        for role in roles:
            mask = masks[role]
            if given[role] or mask is None:
                continue
            if mask < vpc.prefixlen:
                self.error(
                    ("network", f"vpc_cidr_mask_{role}"),
                    f"/{mask} subnets do not fit in network.vpc_cidr {vpc}",
                )
                continue
            free = (
                s for s in vpc.subnets(new_prefix=mask) if not any(s.overlaps(t) for t, _ in taken)
            )
            derived = [s for _, s in zip(range(count), free, strict=False)]
            if len(derived) < count:
                self.error(
                    ("network", "vpc_cidr"),
                    f"{vpc} has no room for {count} {role} /{mask} subnets; widen it",
                )
            taken.extend((s, "the subnet") for s in derived)
            result[role] = [str(s) for s in derived]
        sheep = "public" if n.make_subnets_public else "private"
        if sheep in carved:
            self.check_room(sheep, carved[sheep], "vpc_cidr", max_sheep)
        elif given[sheep]:
            self.check_room(sheep, result[sheep], f"{sheep}_subnet_cidrs", max_sheep)
        else:
            self.check_room(sheep, result[sheep], f"vpc_cidr_mask_{sheep}", max_sheep)
        return result["public"], result["private"]

    def check_room(self, role: str, cidrs: list[str], key: str, max_sheep: int) -> None:
        """The sheep's subnets must hold every sheep the compute environments may start (the
        check terraform/modules/network makes at plan time, said here first)."""
        small = [
            c
            for c in cidrs
            if ipaddress.IPv4Network(c).num_addresses - SUBNET_RESERVED_ADDRESSES < max_sheep
        ]
        if not small:
            return
        fix = (
            "widen network.vpc_cidr, or lower batch.max_cpu"
            if key == "vpc_cidr"
            else f"give larger ones, or leave out {role}_subnet_cidrs and vpc_cidr_mask_{role} "
            "to let Terraform size them"
        )
        self.error(
            ("network", key),
            f"the {role} subnets {', '.join(small)} hold fewer addresses than the {max_sheep} "
            f"sheep the compute environments may start (the sheep run there); {fix}",
        )

    # -- state, lambda, policy -------------------------------------------------------------------

    def check_state(self) -> StateConfig:
        s = self.config.state
        needs = {"s3": ("bucket",), "cloud": ("organization", "workspace"), "local": ()}
        owner = {
            "bucket": "s3",
            "key": "s3",
            "region": "s3",
            "dynamodb_table": "s3",
            "organization": "cloud",
            "workspace": "cloud",
            "hostname": "cloud",
        }
        for key, backend in owner.items():
            if backend != s.backend and self.is_given("state", key):
                self.error(
                    ("state", key),
                    f"only used with backend: {backend}; remove it or set state.backend: {backend}",
                )
        for key in needs[s.backend]:
            if not getattr(s, key) and self.unreported("state", key):
                self.error(("state", key), f"required with backend: {s.backend}")
        if s.backend == "s3":
            return dataclasses.replace(
                s,
                key=s.key or f"shepard/{self.config.name}/terraform.tfstate",
                region=s.region or self.config.region,
            )
        if s.backend == "cloud":
            return dataclasses.replace(s, hostname=s.hostname or "app.terraform.io")
        return s

    def check_scheduler(self) -> None:
        s = self.config.scheduler
        if s.batch_size > 10 and s.batching_window_seconds < 1:
            self.error(
                ("scheduler", "batching_window_seconds"),
                f"is 0 with batch_size {s.batch_size}; Lambda takes more than 10 SQS messages "
                "at once only with a batching window. Use 1 or more, or batch_size 10 or less",
            )

    def check_lambda(self) -> None:
        timeout = self.config.lambda_.timeout_seconds
        visibility = self.config.sqs.visibility_timeout_seconds
        if visibility < timeout:
            self.error(
                ("sqs", "visibility_timeout_seconds"),
                f"{visibility} s is shorter than lambda.timeout_seconds ({timeout} s); SQS "
                "would hand an event to a second scheduler while the first still works on it. "
                f"Use at least {timeout}",
            )

    def check_policy(self) -> None:
        policy = self.config.extra_iam_policy
        if policy is None:
            return
        base: Path_ = ("extra_iam_policy",)
        version = policy.get("Version")
        if version is not None and version not in IAM_VERSIONS:
            self.error((*base, "Version"), f"must be {IAM_VERSIONS[0]}")
        statements: Any = policy.get("Statement")
        if statements is None:
            self.error(
                (*base, "Statement"),
                "required: an IAM policy document needs a Statement list "
                "(Effect, Action, Resource)",
            )
            return
        items = [statements] if isinstance(statements, dict) else statements
        if not isinstance(items, list):
            self.error((*base, "Statement"), "must be a list of statements")
            return
        for index, statement in enumerate(items):
            path = (
                (*base, "Statement", index)
                if isinstance(statements, list)
                else (
                    *base,
                    "Statement",
                )
            )
            if not isinstance(statement, dict):
                self.error(path, "a statement must be a mapping (Effect, Action, Resource)")
                continue
            if statement.get("Effect") not in ("Allow", "Deny"):
                self.error((*path, "Effect"), "must be Allow or Deny")
            if "Action" not in statement and "NotAction" not in statement:
                self.error((*path, "Action"), "required: the actions the statement allows")
        size = len(json.dumps(policy, separators=(",", ":")))
        if size > IAM_POLICY_MAX_CHARS:
            self.error(base, f"{size} characters; IAM policies may have {IAM_POLICY_MAX_CHARS}")

    # -- spot ladder and out-of-memory retries ---------------------------------------------------

    def check_spot(self, environments: Iterable[ComputeEnvironmentConfig]) -> None:
        spot = self.config.spot
        if spot.attempts is None:
            if self.is_given("spot", "then") and self.unreported("spot", "attempts"):
                self.error(
                    ("spot", "then"),
                    "needs spot.attempts: say after how many Spot reclaims a job moves on "
                    "(for example attempts: 2)",
                )
            return
        kinds = {env.type for env in environments}
        if environments and "spot" not in kinds:
            self.error(
                ("spot", "attempts"),
                "the flock has no Spot compute environment, so no job is ever reclaimed; add "
                "one (type: spot in batch.compute_environments) or remove the spot section",
            )
        elif environments and "ec2" not in kinds:
            self.error(
                ("spot", "then"),
                "on_demand needs an on-demand compute environment besides the Spot ones; add "
                "one with type: ec2 to batch.compute_environments",
            )
        elif self.config.batch.gpus > 0 and not any(
            env.gpu and env.type == "ec2" for env in environments
        ):
            self.warn(
                ("spot", "then"),
                "jobs ask for GPUs but no on-demand compute environment has gpu: true, so a "
                "job moved to on-demand never runs; add an on-demand GPU environment",
            )

    def check_oom(self, environments: Iterable[ComputeEnvironmentConfig]) -> None:
        oom = self.config.oom
        ram = self.config.batch.desired_ram
        if not oom.retry:
            for key in ("factor", "max_memory_mib"):
                if self.is_given("oom", key):
                    self.warn(("oom", key), "ignored while oom.retry is false")
            return
        ceiling = largest_usable_memory_mib([t for env in environments for t in env.instance_types])
        if oom.max_memory_mib is not None and oom.max_memory_mib <= ram:
            self.error(
                ("oom", "max_memory_mib"),
                f"{oom.max_memory_mib} MiB is not more than batch.desired_ram ({ram} MiB), so "
                "no retry could raise a job's memory; raise it or set oom.retry: false",
            )
        elif (
            ceiling is None
            and oom.max_memory_mib is None
            and self.unreported("oom", "max_memory_mib")
        ):
            self.error(
                ("oom", "retry"),
                "the instance types (families or optimal) do not say how much memory the "
                "largest instance has; set oom.max_memory_mib to the most a retry may ask for",
            )
        elif ceiling is not None and ceiling <= ram:
            self.warn(
                ("oom", "retry"),
                f"the largest instance type leaves {ceiling} MiB to a job, no more than "
                f"batch.desired_ram ({ram} MiB): a job killed for memory is not retried; add "
                "larger instance types",
            )


def largest_usable_memory_mib(instance_types: Iterable[str]) -> int | None:
    """What a job may ask for on the largest of ``instance_types`` (MiB): types, families or
    ``optimal``; None when some name is not in the instance table."""
    names = list(instance_types)
    if not names:
        return None
    try:  # the instance table: sizes of families and keywords, the ECS agent's share
        from shepard.joblayer import instances  # type: ignore[attr-defined,unused-ignore]

        known, unknown = instances.expand(names)
        if known and not unknown:
            return max(int(t.usable_memory_mib) for t in known)
    except ImportError:
        pass
    sizes = [ec2.memory_mib(name) for name in names]
    if any(mib is None for mib in sizes):
        return None
    return max(int(mib * USABLE_MEMORY_FRACTION) for mib in sizes if mib is not None)


def _shorthand_type(b: BatchConfig, given: set[Path_]) -> Any:
    if ("batch", "compute_environment_type") in given:
        return b.compute_environment_type
    return "spot" if b.spot_bid_price_percent is not None else "ec2"
