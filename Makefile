# lifeboat: `make demo` and `make test` on a new machine install what they need.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(CURDIR)/target
VENV := $(CURDIR)/.venv
PYTHON := $(VENV)/bin/python
EMULATOR_PORT ?= 5000
FN ?= scheduled-backup
EVENT ?= scheduled-backup.json

.PHONY: build test lint lint-infra infra deps venv deploy-venv bench bench-venv bench-prune bench-cold bench-flows emulator demo watch invoke \
	build-lambda deploy deploy-lambda invoke-remote drill

build:
	cargo build --workspace --bins

# The emulator's Python environment, remade when its pins change.
venv: $(VENV)/.installed
$(VENV)/.installed: tests/emulator/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/emulator/requirements.txt
	touch $@

# Debian packages for the shell tests and lint, installed when missing (as root).
DEB_PACKAGES := bats shellcheck etcd-server etcd-client openssl
deps:
	@missing=""; for c in bats shellcheck etcd etcdctl openssl; do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(DEB_PACKAGES)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	  else echo "missing:$$missing; install the Debian packages $(DEB_PACKAGES)" >&2; exit 1; fi; \
	fi

SHELL_SCRIPTS := crates/lifeboat-core/scripts/*.sh tests/repair/*.sh tests/repair/bin/* tests/repair/*.bats \
	tests/emulator/*.sh tests/bench/*.sh .ci/run

# The repair script against fixture trees and a real etcd (bats), the
# emulator's own validation, then unit, flow and integration tests: the real
# binaries and SDK against one emulator shared by every test (each in its own
# account).
test: venv deps
	bats tests/repair
	$(PYTHON) -m unittest discover -s tests/emulator
	cargo build --workspace --bins --tests
	tests/emulator/with-emulator.sh cargo nextest run --workspace --no-fail-fast

# The aws CLI for running the original script beside lifeboat in benchmarks.
bench-venv: $(CURDIR)/.venv-bench/.installed
$(CURDIR)/.venv-bench/.installed: tests/bench/requirements.txt
	python3 -m venv $(CURDIR)/.venv-bench
	$(CURDIR)/.venv-bench/bin/pip install --quiet --disable-pip-version-check -r tests/bench/requirements.txt
	touch $@

# Init time, peak memory and sizes of the release binaries (x86_64 here;
# LAMBDA_DIR=... to measure another build, e.g. an arm64 one on arm64).
LAMBDA_DIR ?= $(CARGO_TARGET_DIR)/lambda
bench-cold: deploy-venv
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda build --release $(LAMBDA_PACKAGES)
	cargo run --quiet -p lifeboat-tests --bin bench_cold -- $(LAMBDA_DIR)

# scheduled-backup at 1, 20, 200 nodes beside the original script's step, and
# the relaunch path's own time and API calls per step.
bench-flows: venv bench-venv
	cargo build --workspace --bins
	tests/emulator/with-emulator.sh cargo run --quiet -p lifeboat-tests --bin bench_flows

# Every benchmark; the README's performance section holds their results.
bench: bench-prune bench-flows bench-cold

# retention-pruner on 1,000 and 10,000 images, beside the original script.
bench-prune: venv bench-venv
	cargo build --workspace --bins
	tests/emulator/with-emulator.sh cargo run --quiet -p lifeboat-tests --bin bench_prune

lint: deps lint-infra
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	shellcheck -x -P SCRIPTDIR/../.. $(SHELL_SCRIPTS)

# The deploy tools, offline: cfn-lint, sam validate --lint, checkov, cargo-lambda, zig.
DEPLOY_VENV := $(CURDIR)/.venv-deploy
LAMBDA_PACKAGES := -p scheduled-backup -p retention-pruner -p interruption-handler
deploy-venv: $(DEPLOY_VENV)/.installed
$(DEPLOY_VENV)/.installed: infra/requirements.txt
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

lint-infra: deploy-venv
	python3 infra/sync-repair-document.py --check
	$(DEPLOY_VENV)/bin/cfn-lint infra/template.yaml
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(DEPLOY_VENV)/bin/sam validate --lint -t infra/template.yaml
	$(DEPLOY_VENV)/bin/checkov --skip-download --quiet --compact -f infra/template.yaml

# Copies the repair script into the SSM Command document of the template.
infra:
	python3 infra/sync-repair-document.py

# Release builds of the three functions for Lambda (arm64, as the template
# deploys them), once for the whole workspace: target/lambda/<fn>/bootstrap.
build-lambda: deploy-venv
	@rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu || { \
	  echo "the aarch64-unknown-linux-gnu Rust target is missing: rustup target add aarch64-unknown-linux-gnu" >&2; \
	  echo "(or build for x86_64 with: PATH=$(DEPLOY_VENV)/bin:\$$PATH cargo lambda build --release $(LAMBDA_PACKAGES)," >&2; \
	  echo " and set Architectures: [x86_64] in infra/template.yaml)" >&2; exit 1; }
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda build --release --arm64 $(LAMBDA_PACKAGES) --lambda-dir $(CURDIR)/target/lambda

# sam deploy of infra/template.yaml (asks for the parameters the first time).
deploy: build-lambda
	SAM_CLI_TELEMETRY=0 $(DEPLOY_VENV)/bin/sam deploy --guided -t infra/template.yaml --capabilities CAPABILITY_IAM

# cargo lambda deploy, function by function, with a role you made from
# infra/iam-policy.json (plus AWSLambdaBasicExecutionRole): ROLE=arn:aws:iam::...
deploy-lambda: build-lambda
	@test -n "$(ROLE)" || { echo "ROLE=<arn of the role with infra/iam-policy.json> is required" >&2; exit 1; }
	for fn in scheduled-backup retention-pruner interruption-handler; do \
	  PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda deploy $$fn --iam-role $(ROLE) --lambda-dir $(CURDIR)/target/lambda || exit 1; \
	done

# A restore drill of a deployed lifeboat: make drill NODE=k8s-master [KEEP=true]
drill: deploy-venv
	@test -n "$(NODE)" || { echo "NODE=<node name> is required" >&2; exit 1; }
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda invoke --remote interruption-handler \
	  --data-ascii '{"action": "test-restore", "node": "$(NODE)", "keep": $(or $(KEEP),false)}'

# Invoke a deployed function: make invoke-remote FN=scheduled-backup EVENT=manual-backup.json
invoke-remote: deploy-venv
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda invoke --remote $(FN) --data-file events/$(EVENT)

# The emulator in the foreground on $(EMULATOR_PORT), for cargo lambda watch/invoke.
emulator: venv
	$(PYTHON) tests/emulator/emulator.py --port $(EMULATOR_PORT)

demo: venv
	cargo build --workspace --bins
	tests/emulator/with-emulator.sh cargo run --quiet -p lifeboat-tests --bin demo

# Local Lambda emulation with cargo-lambda (pip install cargo-lambda); point the
# functions at `make emulator` with AWS_ENDPOINT_URL=http://127.0.0.1:$(EMULATOR_PORT).
watch:
	cargo lambda watch --invoke-address 127.0.0.1
invoke:
	cargo lambda invoke --invoke-address 127.0.0.1 $(FN) --data-file events/$(EVENT)
