# Every target works on a fresh machine: it creates .venv, installs torch and the package, then runs.
# GPU users: make TORCH_SPEC='torch==2.11.0' ... (any CUDA build of torch >= 2.4).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CSRC := $(shell find csrc -type f 2>/dev/null)
PKG_STAMP := $(VENV)/.mple-installed
DEPS_STAMP := $(VENV)/.mple-deps

.PHONY: install test fuzz demo bench cuda-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(DEPS_STAMP): $(PY) Makefile
	$(PIP) install -q "$(TORCH_SPEC)" setuptools wheel pybind11 ninja
	touch $@

$(PKG_STAMP): $(DEPS_STAMP) setup.py pyproject.toml $(CSRC)
	$(PIP) install -q --no-build-isolation -e ".[test]"
	touch $@

install: $(PKG_STAMP)

test: install
	$(PY) -m pytest -q tests

# The property-based tests (hypothesis) with ~1000 examples per property instead of make test's few dozen.
fuzz: install
	$(PY) -m pytest -q tests/test_properties_*.py --hypothesis-profile=thorough

demo: install
	$(VENV)/bin/mple demo

bench: install
	$(PY) benchmarks/run_all.py

# Compile check of every CUDA source against a CUDA build of torch with this machine's nvcc.
cuda-check:
	bash tools/cuda_check.sh

clean:
	rm -rf build dist *.egg-info mple_metrics/_C*.so
