"""The global prior and its file: the Prior record, reading, writing, validation against a model, merging.

A prior file (written by `glass-gguf prior`) is a GGUF with general.type = glass-prior, the glass.* keys, one F32
score tensor per layer and, so that shards merge exactly, the float64 sums behind the scores. The same keys and
score tensors are what a GLASS model (glass_file.embed_prior) and a sidecar (glass_file.write_sidecar) carry, so
read_prior reads all three.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType
from gguf.constants import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC

from . import schema
from .atomic import atomic_output
from .errors import GlassFormatError, PriorMismatch
from .fingerprint import ModelInfo, fingerprints_match
from .gguf_reader import field_value, open_gguf
from .gguf_writer import kv, layout, write_data, write_header


@dataclass
class Prior:
    """A global prior: one score vector per layer, and what it was computed from."""

    kind: str                       # "activation" | "impact"
    source: str                     # calibration description, e.g. "self-generated:64x128:seed=0"
    tokens: int                     # calibration tokens behind the scores
    fingerprint: str                # the model it was computed for
    scores: list[np.ndarray]        # per layer, float32 [n_ff]
    sums: list[np.ndarray] | None = None  # per layer, float64 sums of the per-token contributions (mergeable)
    shard: str | None = None        # "i/n" for a shard of a larger run
    density: float | None = None    # defaults stored with a GLASS model or sidecar
    lam: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def n_layer(self) -> int:
        return len(self.scores)


# --- validation ----------------------------------------------------------------------------------------------------


def validate_prior(prior: Prior, info: ModelInfo, name: str = "model") -> None:
    """Refuse a prior made for another model, with the wrong layer count or length, or with NaN/inf."""
    if prior.kind not in schema.PRIOR_KINDS:
        raise PriorMismatch(f"prior kind {prior.kind!r} is not one of {', '.join(schema.PRIOR_KINDS)}")
    if not fingerprints_match(prior.fingerprint, info.fingerprint):
        raise PriorMismatch(
            f"the prior was computed for another model: prior fingerprint {prior.fingerprint}, "
            f"{name} fingerprint {info.fingerprint}"
        )
    if prior.n_layer != info.n_layer:
        raise PriorMismatch(f"the prior has {prior.n_layer} layers, {name} has {info.n_layer}")
    for i, (s, n) in enumerate(zip(prior.scores, info.n_ff)):
        if s.shape != (n,):
            raise PriorMismatch(f"layer {i}: the prior has {s.size} values, {name}'s FFN has {n} neurons")
    check_finite(prior)


def check_finite(prior: Prior) -> None:
    for i, s in enumerate(prior.scores):
        if not np.all(np.isfinite(s)):
            raise PriorMismatch(f"layer {i}: the prior contains NaN or inf")


# --- the records a prior adds to a GGUF ------------------------------------------------------------------------------


def glass_kvs(prior: Prior, with_shard: bool) -> list[bytes]:
    """The glass.* key/value records of a prior, in schema order."""
    kvs = [
        kv(schema.KEY_VERSION, GGUFValueType.UINT32, schema.GLASS_VERSION),
        kv(schema.KEY_PRIOR_KIND, GGUFValueType.STRING, prior.kind),
        kv(schema.KEY_PRIOR_SOURCE, GGUFValueType.STRING, prior.source),
        kv(schema.KEY_PRIOR_TOKENS, GGUFValueType.UINT64, int(prior.tokens)),
        kv(schema.KEY_MODEL_FINGERPRINT, GGUFValueType.STRING, prior.fingerprint),
    ]
    if prior.density is not None:
        kvs.append(kv(schema.KEY_DENSITY, GGUFValueType.FLOAT32, float(prior.density)))
    if prior.lam is not None:
        kvs.append(kv(schema.KEY_LAMBDA, GGUFValueType.FLOAT32, float(prior.lam)))
    if with_shard and prior.shard is not None:
        kvs.append(kv(schema.KEY_PRIOR_SHARD, GGUFValueType.STRING, prior.shard))
    return kvs


def prior_tensors(prior: Prior, with_sums: bool) -> list[tuple[str, np.ndarray]]:
    """(name, array) of the score tensors, and of the sums behind them if asked and known."""
    out = []
    for i, s in enumerate(prior.scores):
        out.append((schema.prior_tensor_name(i), np.ascontiguousarray(s, dtype=np.float32)))
        if with_sums and prior.sums is not None:
            out.append((schema.prior_sum_tensor_name(i), np.ascontiguousarray(prior.sums[i], dtype=np.float64)))
    return out


# --- reading and writing -------------------------------------------------------------------------------------------


def write_prior(path: str | os.PathLike, prior: Prior, *, with_sums: bool = True) -> Path:
    """A prior file (or, without sums and with density/lambda, a sidecar): glass.* keys and per-layer tensors."""
    check_finite(prior)
    kvs = [kv("general.type", GGUFValueType.STRING, schema.PRIOR_FILE_TYPE)] + glass_kvs(prior, with_shard=True)
    infos, chunks, _ = layout(prior_tensors(prior, with_sums), GGUF_DEFAULT_ALIGNMENT)
    with atomic_output(path) as f:
        write_header(f, struct.pack("<II", GGUF_MAGIC, 3), kvs, infos, GGUF_DEFAULT_ALIGNMENT)
        write_data(f, chunks, GGUF_DEFAULT_ALIGNMENT)
    return Path(path)


def read_prior(path: str | os.PathLike) -> Prior:
    """The prior in a prior file, a sidecar or a GLASS model."""
    name = Path(path).name
    reader = open_gguf(path)
    version = field_value(reader, schema.KEY_VERSION)
    if version is None:
        raise GlassFormatError(f"{name}: no GLASS prior in this file (no {schema.KEY_VERSION} key)")
    if version != schema.GLASS_VERSION:
        raise GlassFormatError(f"{name}: GLASS schema version {version}, this tool reads {schema.GLASS_VERSION}")
    scores, sums = _read_layers(reader, name)
    kind = field_value(reader, schema.KEY_PRIOR_KIND)
    if kind not in schema.PRIOR_KINDS:
        raise GlassFormatError(f"{name}: {schema.KEY_PRIOR_KIND} is {kind!r}, expected one of {schema.PRIOR_KINDS}")
    return Prior(
        kind=kind,
        source=field_value(reader, schema.KEY_PRIOR_SOURCE, ""),
        tokens=int(field_value(reader, schema.KEY_PRIOR_TOKENS, 0)),
        fingerprint=field_value(reader, schema.KEY_MODEL_FINGERPRINT, ""),
        scores=scores,
        sums=sums if all(s is not None for s in sums) else None,
        shard=field_value(reader, schema.KEY_PRIOR_SHARD),
        density=field_value(reader, schema.KEY_DENSITY),
        lam=field_value(reader, schema.KEY_LAMBDA),
    )


def _read_layers(reader, name: str) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Scores (and sums, None where absent) of layers 0 .. N-1; refuses gaps and stray prior tensors."""
    tensors = {t.name: t for t in reader.tensors}
    scores, sums = [], []
    while schema.prior_tensor_name(len(scores)) in tensors:
        i = len(scores)
        t = tensors[schema.prior_tensor_name(i)]
        if t.tensor_type != GGMLQuantizationType.F32 or len(t.shape) != 1:
            raise GlassFormatError(f"{name}: {t.name} must be a 1-D F32 tensor, found {t.tensor_type.name}")
        scores.append(np.array(t.data, dtype=np.float32))
        st = tensors.get(schema.prior_sum_tensor_name(i))
        sums.append(None if st is None else np.array(st.data, dtype=np.float64))
    stray = [n for n in tensors if schema.is_glass_tensor(n) and int(n.split(".")[1]) >= len(scores)]
    if not scores or stray:
        raise GlassFormatError(f"{name}: the prior tensors are not blk.0 .. blk.N-1 ({len(scores)} found in order)")
    return scores, sums


# --- merging -------------------------------------------------------------------------------------------------------


def merge_priors(priors: list[Prior]) -> Prior:
    """The exact union of priors over disjoint calibration data: sums and token counts add up."""
    if not priors:
        raise GlassFormatError("nothing to merge")
    first = priors[0]
    for p in priors:
        _check_mergeable(first, p)
    labels = [(p.source, p.shard) for p in priors]
    dupes = {lab for lab in labels if labels.count(lab) > 1}
    if dupes:
        src, shard = sorted(dupes, key=str)[0]
        raise GlassFormatError(f"the same prior is given twice (source {src!r}, shard {shard}): merging would count it twice")
    tokens = sum(p.tokens for p in priors)
    if tokens <= 0:
        raise GlassFormatError("the merged priors hold no calibration tokens")
    sums = [np.sum([p.sums[i] for p in priors], axis=0) for i in range(first.n_layer)]
    sources = list(dict.fromkeys(p.source for p in priors))
    return Prior(
        kind=first.kind,
        source=sources[0] if len(sources) == 1 else "+".join(sources),
        tokens=tokens,
        fingerprint=first.fingerprint,
        scores=[(s / tokens).astype(np.float32) for s in sums],
        sums=sums,
        shard=_merged_shard({p.shard for p in priors}),
    )


def _check_mergeable(first: Prior, p: Prior) -> None:
    if p.sums is None:
        raise GlassFormatError(f"prior from {p.source!r} holds no sums (made from an imatrix?): it cannot be merged")
    if p.kind != first.kind:
        raise PriorMismatch(f"cannot merge an {first.kind} prior with an {p.kind} prior")
    if not fingerprints_match(p.fingerprint, first.fingerprint):
        raise PriorMismatch(f"cannot merge priors of different models: {first.fingerprint} vs {p.fingerprint}")
    if [len(s) for s in p.sums] != [len(s) for s in first.sums]:
        raise PriorMismatch("cannot merge priors with different layer counts or lengths")


def _merged_shard(shards: set) -> str | None:
    """None when the merge is complete (or mixes whole runs); "i,j/n" while shards of n are still missing."""
    if None in shards:
        return None
    ns = {s.split("/")[1] for s in shards}
    if len(ns) == 1 and len(shards) < int(next(iter(ns))):
        return ",".join(sorted(s.split("/")[0] for s in shards)) + "/" + next(iter(ns))
    return None
