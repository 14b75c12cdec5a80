# Two commands for a fresh machine:
#   make demo   set everything up (venv, patched llama-cpp-python) and run the main job on the bundled SmolLM2
#   make test   set everything up and run the tests
PYTHON ?= python3
# Where pip finds torch. Empty: the default index (on Linux, PyPI's torch is the CUDA build; pass
# TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU-only wheel, or a local mirror of it).
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup system-deps demo test clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/python tools/build_llama_cpp_python.py --venv $(VENV)

demo: setup
	$(BIN)/glass-gguf demo

# Debian packages the tests need besides a compiler and cmake: ccache (the wheel, the native tools and the stock
# libllama share objects), the aarch64 cross toolchain and qemu (the on-device tests). Installed when missing and
# this is root with apt-get; otherwise the line to run is printed.
DEB_NEEDS := ccache:ccache aarch64-linux-gnu-g++:crossbuild-essential-arm64 qemu-aarch64-static:qemu-user-static
system-deps:
	@missing=""; for need in $(DEB_NEEDS); do \
	  command -v $${need%%:*} >/dev/null || missing="$$missing $${need#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	  else echo "missing Debian packages; run: sudo apt-get install$$missing"; exit 1; fi; fi

test: setup system-deps
	$(BIN)/python -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
