# The two commands the README promises: `make dev` runs the native stack, `make test` runs every test.
# Each target first runs scripts/bootstrap.sh, which installs what the machine lacks (uv, the
# locked dependencies, server packages, Chromium for `make test`) and links uv into .dev/bin.
export PATH := $(CURDIR)/.dev/bin:$(PATH)
UV ?= uv
.DEFAULT_GOAL := dev
BOOTSTRAP_FOR := $(if $(filter test test-e2e e2e-compose test-swarm swarm-up,$(MAKECMDGOALS)),test,$(if $(filter bench,$(MAKECMDGOALS)),bench,dev))
SERVICES := auth users items notifications
PYTEST := $(UV) run pytest

.PHONY: bootstrap dev test lint format test-libs test-services test-deploy test-security test-reliability test-e2e e2e-compose soak reliability-report $(SERVICES:%=test-%) bench offline-images \
	swarm-up swarm-down test-swarm

bootstrap:  ## Install what this machine lacks; quiet when all is there
	@UV=$(UV) scripts/bootstrap.sh $(BOOTSTRAP_FOR)

# Every target below runs uv: bootstrap first (once per make run).
dev test lint format test-libs test-deploy test-security test-reliability test-e2e e2e-compose \
soak reliability-report bench $(SERVICES:%=test-%) swarm-up swarm-down test-swarm: bootstrap

dev:  ## Run the whole stack natively (local PostgreSQL and Redis), gateway on :8000
	$(UV) run python -m devstack

test: lint test-libs test-services test-deploy test-e2e e2e-compose test-swarm test-security test-reliability  ## Everything below, in order

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy libs/servicekit/src libs/servicekit-testing/src libs/devstack/src
	@for s in $(SERVICES); do $(UV) run mypy services/$$s/src || exit 1; done

format:
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

test-libs:
	$(PYTEST) libs/servicekit/tests
	$(PYTEST) libs/servicekit-testing/tests
	$(PYTEST) libs/devstack/tests

# One pytest process per service: each service's settings and tables live alone in a process.
test-services: $(SERVICES:%=test-%)

$(SERVICES:%=test-%): test-%:
	$(PYTEST) services/$*/tests

# compose.yaml, docker/ and .env.example checked against the code; no Docker engine needed
# (PostgreSQL server binaries, as for the other tests).
test-deploy:
	$(PYTEST) tests-deploy

# Fuzzing (schemathesis over every OpenAPI), hostile input and the JWT attack matrix, through
# the gateway of a private native stack. One process: each xdist worker would start a stack.
test-security:
	$(PYTEST) tests-security

# Faults (Redis, PostgreSQL, consumer and mailer crashes, SMTP) and races, on a private stack.
test-reliability:
	$(PYTEST) tests-reliability

# Locust headless on a private native stack, rate limit lifted: 30 users, 3 min, CSV in
# load/results/; fails on any failed request, locustfile exception or dead process.
soak:
	$(UV) run python load/run_soak.py --users 30 --spawn-rate 5 --run-time 3m --csv load/results/soak

# Runs the fault scenarios and a short load run, then rewrites docs/reliability.md.
reliability-report:
	$(UV) run python scripts/reliability_report.py

# Against GATEWAY_URL/MAILBOX_URL when set (compose); otherwise a private native stack.
test-e2e:
	$(PYTEST) tests-e2e -n 2

# The end-to-end suite against the containers: build and start everything (the offline
# stand-ins when no registry answers), wait until every container is healthy, run the suite
# and the container fault test through the published ports (PUBLISH_ADDRESS and the
# PUBLISH_*_PORT variables honoured), then always remove it all (containers, network,
# volumes), pass, fail or Ctrl-C. Needs Docker Engine 25 or later (make test starts one).
e2e-compose:
	UV=$(UV) scripts/e2e_compose.sh

bench:
	$(UV) run python -m bench

# Local stand-ins for the registry images, built from real software (docker/offline/build.sh
# lists them): the base once, the rest through BuildKit's cache, so a second run takes seconds.
offline-images: bootstrap
	docker/offline/build.sh

# ---- Docker Swarm (deploy/swarm/stack.yml) ----------------------------------------------------
# The stack on this engine as a one-node swarm (scripts/swarm.sh; GATEWAY_PORT, MAILBOX_PORT).
swarm-up:
	UV=$(UV) scripts/swarm.sh up

swarm-down:
	scripts/swarm.sh down

# A two-node swarm of nested engines on this machine: the end-to-end suite, replicas on both
# nodes, a rolling update under load, node 2 lost; everything removed afterwards. Figures in
# test-artifacts/swarm-figures.json.
test-swarm:
	$(PYTEST) tests-swarm -p no:cacheprovider -v
