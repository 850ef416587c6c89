# chatapp — the two commands that set everything up on a fresh machine:
#   make run    create .venv, install, open the chat on the bundled model (offline)
#   make test   same venv plus dev tools, then the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PIP_FLAGS := -c constraints.txt
GPU ?=

# `make run GPU=cuda` (or metal, vulkan) rebuilds llama-cpp-python for that GPU backend.
ifeq ($(GPU),cuda)
GPU_CMAKE := -DGGML_CUDA=on
else ifeq ($(GPU),metal)
GPU_CMAKE := -DGGML_METAL=on
else ifeq ($(GPU),vulkan)
GPU_CMAKE := -DGGML_VULKAN=on
endif

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run test test-fast bench lint format snapshots clean gpu system-deps

$(VENV)/.stamp-base: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-base
	$(PIP) install -q $(PIP_FLAGS) -e '.[dev]'
	touch $@

gpu: $(VENV)/.stamp-base
ifneq ($(GPU_CMAKE),)
	CMAKE_ARGS="$(GPU_CMAKE)" $(PIP) install --force-reinstall --no-deps --no-cache-dir llama-cpp-python
endif

run: $(VENV)/.stamp-base gpu
	$(VENV)/bin/chatapp

# tmux (end-to-end test) and Debian's chromium (browser test); CI's machine starts without them.
system-deps:
	@command -v tmux >/dev/null && command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq tmux chromium >/dev/null; \
	  else echo "note: install tmux and chromium for the e2e and browser tests (they skip without them)"; fi; }

test: $(VENV)/.stamp-dev system-deps
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(VENV)/.stamp-dev
	$(PY) -m pytest -q -m "not slow and not e2e"

snapshots: $(VENV)/.stamp-dev
	$(PY) -m pytest -q tests/ui --snapshot-update

bench: $(VENV)/.stamp-dev
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/ui.py
	$(PY) benchmarks/retrieval.py
	$(PY) benchmarks/templates.py
	$(PY) benchmarks/models.py

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check chatapp tests benchmarks
	$(VENV)/bin/ruff format --check chatapp tests benchmarks
	$(VENV)/bin/mypy

format: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check --fix chatapp tests benchmarks
	$(VENV)/bin/ruff format chatapp tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
