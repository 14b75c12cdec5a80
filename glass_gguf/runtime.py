"""ctypes bindings to the GLASS C API of the patched libllama loaded by llama-cpp-python.

llama-cpp-python keeps its loaded library in llama_cpp.llama_cpp._lib; the GLASS functions are declared on it here,
once. A stock llama-cpp-python lacks them, and every entry point says so with the command that fixes it.
"""
from __future__ import annotations

import ctypes
import functools

EXPECTED_API_VERSION = 1

FIX_HINT = (
    "install glass-gguf's patched build: `python3 tools/build_llama_cpp_python.py` from the glass-gguf "
    "repository (or `make setup`), which replaces llama-cpp-python in .venv"
)


class GlassUnavailableError(RuntimeError):
    """The loaded libllama has no GLASS API (a stock llama-cpp-python) or an incompatible version of it."""


def llama_library() -> ctypes.CDLL:
    """The libllama that llama-cpp-python loaded (honours LLAMA_CPP_LIB_PATH, as llama-cpp-python does)."""
    try:
        from llama_cpp import llama_cpp as bindings
    except ImportError as e:
        raise GlassUnavailableError(f"llama-cpp-python is not installed ({e}); {FIX_HINT}") from e
    return bindings._lib


def api_version(lib: ctypes.CDLL | None = None) -> int | None:
    """llama_glass_api_version() of the loaded library, or None for an unpatched build."""
    lib = lib or llama_library()
    if not hasattr(lib, "llama_glass_api_version"):
        return None
    fn = lib.llama_glass_api_version
    fn.argtypes = []
    fn.restype = ctypes.c_int32
    return int(fn())


@functools.cache
def glass_library() -> ctypes.CDLL:
    """The loaded libllama with the GLASS functions declared; raises GlassUnavailableError if it has none."""
    lib = llama_library()
    version = api_version(lib)
    if version is None:
        raise GlassUnavailableError(
            f"the loaded llama-cpp-python library ({getattr(lib, '_name', '?')}) is not patched for GLASS: "
            f"it has no llama_glass_api_version(); {FIX_HINT}"
        )
    if version != EXPECTED_API_VERSION:
        raise GlassUnavailableError(
            f"the loaded libllama has GLASS API version {version}, this glass-gguf needs {EXPECTED_API_VERSION}; "
            f"{FIX_HINT}"
        )
    return lib
