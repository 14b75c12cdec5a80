"""HF checkpoint -> GGUF with the tools of the pinned llama.cpp (`convert --outtype` for an HF folder).

convert_hf_to_gguf.py comes from the patched sdist tree our llama-cpp-python was built from (recorded in
sys.prefix/glass-gguf-build.json as "source"), so the GGUF matches the runtime that loads it. It writes f32, f16,
bf16 and q8_0 itself; the other types are quantized from an f16 intermediate by llama.cpp's own
llama_model_quantize, through the installed llama-cpp-python.
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

from .atomic import scratch_folder
from .errors import GlassFormatError
from .settings import physical_cores

CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
QUANTIZED_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m",
                   "q5_k_s", "q5_k_m", "q6_k", "iq4_nl")
OUT_TYPES = CONVERTER_TYPES + QUANTIZED_TYPES
BUILD_INFO = "glass-gguf-build.json"


def llama_cpp_tree() -> Path:
    """The vendored llama.cpp of the build in use ($GLASS_GGUF_LLAMA_CPP overrides it for development)."""
    override = os.environ.get("GLASS_GGUF_LLAMA_CPP")
    if override:
        tree = Path(override)
    else:
        info_path = Path(sys.prefix) / BUILD_INFO
        if not info_path.exists():
            raise GlassFormatError(
                f"no {BUILD_INFO} in {sys.prefix}: llama-cpp-python was not installed by "
                "tools/build_llama_cpp_python.py, so convert_hf_to_gguf.py cannot be found"
            )
        tree = Path(json.loads(info_path.read_text())["source"]) / "vendor" / "llama.cpp"
    if not (tree / "convert_hf_to_gguf.py").exists():
        raise GlassFormatError(f"{tree}: no convert_hf_to_gguf.py (the build's source tree is gone? rebuild it)")
    return tree


def hf_to_gguf(hf_dir: str | os.PathLike, out_path: str | os.PathLike, outtype: str = "f16",
               threads: int | None = None) -> Path:
    """Convert an HF checkpoint folder into a GGUF of type `outtype`, atomically."""
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    if outtype not in OUT_TYPES:
        raise GlassFormatError(f"unknown output type {outtype!r} (one of: {', '.join(OUT_TYPES)})")
    with scratch_folder(out_path) as tmp:
        first = tmp / "model.gguf"
        _run_converter(hf_dir, first, outtype if outtype in CONVERTER_TYPES else "f16")
        if outtype in QUANTIZED_TYPES:
            quantized = tmp / "quantized.gguf"
            quantize(first, quantized, outtype, threads)
            first = quantized
        os.replace(first, out_path)
    return out_path


def _run_converter(hf_dir: Path, out: Path, outtype: str) -> None:
    script = llama_cpp_tree() / "convert_hf_to_gguf.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(hf_dir), "--outfile", str(out), "--outtype", outtype],
        capture_output=True, text=True,
    )
    if proc.returncode != 0 or not out.exists():
        lines = [ln for ln in (proc.stderr + proc.stdout).strip().splitlines() if ln.strip()]
        raise GlassFormatError(f"convert_hf_to_gguf.py failed on {hf_dir.name}: {lines[-1] if lines else proc.returncode}")


def quantize(src: Path, dst: Path, outtype: str, threads: int | None = None) -> None:
    """llama_model_quantize(src -> dst) with the installed llama-cpp-python."""
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{outtype.upper()}", None)
    if ftype is None:
        raise GlassFormatError(f"this llama-cpp-python has no quantization type {outtype}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or physical_cores()
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not dst.exists():
        raise GlassFormatError(f"llama_model_quantize to {outtype} failed (status {rc})")
