# Two entry points for a fresh machine: `make demo` (set up + run the main job) and
# `make test` (set up + run the whole test suite). Everything else is a building block.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.funrl-installed

.PHONY: setup test demo validate clean

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

test: setup
	$(BIN)/funrl config validate
	$(BIN)/python -m pytest -q

demo: setup
	bash examples/demo.sh

clean:
	rm -rf $(VENV) runs build *.egg-info
