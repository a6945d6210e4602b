# make help  - this list
# make run   - the whole service locally (Redis, moto S3/SQS, API on :8000, worker)
# make demo  - with make run going: one job of each type, results printed
# make test  - the whole test suite; installs what it needs (Debian's prometheus too), starts every server
# make bench - the benchmarks (figures printed)
# make lint  - ruff and mypy
# make docs  - the documentation site (mkdocs, strict) into site/
# make install - .venv with every package at the lock's exact versions (make run and make test do it)
# make clean - remove .venv, .run/ (the local stack's data) and the caches
# make lock  - compile requirements-lock.txt again from the requirements files (UPGRADE=1: newest versions)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
LOCK := requirements-lock.txt
# The installer of the lock: the same uv version as the lock pins (tests/test_lock.py checks they agree).
UV_VERSION := 0.13.9
REQUIREMENTS := requirements-dev.txt client/pyproject.toml

.PHONY: help install run demo test bench lint docs lock clean

help:
	@sed -n 's/^# make /make /p' Makefile

$(STAMP): $(LOCK) client/pyproject.toml
	@echo "install [1/4] virtualenv $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@echo "install [2/4] uv $(UV_VERSION), the installer of the lock"
	@$(PY) -m pip install -q 'uv==$(UV_VERSION)'
	@echo "install [3/4] $(LOCK): $$(grep -c '^[a-z0-9]' $(LOCK)) packages at exact versions"
	@$(UV) pip sync -q --python $(PY) $(LOCK)
	@echo "install [4/4] the client package (SDK and the c3render verbs), editable"
	@$(UV) pip install -q --python $(PY) --no-deps -e ./client
	@touch $(STAMP)
	@echo "install done: $(VENV)"

install: $(STAMP)

lock: install
	$(UV) pip compile -q $(REQUIREMENTS) --universal --python-version 3.11 $(if $(UPGRADE),--upgrade) -o $(LOCK)
	@echo "$(LOCK) written; make install syncs $(VENV) to it"

run: install
	$(PY) -m devtools.run_local

demo: install
	$(PY) -m devtools.demo

test: install
	devtools/install_system_tools.sh  # prometheus, promtool, chromium, chromedriver: Debian's (not on PyPI)
	$(PY) -m pytest

bench: install
	devtools/install_system_tools.sh wrk
	$(PY) -m bench.api_submit
	$(PY) -m bench.worker_pickup
	$(PY) -m bench.webhooks
	$(PY) -m bench.engines
	$(PY) -m bench.pool_cost --trace all
	$(PY) -m bench.metrics_overhead
	$(PY) -m bench.serving
	$(PY) -m bench.files
	$(PY) -m bench.client
	$(PY) -m bench.dashboard
	$(PY) -m bench.fairness

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

docs: install
	$(PY) -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache site
