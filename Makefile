# make run   - the whole service locally (Redis, moto S3/SQS, API on :8000, worker)
# make demo  - with make run going: one job of each type, results printed
# make test  - the whole test suite; installs what it needs (Debian's prometheus too), starts every server
# make bench - the benchmarks (figures printed)
# make lint  - ruff and mypy
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run demo test bench lint clean

$(STAMP): requirements.txt requirements-worker.txt requirements-devnode.txt requirements-dev.txt client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade 'pip<26.3'  # chalice requires pip<26.3
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e ./client  # the client package (SDK and the job verbs of c3render)
	touch $(STAMP)

install: $(STAMP)

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

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache
