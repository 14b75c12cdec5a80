"""GLASS models and sidecars: add a prior to a model GGUF (convert), write it beside one, or take it out (strip).

- embed_prior: every key/value record and tensor-info record of the model is copied byte for byte and in order,
  its data section as one block; the glass.* keys and blk.{i}.ffn_glass_prior tensors are appended after them. In
  the metadata form (portable: stock llama.cpp loads the file as a dense model) the scores are glass.prior.blk.{i}
  array keys instead, and the tensors and data section are the model's alone.
- write_sidecar: only the prior tensors and glass.* keys, next to an untouched model (stock llama.cpp refuses a
  file with tensors it does not know).
- strip: the model without anything GLASS added; for a file made by embed_prior (either form), the original bytes
  exactly.
Inputs are checked (validate.py) and an output is never one of the inputs (paths.check_outputs).
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from gguf import GGUFReader

from . import schema
from .atomic import atomic_output
from .errors import GlassFormatError
from .fingerprint import model_info
from .gguf_reader import open_gguf
from .gguf_writer import align, encode_tensor_info, layout, write_data, write_header
from .paths import check_outputs
from .prior_file import Prior, glass_kvs, prior_tensors, write_prior
from .settings import check_density, check_lambda, check_layer_scale
from .validate import checked_records, validate_prior


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """model.gguf -> model.glass-prior.gguf"""
    p = Path(model_path)
    stem = p.name[: -len(".gguf")] if p.name.endswith(".gguf") else p.name
    return p.with_name(stem + schema.SIDECAR_SUFFIX)


def embed_prior(
    model_path: str | os.PathLike, prior: Prior, out_path: str | os.PathLike, *, density: float, lam: float,
    form: str = schema.FORM_TENSORS, warmup: int | None = None, refresh: int | None = None,
    layer_scale: list[float] | None = None,
) -> Path:
    """A GLASS model: every key and tensor of the model byte for byte, then the glass.* keys and the prior, as
    tensors (form "tensors", the default) or as one array key per layer (form "metadata", portable).

    A model that already carries a prior (in either form) has it replaced.
    """
    model_path, out_path = Path(model_path), Path(out_path)
    check_outputs([out_path], [model_path])
    reader = _checked_model(model_path, prior)
    prior = replace(prior, density=check_density(density), lam=check_lambda(lam), warmup=warmup, refresh=refresh,
                    layer_scale=check_layer_scale(layer_scale, prior.n_layer))
    tensors = prior_tensors(prior, with_sums=False) if form == schema.FORM_TENSORS else []
    _rewrite(reader, out_path, glass_kvs(prior, with_shard=False, form=form), tensors)
    return out_path


def write_sidecar(
    model_path: str | os.PathLike, prior: Prior, out_path: str | os.PathLike | None, *, density: float, lam: float,
    warmup: int | None = None, refresh: int | None = None, layer_scale: list[float] | None = None,
) -> Path:
    """A sidecar for an untouched model (default name: sidecar_path), checked against the model."""
    out_path = Path(out_path or sidecar_path(model_path))
    check_outputs([out_path], [model_path])
    _checked_model(Path(model_path), prior)
    prior = replace(prior, density=check_density(density), lam=check_lambda(lam), warmup=warmup, refresh=refresh,
                    layer_scale=check_layer_scale(layer_scale, prior.n_layer), shard=None)
    return write_prior(out_path, prior, with_sums=False)


def strip(glass_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """A stock GGUF from a GLASS model (either form): without the prior and glass.* keys, else byte for byte."""
    glass_path, out_path = Path(glass_path), Path(out_path)
    check_outputs([out_path], [glass_path])
    records = checked_records(glass_path)
    if records.form is None:
        raise GlassFormatError(f"{glass_path.name} carries no GLASS prior: nothing to strip")
    if not records.has_model:
        raise GlassFormatError(f"{glass_path.name} is a prior file or sidecar, not a model: nothing would be left")
    _rewrite(open_gguf(glass_path), out_path, [], [])
    return out_path


def _checked_model(model_path: Path, prior: Prior) -> GGUFReader:
    """The model's reader, once its own GLASS records (a prior it already carries) and the new prior are checked."""
    checked_records(model_path)
    reader = open_gguf(model_path)
    validate_prior(prior, model_info(reader, model_path.name), model_path.name)
    return reader


def _record_bytes(mm, field) -> bytes:
    """The bytes of one key/value or tensor-info record as they stand in the file."""
    return bytes(mm[field.offset : field.offset + sum(int(p.nbytes) for p in field.parts)])


def _rewrite(reader: GGUFReader, out_path: Path, extra_kvs: list[bytes], extra_tensors) -> None:
    """Write the non-GLASS part of `reader` verbatim, then `extra_kvs` and `extra_tensors` (name, array)."""
    mm = reader.data
    alignment = int(reader.alignment)
    kvs = [_record_bytes(mm, f) for name, f in reader.fields.items()
           if not name.startswith("GGUF.") and not name.startswith(schema.KEY_PREFIX)]
    kept = [t for t in reader.tensors if not schema.is_glass_tensor(t.name)]
    dropped = [t for t in reader.tensors if schema.is_glass_tensor(t.name)]
    base = reader.data_offset
    kept_end = max((t.data_offset - base + t.n_bytes for t in kept), default=0)
    if not dropped or kept_end <= min(t.data_offset - base for t in dropped):
        # the model's tensors keep their offsets: copy their infos and the data section as they are
        data_end = min((t.data_offset - base for t in dropped), default=mm.size - base)
        infos = [_record_bytes(mm, t.field) for t in kept]
        chunks = [(0, mm[base : base + data_end])]
        next_offset = data_end
    else:  # GLASS tensors sit between model tensors (not a file of ours): lay the model's tensors out afresh
        infos, chunks, next_offset = [], [], 0
        for t in kept:
            next_offset = align(next_offset, alignment)
            infos.append(encode_tensor_info(t.name, t.field.parts[3].tolist(), int(t.tensor_type), next_offset))
            chunks.append((next_offset, mm[t.data_offset : t.data_offset + t.n_bytes]))
            next_offset += t.n_bytes
    new_infos, new_chunks, _ = layout(extra_tensors, alignment, start=next_offset)
    with atomic_output(out_path) as f:
        write_header(f, bytes(mm[:8]), kvs + extra_kvs, infos + new_infos, alignment)
        write_data(f, chunks + new_chunks, alignment)
