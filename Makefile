# Two entry points for a fresh machine: `make demo` (set up + run the main job) and
# `make test` (set up + run the whole test suite). Everything else is a building block.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.funrl-installed

.PHONY: setup sglang-env test demo validate clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch 2.13.0 is a CPU wheel; a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

setup: $(STAMP)

validate: setup
	$(BIN)/funrl config validate

# The SGLang engine lives in its own env (it pins torch 2.14.1); built once, cached in ~/.cache/funrl.
sglang-env: setup
	bash rollout/sglang_env.sh

test: setup
	$(BIN)/funrl config validate
	$(BIN)/python -m pytest -q
	SGLANG_PY=$$(bash rollout/sglang_env.sh | tail -1) && $$SGLANG_PY -m pytest -q -m sglang tests

demo: setup
	bash examples/demo.sh

clean:
	rm -rf $(VENV) runs build *.egg-info
