# Two commands for a fresh machine:
#   make demo   set everything up (venv, patched llama-cpp-python) and run the main job on the bundled SmolLM2
#   make test   set everything up and run the tests
PYTHON ?= python3
# Where pip finds torch. Empty: the default index (on Linux, PyPI's torch is the CUDA build; pass
# TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU-only wheel, or a local mirror of it).
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/python tools/build_llama_cpp_python.py --venv $(VENV)

demo: setup
	$(BIN)/glass-gguf demo

test: setup
	$(BIN)/python -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
