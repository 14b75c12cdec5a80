"""Activation priors from llama.cpp importance matrices (`llama-imatrix`), legacy .dat or GGUF.

An imatrix holds, for the input of every matmul, the per-column sum of squares over the calibration tokens and a
token count (tools/imatrix/imatrix.cpp in the vendored llama.cpp). The input of `blk.N.ffn_down.weight` is h, so

    s[j] = sqrt( sum_t h_t[j]^2 / count )      (the root mean square of h_t[j])

stands in for A-GLASS's mean |h_t[j]|. Formats:
- GGUF (general.type = "imatrix"): tensors `{name}.in_sum2` F32 [n_mat, n] and `{name}.counts` F32 [n_mat, 1].
- legacy .dat: int32 n_entries; per entry int32 len, name, int32 ncall, int32 nval, float32[nval] holding
  (sum / count) * ncall; then int32 last_chunk and int32 len + the dataset name.
"""
from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import GlassFormatError, PriorMismatch
from .fingerprint import ModelInfo
from .gguf_reader import field_value, open_gguf
from .paths import regular_file
from .prior_file import Prior

FFN_DOWN = "blk.{layer}.ffn_down.weight"


@dataclass
class ImatrixEntry:
    sum2: np.ndarray   # float64 [n_mat, n]: sum of squares (legacy: mean square times ncall)
    count: np.ndarray  # float64 [n_mat]: tokens (legacy: ncall)


@dataclass
class Imatrix:
    entries: dict[str, ImatrixEntry]
    tokens: int        # calibration tokens (0 when the legacy format does not say)
    chunks: int
    digest: str
    fmt: str           # "gguf" | "dat"


def read_imatrix(path: str | os.PathLike) -> Imatrix:
    path = Path(path)
    regular_file(path)   # a named pipe would block
    with open(path, "rb") as f:
        magic = f.read(4)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    if magic == b"GGUF":
        return _read_gguf(path, digest)
    return _read_dat(path, digest)


def _read_gguf(path: Path, digest: str) -> Imatrix:
    reader = open_gguf(path)
    if field_value(reader, "general.type") != "imatrix":
        raise GlassFormatError(f"{path.name}: a GGUF but not an imatrix (general.type is not 'imatrix')")
    tensors = {t.name: t for t in reader.tensors}
    entries = {}
    for name, t in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        base = name[: -len(".in_sum2")]
        counts = tensors.get(base + ".counts")
        if counts is None:
            raise GlassFormatError(f"{path.name}: {name} has no matching {base}.counts")
        sum2 = np.asarray(t.data, dtype=np.float64).reshape(-1, int(t.shape[0]))
        count = np.asarray(counts.data, dtype=np.float64).reshape(-1)
        if len(count) != sum2.shape[0]:
            raise GlassFormatError(f"{path.name}: {base}: {sum2.shape[0]} matrices but {len(count)} counts")
        entries[base] = ImatrixEntry(sum2, count)
    tokens = max((int(e.count.max()) for e in entries.values()), default=0)
    chunks = int(field_value(reader, "imatrix.chunk_count", 0) or 0)
    return Imatrix(entries, tokens, chunks, digest, "gguf")


def _read_dat(path: Path, digest: str) -> Imatrix:
    data = path.read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise GlassFormatError(f"{path.name}: truncated or not an imatrix (legacy .dat) file")
        out = struct.unpack_from(fmt, data, pos)
        pos += size
        return out

    (n_entries,) = take("<i")
    if not (0 < n_entries < 1_000_000):
        raise GlassFormatError(f"{path.name}: not an imatrix file (neither GGUF nor legacy .dat)")
    entries = {}
    for _ in range(n_entries):
        (length,) = take("<i")
        if not (0 < length < 4096):
            raise GlassFormatError(f"{path.name}: corrupt legacy imatrix (entry name length {length})")
        name = take(f"<{length}s")[0].decode("utf-8", errors="replace")
        ncall, nval = take("<ii")
        values = np.array(take(f"<{nval}f"), dtype=np.float64)
        entries[name] = ImatrixEntry(values.reshape(1, -1), np.array([max(ncall, 1)], dtype=np.float64))
    chunks = take("<i")[0] if pos + 4 <= len(data) else 0
    return Imatrix(entries, 0, chunks, digest, "dat")


def prior_from_imatrix(path: str | os.PathLike, info: ModelInfo) -> Prior:
    """An activation prior for the model described by `info`, from the ffn_down entries of an imatrix."""
    im = read_imatrix(path)
    name = Path(path).name
    scores = []
    for i, n_ff in enumerate(info.n_ff):
        entry = im.entries.get(FFN_DOWN.format(layer=i))
        if entry is None:
            raise PriorMismatch(f"{name}: no entry for {FFN_DOWN.format(layer=i)}: the model has {info.n_layer} "
                                f"FFN layers (is this imatrix for another model?)")
        if entry.sum2.shape != (1, n_ff):
            raise PriorMismatch(f"{name}: {FFN_DOWN.format(layer=i)} has {entry.sum2.size} values, the model's "
                                f"FFN has {n_ff} neurons")
        if entry.count[0] <= 0:
            raise PriorMismatch(f"{name}: {FFN_DOWN.format(layer=i)} saw no tokens")
        s = np.sqrt(entry.sum2[0] / entry.count[0])
        if not np.all(np.isfinite(s)):
            raise PriorMismatch(f"{name}: {FFN_DOWN.format(layer=i)} contains NaN or inf")
        scores.append(s.astype(np.float32))
    extra = [k for k in im.entries if k.startswith("blk.") and k.endswith(".ffn_down.weight")
             and int(k.split(".")[1]) >= info.n_layer]
    if extra:
        raise PriorMismatch(f"{name}: has {extra[0]} but the model has only {info.n_layer} layers")
    return Prior(
        kind="activation",
        source=f"imatrix-{im.fmt}:sha256={im.digest}:chunks={im.chunks}",
        tokens=im.tokens,
        fingerprint=info.fingerprint,
        scores=scores,
        sums=None,
    )
