"""What a GGUF is (model, GLASS model, prior file, sidecar), its FFN shape, glass.* keys, the form of its prior
(tensors or metadata) and a per-layer summary of it. The file is checked first (validate.checked_records); a prior
file or sidecar whose layers do not match the model its fingerprint names (a layer missing, or of another length)
is described all the same, with `invalid` saying why it cannot be used."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import schema
from .errors import UnsupportedModel
from .fingerprint import model_info
from .gguf_reader import field_value, open_gguf
from .validate import checked_records


def inspect_file(path: str | os.PathLike) -> dict:
    """A JSON-ready description of a GGUF: file, bytes, tensors, type, model shape, glass keys, prior form and per
    layer summary (the per-layer score keys of the metadata form are summarized, not listed)."""
    path = Path(path)
    reader = open_gguf(path)
    records = checked_records(path)
    keys = records.keys
    out: dict = {"file": str(path), "bytes": path.stat().st_size, "tensors": len(reader.tensors)}
    gtype = field_value(reader, "general.type")
    has_model = records.has_model
    if has_model:
        try:
            info = model_info(reader, path.name)
            n_ff = info.n_ff[0] if len(set(info.n_ff)) == 1 else list(info.n_ff)
            out.update(arch=info.arch, layers=info.n_layer, n_embd=info.n_embd, n_ff=n_ff,
                       fingerprint=info.fingerprint)
        except UnsupportedModel as e:
            out.update(arch=field_value(reader, "general.architecture"), unsupported=str(e))
    out["type"] = _file_type(has_model, keys, gtype)
    out["glass"] = keys
    if records.form is not None:
        out["form"] = records.form
        if records.sums is not None:
            out["mergeable"] = True
        if records.warnings:
            out["warnings"] = records.warnings
        out["prior"] = [layer_summary(i, s) for i, s in enumerate(records.scores)]
        if not has_model:
            problem = prior_shape_problem(keys.get(schema.KEY_MODEL_FINGERPRINT, ""), records.scores)
            if problem:
                out["invalid"] = problem
    return out


def prior_shape_problem(fingerprint: str, scores: list) -> str | None:
    """What is wrong with a prior's layers for the model its fingerprint names (glass-fp1:ARCH:LxExF:...: L layers
    of F neurons each, F "var" when the layers differ), or None."""
    shape = fingerprint.split(":")[2] if fingerprint.count(":") >= 4 else ""
    try:
        n_layer, _, n_ff = shape.split("x")
        n_layer = int(n_layer)
    except ValueError:
        return None
    if len(scores) != n_layer:
        return f"the prior has {len(scores)} layers, the model it was computed for has {n_layer}"
    if n_ff != "var":
        for i, s in enumerate(scores):
            if len(s) != int(n_ff):
                return f"layer {i} has {len(s)} values, the model it was computed for has {n_ff} FFN neurons per layer"
    return None


def _file_type(has_model: bool, keys: dict, gtype) -> str:
    if has_model:
        return "GLASS model" if keys else "model"
    if keys:
        return "sidecar" if schema.KEY_DENSITY in keys else "prior"
    return str(gtype or "unknown")


def top_share(scores: np.ndarray) -> float:
    """The share of a layer's total score held by its top 10% neurons (how peaked the prior is)."""
    s = np.asarray(scores, dtype=np.float64)
    total = s.sum()
    return float(np.sort(s)[::-1][: max(1, len(s) // 10)].sum() / total) if total > 0 else float("nan")


def layer_summary(layer: int, scores: np.ndarray) -> dict:
    s = np.asarray(scores, dtype=np.float64)
    return {"layer": layer, "n": len(s), "min": float(s.min()), "mean": float(s.mean()), "max": float(s.max()),
            "top10_share": top_share(s)}
