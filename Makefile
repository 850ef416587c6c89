# chatapp — the two commands that set everything up on a fresh machine:
#   make run    create .venv, install, open the chat on the bundled model (offline)
#   make test   same venv plus dev tools, then the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# requirements.lock pins every package a fresh install gets (the versions CI tested);
# constraints.txt holds the few pins chosen by hand, which `make lock` starts from.
LOCK := requirements.lock
PIP_FLAGS := -c constraints.txt -c $(LOCK)
GPU ?=

# `make run GPU=cuda` (or metal, vulkan) rebuilds llama-cpp-python for that GPU backend.
ifeq ($(GPU),cuda)
GPU_CMAKE := -DGGML_CUDA=on
else ifeq ($(GPU),metal)
GPU_CMAKE := -DGGML_METAL=on
else ifeq ($(GPU),vulkan)
GPU_CMAKE := -DGGML_VULKAN=on
endif

# llama.cpp's AMX kernels crash on some virtualised Xeons (ggml-org/llama.cpp#20824; seen on
# these 2-core KVM machines: a segfault in the first decode). On CPUs that report AMX, build with
# explicit x86 ISA flags and AMX off; elsewhere llama.cpp's native detection is kept.
HAS_AMX := $(shell grep -qs amx_int8 /proc/cpuinfo && echo 1)
ifeq ($(HAS_AMX),1)
CPU_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_BMI2=ON -DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON \
  -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
endif
export CMAKE_ARGS ?= $(strip $(CPU_CMAKE) $(GPU_CMAKE))

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run test test-fast bench lint format snapshots clean gpu system-deps lock

$(VENV)/.stamp-base: pyproject.toml constraints.txt $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade $(PIP_FLAGS) pip
	$(PIP) install -q $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-base
	$(PIP) install -q $(PIP_FLAGS) -e '.[dev]'
	touch $@

gpu: $(VENV)/.stamp-base
ifneq ($(GPU_CMAKE),)
	$(PIP) install --force-reinstall --no-deps --no-cache-dir $(PIP_FLAGS) llama-cpp-python
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
	$(PY) benchmarks/threads.py
	$(PY) benchmarks/warm_resume.py
	$(PY) benchmarks/ui.py
	$(PY) benchmarks/retrieval.py
	$(PY) benchmarks/retrieval_speed.py
	$(PY) benchmarks/grounded_prefill.py
	$(PY) benchmarks/templates.py
	$(PY) benchmarks/models.py
	$(PY) benchmarks/tools_mcp.py
	$(PY) benchmarks/tools.py
	$(PY) benchmarks/tools_loop.py
	$(PY) benchmarks/cold_search.py

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check chatapp tests benchmarks
	$(VENV)/bin/ruff format --check chatapp tests benchmarks
	$(VENV)/bin/mypy

format: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check --fix chatapp tests benchmarks
	$(VENV)/bin/ruff format chatapp tests benchmarks

# Resolve every dependency afresh (newest releases allowed by pyproject.toml and constraints.txt)
# in a throwaway venv and write the versions it got to $(LOCK). Run it deliberately, then
# `make test` (the changed lock reinstalls .venv) and commit the lock with the results.
lock:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PYTHON) -m venv "$$tmp/venv" && \
	"$$tmp/venv/bin/python" -m pip install -q --upgrade pip && \
	"$$tmp/venv/bin/python" -m pip install -q -c constraints.txt -e '.[dev]' && \
	{ echo "# Every package a fresh install of chatapp[dev] gets, as \`make lock\` resolved it"; \
	  echo "# ($$("$$tmp/venv/bin/python" -V), $$(uname -sm)). Used as a pip constraints file by"; \
	  echo "# make run / make test. Local version labels (torch's +cpu) are left off."; \
	  "$$tmp/venv/bin/python" -m pip freeze --all --exclude-editable \
	    | grep -v -i '^chatapp[= ]' | sed -E 's/\+[A-Za-z0-9.]+$$//'; } > "$(LOCK).new" && \
	mv "$(LOCK).new" "$(LOCK)" && echo "wrote $(LOCK)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
