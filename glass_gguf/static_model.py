"""A statically compacted model: the first neurons of every FFN layer, written as a stock GGUF with a smaller n_ff.

It has the shapes and types GLASS's compacted weights have at the same k, with a fixed mask instead of a per-prompt
one, so stock llama.cpp decoding it is the speed GLASS can at best reach: bench times it as the ceiling.

- n_ff becomes k rounded up to the down projections' block (`static_width`), as the runtime's compacted FFN is
  (its neurons past k are zero rows and columns; here they are the next real neurons, the same bytes);
- gate and up: the first rows, whole quant blocks, copied as bytes;
- down: the first columns. In its own type (what the runtime keeps) they are a byte slice of every row; in another
  (Q8_0 under GLASS_GGUF_DOWN_Q8_0) they are dequantized and quantized again with gguf-py's gguf.quants;
- llama.cpp builds every layer of llama, qwen2, gemma3 ... with one n_ff, so the width is the same in every layer
  (a layer GLASS keeps dense is compacted here too);
- every other key and tensor is copied byte for byte; GLASS's own keys and prior tensors are left out.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType
from gguf.quants import dequantize, quantize

from . import schema
from .atomic import atomic_output
from .errors import GlassFormatError
from .gguf_reader import field_value, open_gguf
from .gguf_writer import align, encode_tensor_info, kv, write_data, write_header
from .paths import check_outputs

_FFN = re.compile(r"blk\.(\d+)\.ffn_(gate|up|down)\.weight")


def row_bytes(ggml_type: GGMLQuantizationType, n: int) -> int:
    """Bytes of n consecutive elements of a row of this type (n a multiple of its block size)."""
    block, size = GGML_QUANT_SIZES[ggml_type]
    if n % block:
        raise GlassFormatError(f"{n} elements are not whole {ggml_type.name} blocks of {block}")
    return n // block * size


def ffn_tensors(reader) -> dict[int, dict[str, object]]:
    """{layer: {"gate"|"up"|"down": ReaderTensor}} of the dense gated FFNs."""
    layers: dict[int, dict[str, object]] = {}
    for t in reader.tensors:
        m = _FFN.fullmatch(t.name)
        if m:
            layers.setdefault(int(m.group(1)), {})[m.group(2)] = t
    return layers


def padded_width(k: int, ggml_type: GGMLQuantizationType) -> int:
    """The columns of a compacted down projection of k neurons in this type: k rounded up to whole blocks."""
    block = GGML_QUANT_SIZES[ggml_type][0]
    return -(-k // block) * block


def static_width(k: int, down_types: Sequence[GGMLQuantizationType]) -> int:
    """The ceiling's n_ff: k rounded up to whole blocks of every down type."""
    return max(padded_width(k, t) for t in down_types)


def down_types_from_runtime(model_path: str | os.PathLike, glass, k: int) -> list[GGMLQuantizationType]:
    """The type the runtime compacts each layer's down projection to at k neurons, read off its own byte count
    (GlassSession.layer_bytes): of the types a compacted down can have (its own, or Q8_0 under
    GLASS_GGUF_DOWN_Q8_0), the one whose width (k padded to its blocks) makes up, with as many gate and up rows,
    the bytes the runtime reports. Layers GLASS keeps dense get the type of a compacted sparse layer with the same
    down type."""
    reader = open_gguf(model_path)
    layers = ffn_tensors(reader)
    found: dict[int, GGMLQuantizationType] = {}
    by_source: dict[GGMLQuantizationType, GGMLQuantizationType] = {}
    for il in range(glass.n_layer):
        dense, compacted = glass.layer_bytes(il)
        if dense == compacted:
            continue
        gate, up, down = (layers[il][p] for p in ("gate", "up", "down"))
        n_embd = int(down.shape[1])
        gate_up_row = row_bytes(gate.tensor_type, n_embd) + row_bytes(up.tensor_type, n_embd)
        candidates = [down.tensor_type, GGMLQuantizationType.Q8_0]
        match = [t for t in candidates
                 if (w := padded_width(k, t)) * gate_up_row + n_embd * row_bytes(t, w) == compacted]
        if not match:
            raise GlassFormatError(f"layer {il}: the runtime reports {compacted} bytes of compacted FFN at k = {k}, "
                                   f"which no candidate down type ({[t.name for t in candidates]}) makes up")
        found[il] = by_source[down.tensor_type] = match[0]
    if not found:
        raise GlassFormatError("GLASS compacts no layer of this model: there is no static counterpart to time")
    out = []
    for il in range(glass.n_layer):
        source = layers[il]["down"].tensor_type
        if il not in found and source not in by_source:
            raise GlassFormatError(f"layer {il} stays dense under GLASS and no sparse layer has its down type "
                                   f"{source.name}: its compacted type is unknown")
        out.append(found.get(il, by_source.get(source)))
    return out


def _first_rows(t, k: int) -> np.ndarray:
    """The first k rows of a [rows, row bytes or elements] tensor, as stored."""
    return np.asarray(t.data)[:k]


def _first_columns(t, k: int, to_type: GGMLQuantizationType) -> np.ndarray:
    """The first k columns of every row of t, in type to_type (a byte slice when the blocks allow it)."""
    data = np.asarray(t.data)
    if to_type == t.tensor_type:
        if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.F64):
            return data[:, :k]
        return data[:, : row_bytes(to_type, k)]
    columns = dequantize(data, t.tensor_type)[:, :k]
    return quantize(np.ascontiguousarray(columns, dtype=np.float32), to_type)


def write_static(model_path: str | os.PathLike, out_path: str | os.PathLike, k: int,
                 down_types: Sequence[GGMLQuantizationType]) -> Path:
    """Write model_path with every FFN cut to its first static_width(k, down_types) neurons (down of layer i in
    down_types[i]), atomically."""
    model_path, out_path = Path(model_path), Path(out_path)
    check_outputs([out_path], [model_path])
    reader = open_gguf(model_path)
    arch = field_value(reader, "general.architecture")
    ff_key = f"{arch}.feed_forward_length"
    layers = ffn_tensors(reader)
    if not layers or any(set(parts) != {"gate", "up", "down"} for parts in layers.values()):
        raise GlassFormatError(f"{model_path.name}: not every layer has a gated FFN (ffn_gate, ffn_up, ffn_down)")
    n_ff = {int(p["down"].shape[0]) for p in layers.values()}
    if len(n_ff) != 1 or not 0 < k <= min(n_ff):
        raise GlassFormatError(f"{model_path.name}: k = {k} for FFN widths {sorted(n_ff)}")
    if len(down_types) != len(layers):
        raise GlassFormatError(f"{len(down_types)} down types for {len(layers)} layers")
    k = min(static_width(k, down_types), min(n_ff))

    mm = reader.data
    kvs = [bytes(mm[f.offset : f.offset + sum(int(p.nbytes) for p in f.parts)]) for name, f in reader.fields.items()
           if not name.startswith("GGUF.") and not name.startswith(schema.KEY_PREFIX) and name != ff_key]
    kvs.append(kv(ff_key, GGUFValueType.UINT32, k))

    alignment = int(reader.alignment)
    infos, chunks, offset = [], [], 0
    for t in reader.tensors:
        if schema.is_glass_tensor(t.name):
            continue
        ne, ggml_type = [int(n) for n in t.shape], t.tensor_type
        m = _FFN.fullmatch(t.name)
        if m is None:
            data = mm[t.data_offset : t.data_offset + t.n_bytes]
        elif m.group(2) == "down":
            ggml_type = GGMLQuantizationType(down_types[int(m.group(1))])
            data, ne = _first_columns(t, k, ggml_type), [k, ne[1]]
        else:
            data, ne = _first_rows(t, k), [ne[0], k]
        offset = align(offset, alignment)
        infos.append(encode_tensor_info(t.name, ne, int(ggml_type), offset))
        view = memoryview(np.ascontiguousarray(data)).cast("B") if isinstance(data, np.ndarray) else data
        chunks.append((offset, view))
        offset += len(view)
    with atomic_output(out_path) as f:
        write_header(f, bytes(mm[:8]), kvs, infos, alignment)
        write_data(f, chunks, alignment)
    return out_path
