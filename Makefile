# Two commands for a fresh machine:
#   make demo   set up .venv (the patched llama-cpp-python, no torch) and run the main job on the bundled SmolLM2
#   make test   set up everything the tests need (torch included) and run them
PYTHON ?= python3
# Where pip finds torch (make torch, make test). Default: PyTorch's CPU-only index (a few hundred MB; PyPI's torch
# on Linux is the CUDA build, several GB). TORCH_INDEX= (empty) uses pip's own index settings.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-runtime torch system-deps demo test clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The runtime and the main job: the patched llama-cpp-python and the plot library, no torch.
setup-runtime: $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[demo]"
	$(BIN)/python tools/build_llama_cpp_python.py --venv $(VENV)

# torch (pinned; from TORCH_INDEX alone, its dependencies from pip's usual index) and the extras that use it: prior
# and convert of an HF folder, hf-export, the torch backend of eval/sweep/results, tasks.
torch: $(BIN)/python
	$(BIN)/pip install --quiet --no-deps torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e ".[prior,eval]"

# Everything the tests need.
setup: setup-runtime torch
	$(BIN)/pip install --quiet -e ".[test]"

demo: setup-runtime
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
	$(BIN)/python -m pytest -q --durations=15 tests

clean-venv:
	rm -rf $(VENV)
