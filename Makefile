# The README's two commands: `make up` (the main job on the local default) and
# `make test` (everything CI runs). `make up` installs only what the main job needs
# (scripts/bootstrap.sh); `make test` also builds the test-only tools
# (scripts/bootstrap-test-tools.sh: wadm-probe, real wash). Slow builds are cached once
# per machine outside the clone (scripts/tool-cache.sh).
SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools
VENV := $(TOOLS)/venv
PULUMI_VERSION := 3.259.0
export PATH := $(VENV)/bin:$(TOOLS)/pulumi/v$(PULUMI_VERSION)/bin:$(PATH)

MANIFEST ?= examples/counter/wadm.yaml
HOSTS ?= examples/local/hosts.yaml

.PHONY: up preview destroy lattice-up lattice-down test bootstrap test-tools lint typecheck unit bench package clean

bootstrap:
	@bash scripts/bootstrap.sh

## test-tools: wadm-probe and real wash for the compatibility tests (SKIP_WASH=1 skips wash)
test-tools: bootstrap
	@bash scripts/bootstrap-test-tools.sh

## up: `pulumi up` on the root project's `local` stack (file backend under .state/):
## NATS with JetStream, the controller, redis-server, two hosts and the counter app
up: bootstrap
	@bash scripts/local-stack.sh up

## preview: what `make up` would change, with per-host placement
preview: bootstrap
	@bash scripts/local-stack.sh preview

## destroy: `pulumi destroy` on the local stack; every process and port goes away
destroy:
	@bash scripts/local-stack.sh destroy

## lattice-up / lattice-down: the same lattice without Pulumi (like `wash up` +
## `wash app deploy`), through the `wasmcloud` CLI
lattice-up: bootstrap
	@wasmcloud validate $(MANIFEST)
	@wasmcloud plan $(MANIFEST) --hosts $(HOSTS)
	@wasmcloud up --manifest $(MANIFEST)

lattice-down:
	@wasmcloud down

## test: lint, type-check and run the whole test suite (what .ci/run does)
test: bootstrap test-tools lint typecheck unit

lint:
	ruff check .
	ruff format --check .

typecheck:
	mypy host_agent pulumi_wasmcloud benchmarks

## unit: the suite on PYTEST_WORKERS pytest-xdist workers (0: one process). A test file's
## tests stay in one worker; files sharing a resource of this computer share a worker;
## the longest start first (tests/xdist_scheduling.py). The 25 slowest steps are listed.
PYTEST_WORKERS ?= 2
unit:
	pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=25

bench: bootstrap
	bash scripts/install-wash-dev.sh
	python benchmarks/placement.py
	python benchmarks/ctl.py
	python benchmarks/invoke.py
	python benchmarks/reconcile.py
	python benchmarks/preview.py

## package: the provider plugin archive (`pulumi plugin install resource wasmcloud <version>
## --file <archive>`) and the Python SDK wheel, in dist/ (docs/packaging.md)
package: bootstrap
	@bash scripts/package.sh dist

## clean: remove .tools/ (the per-machine cache, ~/.cache/pulumi-wasmcloud, stays)
clean:
	rm -rf $(TOOLS)
