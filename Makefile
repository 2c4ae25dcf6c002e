# shepard-tf: the entry points people and CI use. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CHECKOV_VENV ?= .venv-checkov
FLOCK ?= examples/testing-setup/flock.yaml
PYTEST_ARGS ?=

.PHONY: help install system-tools engine test-docker test test-fast lint fmt typecheck man bench demo iam-doc lambda-zips plan apply destroy checkov-install clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# pip's progress and notes go to a log, shown only when the install fails.
$(BIN)/shepard-tf: pyproject.toml
	@echo "installing shepard-tf and its test and dev tools into $(VENV)/ (pip's log: $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@{ $(BIN)/pip install --upgrade pip && $(BIN)/pip install -e '.[dev]'; } >$(VENV)/install.log 2>&1 \
		|| { tail -n 40 $(VENV)/install.log; echo "pip failed: the whole log is $(VENV)/install.log"; exit 1; }
	@touch $@

install: $(BIN)/shepard-tf  ## make .venv and install shepard-tf with its test and dev tools

$(CHECKOV_VENV)/bin/checkov:
	@echo "installing checkov into $(CHECKOV_VENV)/ (pip's log: $(CHECKOV_VENV)/install.log)"
	@$(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/pip install --quiet checkov > $(CHECKOV_VENV)/install.log 2>&1 \
	  || { tail -n 30 $(CHECKOV_VENV)/install.log; exit 1; }
	@touch $@

checkov-install: $(CHECKOV_VENV)/bin/checkov  ## checkov in its own venv (it pins an older boto3)

# System tools the tests use: shellcheck for the sheep's user data. Installed with apt-get when
# missing and this is a Debian machine we are root on; otherwise the tests that need it say so.
system-tools:  ## install shellcheck (apt-get) if it is missing
	@command -v shellcheck >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -qq shellcheck >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq shellcheck >/dev/null)) \
	    && echo "installed shellcheck"; \
	  else echo "note: shellcheck is missing; the user-data lint test will be skipped"; fi; }

test: install checkov-install system-tools engine  ## run every test (unit, terraform, emulator, local flock)
	CHECKOV=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(BIN)/pytest $(PYTEST_ARGS)

# A Docker engine, the local registry standing in for ECR, and the offline base image: started or
# built when missing (scripts/engine.sh). Without them the docker-marked tests skip, saying why.
engine:  ## start a Docker engine and a local registry, build the offline base image (once)
	@if scripts/engine.sh up && scripts/engine.sh base-image; then scripts/engine.sh status; \
	else echo "note: no Docker engine here: the docker tests will be skipped (see above)"; fi

test-docker: install engine  ## the docker-mode tests alone (starts the engine, registry and base image)
	$(BIN)/pytest -m docker $(PYTEST_ARGS)

test-fast: install  ## unit tests only
	$(BIN)/pytest -m "not terraform and not integration and not e2e" $(PYTEST_ARGS)

lint: install  ## ruff, mypy, terraform fmt -check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shepard lambdas worker
	terraform fmt -check -recursive terraform

fmt: install  ## format Python and Terraform
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	terraform fmt -recursive terraform

man: install  ## build the man page into build/man/shepard-tf.1
	mkdir -p build/man
	$(BIN)/argparse-manpage --pyfile shepard/cli.py --function build_parser --prog shepard-tf \
		--project-name shepard-tf --output build/man/shepard-tf.1
	@echo "man page: build/man/shepard-tf.1"

bench: install  ## run the benchmarks under bench/ (ours, baseline, ratio)
	@for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

demo: install  ## the local Hello World: deploy, run jobs, query, retrieve, destroy
	@$(BIN)/python examples/demo.py

lambda-zips: install  ## rebuild the Lambda packages kept in terraform/flock/lambda/ (after editing lambdas/ or shepard/joblayer/)
	$(BIN)/python -m shepard.package

# IAM_RECORDS=FILE: from the calls a session saved with SHEPARD_IAM_RECORDS_OUT=FILE, without
# running the tests again.
iam-doc: install  ## regenerate docs/iam.md (the IAM policy per CLI command) from the integration and e2e tests' AWS calls
ifdef IAM_RECORDS
	$(BIN)/python tests/support/iam_doc.py --write $(IAM_RECORDS)
else
	SHEPARD_IAM_WRITE_DOC=1 $(BIN)/pytest -q -p no:cacheprovider tests/integration tests/e2e $(PYTEST_ARGS)
endif

plan: install  ## terraform plan for FLOCK=path/to/flock.yaml
	$(BIN)/shepard-tf plan $(FLOCK)

apply: install  ## terraform apply for FLOCK=path/to/flock.yaml
	$(BIN)/shepard-tf apply $(FLOCK)

destroy: install  ## terraform destroy for FLOCK=path/to/flock.yaml
	$(BIN)/shepard-tf destroy $(FLOCK)

clean:  ## remove build output and virtual environments
	rm -rf build $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache
