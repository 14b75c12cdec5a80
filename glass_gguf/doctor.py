"""What `glass-gguf doctor` reports: the llama-cpp-python build in use and the machine it runs on."""
from __future__ import annotations

import ctypes
import importlib.metadata
import json
import platform
import sys
from pathlib import Path

from . import runtime

BUILD_INFO = Path(sys.prefix) / "glass-gguf-build.json"  # written by tools/build_llama_cpp_python.py
CPU_FLAGS_OF_INTEREST = ("sse3", "ssse3", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw",
                         "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_features() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [f for f in CPU_FLAGS_OF_INTEREST if f in flags]
    return []


def build_flags() -> dict:
    """The recipe the installed wheel was built with, and what ggml says it compiled in."""
    info = json.loads(BUILD_INFO.read_text()) if BUILD_INFO.exists() else {}
    flags = {"cmake_flags": info.get("cmake_flags"), "build_key": info.get("key"), "patches": info.get("patches")}
    try:
        lib = runtime.llama_library()
        lib.llama_print_system_info.restype = ctypes.c_char_p
        flags["system_info"] = lib.llama_print_system_info().decode()
    except runtime.GlassUnavailableError:
        flags["system_info"] = None
    return flags


def report() -> dict:
    try:
        lib = runtime.llama_library()
        lib_path = getattr(lib, "_name", None)
        version = runtime.api_version(lib)
    except runtime.GlassUnavailableError:
        lib_path, version = None, None
    return {
        "llama_cpp_python_version": package_version("llama_cpp_python"),
        "libllama_path": lib_path,
        "glass_api": version is not None,
        "glass_api_version": version,
        "build_flags": build_flags(),
        "cpu_features": cpu_features(),
        "torch_version": package_version("torch"),
        "transformers_version": package_version("transformers"),
        "python_version": platform.python_version(),
    }
