# Two entry points a new user needs: `make demo` and `make test`. Both work on a fresh machine:
# they create .venv, install what they need (pip downloads cached under ~/.cache/agent-otel/pip)
# and, for the tests, the binaries the end-to-end tests start (scripts/prereqs.sh, idempotent).

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/agent-otel
VENV ?= .venv
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	  && { echo $$p; break; }; done)
PY := $(VENV)/bin/python
PIP := PIP_CACHE_DIR=$(CACHE)/pip PIP_DISABLE_PIP_VERSION_CHECK=1 $(PY) -m pip
EXTRAS ?= dev,grpc,postgres,crypto,frameworks
# Frameworks whose current releases cannot share one environment with the rest (their pins conflict, e.g.
# crewai needs openai<3) get their own: tests/envs/<name>/ runs in .venvs/<name>, which has the extras
# `dev,frameworks-<name>` (pyproject.toml). Every directory in tests/envs is such an environment.
ENVS ?= $(patsubst tests/envs/%/,%,$(wildcard tests/envs/*/))

.PHONY: install install-dev install-envs demo test test-unit test-e2e lint prereqs bench clean

$(VENV)/.ok-%: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python >= 3.11 is required" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.$(if $(filter base,$*),,[$*])'
	@touch $@

# The base install, what `pip install agent-otel` gives: enough for the demo and the CLI.
install: $(VENV)/.ok-base

install-dev: $(VENV)/.ok-$(EXTRAS)

.venvs/%/.ok: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python >= 3.11 is required" >&2; exit 1; }
	@test -x .venvs/$*/bin/python || $(PYTHON) -m venv .venvs/$*
	PIP_CACHE_DIR=$(CACHE)/pip PIP_DISABLE_PIP_VERSION_CHECK=1 .venvs/$*/bin/python -m pip install -q --upgrade pip
	PIP_CACHE_DIR=$(CACHE)/pip PIP_DISABLE_PIP_VERSION_CHECK=1 .venvs/$*/bin/python -m pip install -q \
	  -e '.[dev,frameworks-$*]'
	@touch $@

install-envs: $(foreach env,$(ENVS),.venvs/$(env)/.ok)

demo: install
	$(VENV)/bin/agent-otel demo
	@echo "agent-otel is installed in $(VENV): '. $(VENV)/bin/activate' puts it on PATH for the commands above"

prereqs:
	./scripts/prereqs.sh

test: install-dev install-envs prereqs
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q
	@for env in $(ENVS); do \
	  echo "tests/envs/$$env in .venvs/$$env"; \
	  AGENT_OTEL_TEST_ENV=$$env .venvs/$$env/bin/python -m pytest -q tests/envs/$$env || exit 1; \
	done
	AGENT_OTEL_CACHE=$(CACHE) ./scripts/test-pythons.sh

test-unit: install-dev
	$(PY) -m pytest -q -m "not e2e"

lint: install-dev
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports

# The benchmarks' own environment: the peer SDKs they compare with (the `bench` extra) need versions that
# cannot share one with the `frameworks` extra of the tests (openai, among others).
.venvs/bench/.ok: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python >= 3.11 is required" >&2; exit 1; }
	@test -x .venvs/bench/bin/python || $(PYTHON) -m venv .venvs/bench
	PIP_CACHE_DIR=$(CACHE)/pip PIP_DISABLE_PIP_VERSION_CHECK=1 .venvs/bench/bin/python -m pip install -q --upgrade pip
	PIP_CACHE_DIR=$(CACHE)/pip PIP_DISABLE_PIP_VERSION_CHECK=1 .venvs/bench/bin/python -m pip install -q -e '.[bench]'
	@touch $@

bench: .venvs/bench/.ok
	.venvs/bench/bin/python benchmarks/overhead.py
	.venvs/bench/bin/python benchmarks/hot_breakdown.py
	.venvs/bench/bin/python benchmarks/hashing.py

clean:
	rm -rf $(VENV) .venvs .pytest_cache .ruff_cache
