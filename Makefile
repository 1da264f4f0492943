# The two commands the README promises: `make dev` runs the native stack, `make test` runs every test.
UV ?= uv
SERVICES := auth users items notifications
PYTEST := $(UV) run pytest

.PHONY: dev test lint format test-libs test-services test-e2e $(SERVICES:%=test-%) bench

dev:  ## Run the whole stack natively (local PostgreSQL and Redis), gateway on :8000
	$(UV) run python -m devstack

test: lint test-libs test-services test-e2e  ## Lint, every service's tests, then the end-to-end suite

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .

format:
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

test-libs:
	$(PYTEST) libs/servicekit/tests
	$(PYTEST) libs/devstack/tests

# One pytest process per service: each service's settings and tables live alone in a process.
test-services: $(SERVICES:%=test-%)

$(SERVICES:%=test-%): test-%:
	$(PYTEST) services/$*/tests

# Against GATEWAY_URL/MAILBOX_URL when set (compose); otherwise a private native stack.
test-e2e:
	$(PYTEST) tests-e2e

bench:
	$(UV) run python -m bench
