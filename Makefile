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
# No MPLBACKEND here: JupyterLab's kernels inherit this environment and must reach matplotlib's inline backend.
# Headless processes choose their own (tests/conftest.py: Agg for pytest; lib.pipeline: inline for its kernels).

.PHONY: venv test test-unit test-notebooks test-slow test-all reproduce paper lab bench lint clean-venv help

help:
	@echo "make reproduce   run the whole pipeline on the default synthetic data (profile 'default')"
	@echo "make test        the default test tier (unit + notebooks + tiny profile), < 15 min on 2 cores"
	@echo "make test-slow   only the tests marked slow;  make test-all: every tier"
	@echo "make lab         JupyterLab at the repository root, opened on notebooks/, on the project's kernel"
	@echo "make bench       benchmarks -> artifacts/reports/bench.json"
	@echo "make lint        ruff"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]} (set PYTHON=python3.11)"'
	@echo ">> building $(VENV) from pinned requirements (first time: a few minutes, about 7 GB)"
	@$(PYTHON) -c 'import shutil, sys, tempfile; need = 10; free = {d: shutil.disk_usage(d).free / 2**30 for d in (".", tempfile.gettempdir())}; low = {d: f for d, f in free.items() if f < need}; sys.exit(f"not enough disk to build $(VENV): " + ", ".join(f"{d} has {f:.1f} GiB free" for d, f in low.items()) + f" (the install needs about {need} GiB: 7 GiB of packages plus the downloaded wheels)") if low else None'
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

# The server's root is the repository (params/, docs/, artifacts/reports/ and a run's executed notebooks in
# artifacts/runs/<profile>/notebooks/ are one click away); it opens on notebooks/. Kernels start in the folder of
# their notebook, so the notebooks' relative paths (../artifacts/...) hold. Kernel sockets are CurveZMQ-encrypted
# where the kernel spec supports it (ours does), which also keeps ipykernel's "running over TCP without
# encryption" warning out of the console.
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks \
		--KernelManager.transport_encryption=auto $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(LAB_ARGS)

bench: $(STAMP)
	$(PY) -m lib.bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
