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
from gguf import GGUFValueType
from gguf.constants import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC

from . import schema
from .atomic import atomic_output
from .errors import GlassFormatError, NoPrior, PriorMismatch
from .fingerprint import fingerprints_match
from .gguf_writer import kv, kv_array, layout, write_data, write_header
from .validate import GlassRecords, check_scores, checked_records, validate_prior  # noqa: F401 (validate_prior)


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
    warmup: int | None = None       # the generation schedule stored with them (glass-gguf sweep)
    refresh: int | None = None
    layer_scale: list[float] | None = None  # per-layer density factors (glass-gguf sweep; None: uniform)
    extra: dict = field(default_factory=dict)

    @property
    def n_layer(self) -> int:
        return len(self.scores)

    @classmethod
    def from_sums(cls, kind: str, source: str, fingerprint: str, sums: list[np.ndarray], n_tokens: int,
                  shard: tuple[int, int]) -> "Prior":
        """The prior of calibration sums over n_tokens (mean per neuron), keeping the sums so shards merge exactly."""
        return cls(kind=kind, source=source, tokens=n_tokens, fingerprint=fingerprint,
                   scores=[(s / n_tokens).astype(np.float32) for s in sums], sums=sums,
                   shard=None if shard == (0, 1) else f"{shard[0]}/{shard[1]}")


# --- the records a prior adds to a GGUF ------------------------------------------------------------------------------


def glass_kvs(prior: Prior, with_shard: bool, form: str = schema.FORM_TENSORS) -> list[bytes]:
    """The glass.* key/value records of a prior, in schema order; in the metadata form (`convert --portable`) with
    glass.prior.form and one array key of scores per layer."""
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
    for key, value in ((schema.KEY_WARMUP, prior.warmup), (schema.KEY_REFRESH, prior.refresh)):
        if value is not None:
            kvs.append(kv(key, GGUFValueType.UINT32, int(value)))
    if prior.layer_scale is not None:
        kvs.append(kv_array(schema.KEY_LAYER_SCALE, GGUFValueType.FLOAT32, np.asarray(prior.layer_scale, np.float32)))
    if with_shard and prior.shard is not None:
        kvs.append(kv(schema.KEY_PRIOR_SHARD, GGUFValueType.STRING, prior.shard))
    if form == schema.FORM_METADATA:
        kvs.append(kv(schema.KEY_PRIOR_FORM, GGUFValueType.STRING, form))
        kvs += [kv_array(schema.prior_key_name(i), GGUFValueType.FLOAT32, np.asarray(s, dtype=np.float32))
                for i, s in enumerate(prior.scores)]
    elif form != schema.FORM_TENSORS:
        raise ValueError(f"unknown prior form {form!r}")
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
    for i, s in enumerate(prior.scores):
        check_scores(s, Path(path).name, schema.prior_tensor_name(i))
    kvs = [kv("general.type", GGUFValueType.STRING, schema.PRIOR_FILE_TYPE)] + glass_kvs(prior, with_shard=True)
    infos, chunks, _ = layout(prior_tensors(prior, with_sums), GGUF_DEFAULT_ALIGNMENT)
    with atomic_output(path) as f:
        write_header(f, struct.pack("<II", GGUF_MAGIC, 3), kvs, infos, GGUF_DEFAULT_ALIGNMENT)
        write_data(f, chunks, GGUF_DEFAULT_ALIGNMENT)
    return Path(path)


def read_prior(path: str | os.PathLike) -> Prior:
    """The prior in a prior file, a sidecar or a GLASS model (either form), checked (validate.checked_records)."""
    records = checked_records(path)
    if records.form is None:
        raise NoPrior(f"{Path(path).name}: no GLASS prior in this file (no {schema.KEY_VERSION} key)")
    return prior_from_records(records)


def prior_from_records(records: GlassRecords) -> Prior:
    keys = records.keys
    return Prior(
        kind=keys[schema.KEY_PRIOR_KIND],
        source=keys[schema.KEY_PRIOR_SOURCE],
        tokens=keys[schema.KEY_PRIOR_TOKENS],
        fingerprint=keys[schema.KEY_MODEL_FINGERPRINT],
        scores=records.scores,
        sums=records.sums,
        shard=keys.get(schema.KEY_PRIOR_SHARD),
        density=keys.get(schema.KEY_DENSITY),
        lam=keys.get(schema.KEY_LAMBDA),
        warmup=keys.get(schema.KEY_WARMUP),
        refresh=keys.get(schema.KEY_REFRESH),
        layer_scale=keys.get(schema.KEY_LAYER_SCALE),
    )


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
