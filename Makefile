# Everyday commands. `make serve` and `make test` install what they need into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install serve test lint typecheck check bench clean compat gpu-wheels gpu-check

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/python -m service --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .venv-torch-* .pytest_cache .mypy_cache .ruff_cache .hypothesis

# `make compat TORCH=2.4.1`: that torch (PyPI's build) and the test dependencies in their own
# venv, .venv-torch-<version>, then the loss, API and protocol tests against it. Not pinned
# by constraints.txt, which pins the CPU build CI uses everywhere else.
TORCH ?=
COMPAT_VENV := .venv-torch-$(TORCH)
COMPAT_TESTS ?= tests/losses tests/api tests/protocol

compat:
	@test -n "$(TORCH)" || { echo "usage: make compat TORCH=<version>" >&2; exit 2; }
	@test -f $(COMPAT_VENV)/.installed || { \
		$(PYTHON) -m venv $(COMPAT_VENV) && \
		$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip && \
		$(COMPAT_VENV)/bin/python -m pip install --quiet 'torch==$(TORCH)' -e '.[test]' && \
		touch $(COMPAT_VENV)/.installed; }
	$(COMPAT_VENV)/bin/python -c 'import torch; print("torch", torch.__version__)'
	$(COMPAT_VENV)/bin/python -m pytest -p no:cacheprovider -q $(COMPAT_TESTS)

# The GPU check (README: "A GPU check"): `make gpu-wheels` here fetches what it installs on the
# GPU machine (Python 3.12, its own CUDA torch, no registry) into .whl/; `make gpu-check` there
# runs it. Never part of CI. GPU_CHECK_DEVICE=cpu rehearses it without a GPU.
gpu-wheels: $(STAMP)
	bash .ci/gpu-wheels

gpu-check:
	bash .ci/gpu-check
