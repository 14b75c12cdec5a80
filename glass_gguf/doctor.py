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
# aarch64 (the Features line): NEON, fp16 arithmetic, dot product (armv8.2-a+dotprod builds need asimddp), int8
# matmul, SVE, bf16
ARM_FEATURES_OF_INTEREST = ("fp", "asimd", "fphp", "asimdhp", "asimddp", "i8mm", "sve", "sve2", "bf16", "svei8mm")


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_features(cpuinfo: str | None = None) -> list[str]:
    """The CPU features llama.cpp's kernels care about, from /proc/cpuinfo (or the given text of one):
    x86 `flags` or ARM `Features`, in the order of the lists above."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        name = name.strip()
        if name in ("flags", "Features"):
            present = set(value.split())
            of_interest = CPU_FLAGS_OF_INTEREST if name == "flags" else ARM_FEATURES_OF_INTEREST
            return [f for f in of_interest if f in present]
    return []


def arm_cpu_variant(features: list[str]) -> str:
    """The GGML_CPU_ARM_ARCH of `glass-gguf build-native --target aarch64 --cpu` that these features can run."""
    return "armv8.2-a+dotprod" if "asimddp" in features else "armv8-a"


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
        **({"arm_build_cpu": arm_cpu_variant(cpu_features())} if platform.machine() == "aarch64" else {}),
        "torch_version": package_version("torch"),
        "transformers_version": package_version("transformers"),
        "python_version": platform.python_version(),
    }
