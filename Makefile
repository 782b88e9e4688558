# One-command set-up: every target that needs Python builds .venv first when it is missing or stale
# (the requirements files changed). On a fresh machine `make reproduce` or `make test` is all you need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1
export MPLBACKEND := Agg

.PHONY: venv test test-unit test-notebooks test-slow test-all reproduce paper lab bench lint clean-venv help

help:
	@echo "make reproduce   run the whole pipeline on the default synthetic data (profile 'default')"
	@echo "make test        the default test tier (unit + notebooks + tiny profile), < 15 min on 2 cores"
	@echo "make test-slow   only the tests marked slow;  make test-all: every tier"
	@echo "make lab         JupyterLab on the project's kernel"
	@echo "make bench       benchmarks -> artifacts/reports/bench.json"
	@echo "make lint        ruff"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]} (set PYTHON=python3.11)"'
	@echo ">> building $(VENV) from pinned requirements (first time: a few minutes, about 7 GB)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name cfnl --display-name "CityFlow-NL retrieval (.venv)" >/dev/null
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" tests --nbval-lax notebooks -p no:cacheprovider

test-unit: $(STAMP)
	$(PY) -m pytest -m "not slow and not notebooks" tests/unit

test-notebooks: $(STAMP)
	$(PY) -m pytest -m "not slow" --nbval-lax notebooks tests/notebooks

test-slow: $(STAMP)
	$(PY) -m pytest -m slow tests

test-all: $(STAMP)
	$(PY) -m pytest tests --nbval-lax notebooks

reproduce: $(STAMP)
	$(PY) -m lib.pipeline --profile default

paper: $(STAMP)
	$(PY) -m lib.pipeline --profile paper

lab: $(STAMP)
	cd notebooks && ../$(VENV)/bin/jupyter lab $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

bench: $(STAMP)
	$(PY) -m lib.bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
