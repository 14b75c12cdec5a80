"""The quantization ladder of a model, made by llama.cpp's own quantizer (llama_model_quantize of the patched
llama-cpp-python), with an importance matrix where the type wants one.

What a user who wants a faster model does instead of GLASS: a smaller quantization of the same weights. The rungs
are the file types `llama-quantize` offers (Q8_0 ... Q2_K, IQ4_XS, IQ3_S ...), each made from the highest-precision
weights at hand: a higher-precision GGUF when there is one, else the model itself, requantized (allow_requantize,
as `llama-quantize --allow-requantize`). llama.cpp picks the type of every tensor from the file type, exactly as the
command does (K- and IQ-types fall back to Q5_0/Q8_0/IQ4_NL ... for tensors whose rows are not a multiple of 256:
on these small models that is most attention and gate/up tensors, so a rung's real bits per weight is reported).

The importance matrix (a llama-imatrix GGUF or legacy .dat, read by imatrix.py) is handed over as llama.h's
NULL-terminated `llama_model_imatrix_data` array: per tensor, the mean square of each input column over the
calibration tokens (in_sum2 / counts), which is what llama-quantize passes. IQ1/IQ2 and IQ3_XXS refuse to be made
without one (llama.cpp's rule, checked here first); the other low-bit types (WANTS_IMATRIX) take it when given.

Every rung is written to a temporary name and renamed into place when llama.cpp returns success.
"""
from __future__ import annotations

import ctypes
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import prepare_folder, temporary_name
from .errors import FileAccessError, GlassGGUFError, SettingError


class QuantizeError(GlassGGUFError):
    """llama.cpp's quantizer could not make a rung (a type it cannot make, a failed run); one line says which."""


@dataclass(frozen=True)
class QuantType:
    name: str        # as llama-quantize spells it
    ftype: int       # llama.h's enum llama_ftype
    bpw: float       # nominal bits per weight of the main type (the estimate for the disk check)


# llama.h enum llama_ftype; bits per weight of the main tensor type (ggml block sizes). Q4_0/Q4_1 ... are listed so
# that a user's own file type can be named; TQ1_0/TQ2_0 (ternary models only), MXFP4_MOE (experts only), NVFP4 and
# Q1_0/Q2_0 are not offered: they are not general-purpose CPU rungs of a dense model.
QUANT_TYPES = {q.name: q for q in [
    QuantType("F16", 1, 16.0), QuantType("BF16", 32, 16.0), QuantType("Q8_0", 7, 8.5),
    QuantType("Q6_K", 18, 6.5625), QuantType("Q5_K_M", 17, 5.69), QuantType("Q5_K_S", 16, 5.54),
    QuantType("Q5_1", 9, 6.0), QuantType("Q5_0", 8, 5.5), QuantType("Q4_K_M", 15, 4.89),
    QuantType("Q4_K_S", 14, 4.58), QuantType("Q4_1", 3, 5.0), QuantType("Q4_0", 2, 4.5),
    QuantType("IQ4_NL", 25, 4.5), QuantType("IQ4_XS", 30, 4.25), QuantType("Q3_K_L", 13, 4.27),
    QuantType("Q3_K_M", 12, 3.91), QuantType("Q3_K_S", 11, 3.5), QuantType("IQ3_M", 27, 3.66),
    QuantType("IQ3_S", 26, 3.44), QuantType("IQ3_XS", 22, 3.3), QuantType("IQ3_XXS", 23, 3.06),
    QuantType("Q2_K", 10, 3.35), QuantType("Q2_K_S", 21, 3.0), QuantType("IQ2_M", 29, 2.7),
    QuantType("IQ2_S", 28, 2.5), QuantType("IQ2_XS", 20, 2.31), QuantType("IQ2_XXS", 19, 2.06),
    QuantType("IQ1_M", 31, 1.75), QuantType("IQ1_S", 24, 1.56),
]}

# The ladder measured by default: what users reach for, from near-lossless down to the smallest usable types.
DEFAULT_LADDER = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K", "IQ4_XS", "IQ3_S")
# llama.cpp refuses these without an importance matrix (tensor_requires_imatrix in src/llama-quant.cpp).
NEEDS_IMATRIX = ("IQ3_XXS", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S", "Q2_K_S")
# The low-bit types llama.cpp recommends an importance matrix for: they get one when there is one.
WANTS_IMATRIX = NEEDS_IMATRIX + ("IQ4_XS", "IQ4_NL", "IQ3_M", "IQ3_S", "IQ3_XS", "Q3_K_L", "Q3_K_M", "Q3_K_S",
                                 "Q2_K")
# bits per weight a rung may really cost on rows that are not a multiple of 256 (fallbacks up to Q8_0)
FALLBACK_BPW = 8.5


def quant_type(name: str) -> QuantType:
    """The rung called `name` (case-insensitive), or one SettingError line naming what can be made."""
    q = QUANT_TYPES.get(str(name).strip().upper())
    if q is None:
        raise SettingError(f"{name!r} is not a quantization type the CPU quantizer makes here; choose from "
                           f"{', '.join(QUANT_TYPES)}")
    return q


def parse_ladder(text: str) -> list[QuantType]:
    """"Q8_0,Q4_K_M,..." -> the rungs, each checked, no repeats."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    if not names:
        raise SettingError("the ladder is empty: name at least one quantization type")
    return list(dict.fromkeys(quant_type(n) for n in names))


def imatrix_data(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{tensor name: float32 mean square per input column} of an importance matrix, as llama-quantize loads it
    (in_sum2 / counts per matrix; a matrix that saw no tokens gets 1, as llama-quantize does)."""
    from .imatrix import read_imatrix

    out = {}
    for name, e in read_imatrix(path).entries.items():
        counts = np.where(e.count > 0, e.count, np.nan)[:, None]
        values = np.where(np.isnan(counts), 1.0, e.sum2 / counts)
        out[name] = np.ascontiguousarray(values.reshape(-1), dtype=np.float32)
    return out


def estimated_bytes(model: str | os.PathLike, q: QuantType) -> int:
    """An upper estimate of the rung's file size: every weight at the type's bits, or at Q8_0's where llama.cpp may
    fall back (rows that are not a multiple of 256), 1-D tensors in F32, plus the model's metadata."""
    from .gguf_reader import open_gguf

    reader = open_gguf(model)
    total = int(reader.tensors[0].data_offset) if reader.tensors else 0   # header and metadata
    for t in reader.tensors:
        n = int(np.prod([int(x) for x in t.shape]))
        if len(t.shape) == 1 or int(t.shape[1]) == 1:
            total += 4 * n
        else:
            row = int(t.shape[0])
            bpw = q.bpw if row % 256 == 0 or q.bpw >= FALLBACK_BPW else FALLBACK_BPW
            total += int(n * max(bpw, 4.5 if t.name in ("token_embd.weight", "output.weight") else 0) / 8)
    return total


def check_disk_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """One FileAccessError line, before anything is written, when `folder`'s file system has less than `needed`
    bytes free (with a 5% margin)."""
    folder = Path(folder)
    probe = folder if folder.exists() else next((p for p in folder.parents if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    if needed * 1.05 > free:
        raise FileAccessError(f"{what} needs about {needed / 1e6:.0f} MB in {folder} but only {free / 1e6:.0f} MB "
                              "are free: free some space or choose another folder (--work-dir)")


def quantize(source: str | os.PathLike, out: str | os.PathLike, q: QuantType | str,
             imatrix: dict[str, np.ndarray] | None = None, threads: int | None = None) -> Path:
    """`out`: `source` quantized to file type q by llama_model_quantize (requantizing a quantized source), with the
    importance matrix when q is in WANTS_IMATRIX and one is given. Written atomically; never over the source."""
    import llama_cpp
    from llama_cpp._logger import set_verbose

    from .paths import check_outputs, regular_file

    q = quant_type(q) if isinstance(q, str) else q
    source, out = Path(source), Path(out)
    regular_file(source)
    check_outputs([out], [source])
    use_imatrix = imatrix if (imatrix and q.name in WANTS_IMATRIX) else None
    if q.name in NEEDS_IMATRIX and not use_imatrix:
        raise QuantizeError(f"{q.name} cannot be made without an importance matrix (llama.cpp's rule): pass one "
                            "(--imatrix FILE, from llama-imatrix) or leave the type out of the ladder")
    set_verbose(False)      # llama.cpp's errors only, not a line per tensor
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = int(threads or 0)
    params.ftype = q.ftype
    params.allow_requantize = True
    keep = []   # the buffers llama.cpp reads, alive until it returns
    if use_imatrix:
        entries = (llama_cpp.llama_model_imatrix_data * (len(use_imatrix) + 1))()
        for i, (name, values) in enumerate(sorted(use_imatrix.items())):
            name_b = name.encode()
            keep += [name_b, values]
            entries[i].name = name_b
            entries[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entries[i].size = values.size
        entries[len(use_imatrix)].name = None   # the terminator
        params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
        keep.append(entries)
    prepare_folder(out)
    tmp = temporary_name(out)
    try:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if status != 0 or not tmp.exists():
            raise QuantizeError(f"llama.cpp's quantizer could not make {q.name} from {source.name} (status {status})")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def file_type_name(model: str | os.PathLike) -> str:
    """The model's file type as llama-quantize names it (general.file_type), e.g. "Q4_1"; "?" when unknown."""
    from .gguf_reader import field_value, open_gguf

    ftype = field_value(open_gguf(model), "general.file_type", None)
    if ftype == 0:
        return "F32"
    return next((q.name for q in QUANT_TYPES.values() if q.ftype == ftype), "?")


def bits_per_weight(model: str | os.PathLike) -> float:
    """The file's real bits per weight: the bytes of its 2-D weight tensors over their element count."""
    from .gguf_reader import open_gguf

    bits = weights = 0
    for t in open_gguf(model).tensors:
        if len(t.shape) >= 2 and int(t.shape[1]) > 1:
            bits += 8 * int(t.n_bytes)
            weights += int(np.prod([int(x) for x in t.shape]))
    return bits / weights if weights else float("nan")
