"""Reading and writing GLASS priors in GGUF files (DESIGN.md section 4).

Three kinds of file carry a prior:
- a prior file, written by `glass-gguf prior`: the glass.* keys, one F32 score tensor per layer and, for merging
  shards exactly, the float64 sums behind the scores;
- a GLASS model, written by `glass-gguf convert`: a stock GGUF with the score tensors and glass.* keys added;
- a sidecar, written by `convert --sidecar`: only the score tensors and glass.* keys, next to an untouched model.

Reading goes through gguf-py's GGUFReader (memory-mapped). Writing uses the small raw writer below instead of
GGUFWriter, because `convert` must carry every key and tensor of the model over byte for byte (GGUFWriter
re-encodes keys and re-lays out tensors), so that `strip` gives back the original file exactly: the model's
key/value records and tensor-info records are copied verbatim, its data section is copied as one block, and the
GLASS records are appended after them. Every file is written under a temporary name in the destination folder
and renamed into place only when complete.
"""
from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType
from gguf.constants import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC
from gguf.quants import dequantize

from . import schema

# Architectures whose FFN llama.cpp builds with the dense gated path the runtime hooks (DESIGN.md section 5).
SUPPORTED_GGUF_ARCHS = ("llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3")
# Families whose norm weights llama.cpp's converter stores as w + 1.
NORM_PLUS_ONE_ARCHS = ("gemma", "gemma2", "gemma3")

_COPY_BLOCK = 64 << 20


class GlassFormatError(Exception):
    """A file is not what it should be (not a GGUF, truncated, no prior ...); the message says which and why."""


class PriorMismatch(GlassFormatError):
    """A prior does not fit the model it is applied to."""


class UnsupportedModel(GlassFormatError):
    """The model's FFN is not a dense gated FFN that GLASS understands."""


# ---------------------------------------------------------------------------------------------------------------
# Reading


def open_gguf(path: str | os.PathLike) -> GGUFReader:
    """A GGUFReader on `path`, with every failure (not a GGUF, truncated, big-endian) turned into one clear error.

    Parsing a large vocabulary takes seconds, so the last few readers are kept, keyed by the file's identity
    (inode, size, modification time): a file replaced under the same name is read afresh.
    """
    path = Path(path)
    if not path.is_file():
        raise GlassFormatError(f"{path}: no such file")
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _READERS:
        _READERS[key] = _open_gguf(path, st.st_size)
        while len(_READERS) > 4:
            _READERS.pop(next(iter(_READERS)))
    return _READERS[key]


_READERS: dict[tuple, GGUFReader] = {}


class _Reader(GGUFReader):
    """GGUFReader with a faster parse of string arrays (vocabularies, merges): the same fields and parts.

    gguf-py builds each element through several numpy views (about 15 us each, 7 s for Qwen2.5's 300k strings);
    here the lengths are read with struct and only the two parts each string needs are sliced.
    """

    def _get_field_parts(self, orig_offs, raw_type):
        if GGUFValueType(raw_type) != GGUFValueType.ARRAY or self.byte_order != "I":
            return super()._get_field_parts(orig_offs, raw_type)
        raw_itype = self._get(orig_offs, np.uint32)
        alen = self._get(orig_offs + 4, np.uint64)
        n = int(alen[0])
        mm = self.data.view(np.ndarray)  # slicing a plain ndarray is much cheaper than slicing the memmap
        parts: list = [raw_itype, alen]
        offs = orig_offs + 12
        itype = GGUFValueType(raw_itype[0])
        scalar = self.gguf_scalar_to_np.get(itype)
        if scalar is not None:  # numbers: one view, one single-element part per element, as gguf-py has them
            size = np.dtype(scalar).itemsize
            if offs + n * size > len(mm):
                raise ValueError(f"array at offset {orig_offs} runs past the end of the file")
            values = mm[offs : offs + n * size].view(scalar)
            parts += [values[k : k + 1] for k in range(n)]
            return 12 + n * size, parts, list(range(2, 2 + n)), [GGUFValueType.ARRAY, itype]
        if itype != GGUFValueType.STRING:
            return super()._get_field_parts(orig_offs, raw_type)
        buf = memoryview(mm)
        idxs = []
        for _ in range(n):
            (slen,) = struct.unpack_from("<Q", buf, offs)
            if offs + 8 + slen > len(mm):
                raise ValueError(f"string array at offset {orig_offs} runs past the end of the file")
            parts.append(mm[offs : offs + 8].view(np.uint64))
            parts.append(mm[offs + 8 : offs + 8 + slen])
            idxs.append(len(parts) - 1)
            offs += 8 + slen
        return offs - orig_offs, parts, idxs, [GGUFValueType.ARRAY, GGUFValueType.STRING]


def _open_gguf(path: Path, size: int) -> GGUFReader:
    try:
        reader = _Reader(path)
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeDecodeError, struct.error) as e:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != struct.pack("<I", GGUF_MAGIC):
            raise GlassFormatError(f"{path.name}: not a GGUF file (magic {magic!r})") from e
        raise GlassFormatError(f"{path.name}: corrupt or truncated GGUF ({e})") from e
    if reader.byte_order != "I":
        raise GlassFormatError(f"{path.name}: big-endian GGUF files are not supported")
    end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=reader.data_offset)
    if end > size:
        raise GlassFormatError(f"{path.name}: truncated GGUF: tensor data needs {end} bytes, the file has {size}")
    return reader


def field_value(reader: GGUFReader, key: str, default=None):
    f = reader.get_field(key)
    if f is None:
        return default
    if f.types and f.types[0] == GGUFValueType.ARRAY:
        if f.types[-1] == GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8", errors="replace") for i in f.data]
        return [x.item() for i in f.data for x in f.parts[i]]
    value = f.contents()
    return value.item() if isinstance(value, np.generic) else value


def tensor_array(t) -> np.ndarray:
    """A tensor as a float32/float64 numpy array in its numpy shape (dequantized if needed)."""
    if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F64):
        return np.asarray(t.data)
    return dequantize(np.asarray(t.data), t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))


# ---------------------------------------------------------------------------------------------------------------
# The model: architecture, FFN sizes, fingerprint


@dataclass(frozen=True)
class ModelInfo:
    arch: str              # llama.cpp architecture name (the fingerprint's family)
    n_layer: int
    n_embd: int
    n_ff: tuple[int, ...]  # per layer
    n_vocab: int
    fingerprint: str

    def describe(self) -> str:
        return fingerprint_summary(self.fingerprint)


def _vocab_digest(tokens: list[str | None], n_vocab: int) -> str:
    """Digest of the token strings, skipping the ones converters rewrite (padding fillers, <special> tokens).

    SentencePiece's word boundary U+2581 counts as a space: a GGUF may store runs of spaces literally where the
    HF vocabulary has runs of U+2581 (Gemma 3).
    """
    h = hashlib.sha256()
    for i in range(n_vocab):
        s = tokens[i] if i < len(tokens) and tokens[i] is not None else f"[PAD{i}]"
        if re.fullmatch(r"\[PAD\d+\]", s) or (s.startswith("<") and s.endswith(">")):
            continue
        s = s.replace("\u2581", " ")
        h.update(f"{i}\t{s}\n".encode("utf-8", errors="surrogatepass"))
    return h.hexdigest()[:16]


def make_fingerprint(
    arch: str, n_embd: int, n_ff: list[int], n_vocab: int, tokens: list[str | None], norms: list[np.ndarray]
) -> str:
    """The model fingerprint, built the same way from an HF checkpoint and from a GGUF (any quantization).

    `glass-fp1:{arch}:{layers}x{n_embd}x{n_ff}:{digest}:{weights}`. The digest covers the architecture family, layer
    count, widths, vocabulary size and token strings, all exact. The weights part is 18 numbers from three norm
    vectors (final norm, attention norm of the first and last layer), which every GGUF keeps in F32, in llama.cpp's
    convention (Gemma norms + 1); they are compared with a tolerance (see fingerprints_match), since a converter
    may round them (Gemma's +1 in bf16).
    """
    ff = str(n_ff[0]) if len(set(n_ff)) == 1 else "var"
    struct_text = f"{arch}|{len(n_ff)}|{n_embd}|{','.join(map(str, n_ff))}|{n_vocab}|{_vocab_digest(tokens, n_vocab)}"
    digest = hashlib.sha256(struct_text.encode()).hexdigest()[:16]
    sig: list[float] = []
    for w in norms:
        w = np.asarray(w, dtype=np.float64).ravel()
        n = len(w)
        sig += [w.mean(), np.abs(w - w.mean()).mean(), w[0], w[n // 3], w[2 * n // 3], w[-1]]
    return f"glass-fp1:{arch}:{len(n_ff)}x{n_embd}x{ff}:{digest}:" + ",".join(f"{v:.5g}" for v in sig)


def fingerprints_match(a: str, b: str) -> bool:
    """Same architecture, shapes and vocabulary exactly; the same norm weights within 1% (bf16 rounding)."""
    pa, pb = a.split(":"), b.split(":")
    if len(pa) != 5 or len(pb) != 5 or pa[0] != "glass-fp1" or pa[:4] != pb[:4]:
        return False
    try:
        va = np.array([float(x) for x in pa[4].split(",")])
        vb = np.array([float(x) for x in pb[4].split(",")])
    except ValueError:
        return False
    return va.shape == vb.shape and bool(np.allclose(va, vb, rtol=1e-2, atol=1e-3))


def fingerprint_summary(fp: str) -> str:
    parts = fp.split(":")
    return f"{parts[1]} {parts[2]} (vocab digest {parts[3]})" if len(parts) == 5 else fp


def model_info(reader: GGUFReader, name: str = "model") -> ModelInfo:
    """Architecture and FFN sizes of a GGUF model; refuses a model without a dense gated FFN in every layer."""
    if id(reader) not in _INFOS or _INFOS[id(reader)][0] is not reader:
        _INFOS[id(reader)] = (reader, _model_info(reader, name))
        while len(_INFOS) > 4:
            _INFOS.pop(next(iter(_INFOS)))
    return _INFOS[id(reader)][1]


_INFOS: dict[int, tuple[GGUFReader, ModelInfo]] = {}


def _model_info(reader: GGUFReader, name: str) -> ModelInfo:
    arch = field_value(reader, "general.architecture")
    if arch is None:
        raise GlassFormatError(f"{name}: no general.architecture key (is this a model GGUF?)")
    if arch not in SUPPORTED_GGUF_ARCHS:
        raise UnsupportedModel(
            f"{name}: architecture {arch!r} is not supported: GLASS needs a dense gated FFN "
            f"(supported: {', '.join(SUPPORTED_GGUF_ARCHS)}; MoE and fused gate/up FFNs are not)"
        )
    n_layer = field_value(reader, f"{arch}.block_count")
    n_embd = field_value(reader, f"{arch}.embedding_length")
    ff = field_value(reader, f"{arch}.feed_forward_length")
    if n_layer is None or n_embd is None or ff is None:
        raise GlassFormatError(f"{name}: missing {arch}.block_count/embedding_length/feed_forward_length")
    n_ff = list(ff) if isinstance(ff, list) else [int(ff)] * int(n_layer)
    if len(n_ff) != n_layer:
        raise GlassFormatError(f"{name}: {arch}.feed_forward_length has {len(n_ff)} entries for {n_layer} layers")
    tensors = {t.name: t for t in reader.tensors}
    for i in range(n_layer):
        names = [f"blk.{i}.ffn_{p}.weight" for p in ("gate", "up", "down")]
        if any(n not in tensors for n in names) or any(f"blk.{i}.ffn_gate_exps.weight" == n for n in tensors):
            raise UnsupportedModel(
                f"{name}: layer {i} has no dense gated FFN (ffn_gate, ffn_up, ffn_down); "
                "MoE and fused gate/up FFNs are not supported"
            )
        gate, up, down = (tensors[n] for n in names)
        if int(gate.shape[1]) != n_ff[i] or int(up.shape[1]) != n_ff[i] or int(down.shape[0]) != n_ff[i]:
            raise UnsupportedModel(
                f"{name}: layer {i}: ffn_gate/ffn_up/ffn_down shapes {gate.shape.tolist()}/{up.shape.tolist()}/"
                f"{down.shape.tolist()} do not match feed_forward_length {n_ff[i]}"
            )
    embd = tensors.get("token_embd.weight")
    if embd is None:
        raise GlassFormatError(f"{name}: no token_embd.weight tensor")
    n_vocab = int(embd.shape[1])
    tokens = field_value(reader, "tokenizer.ggml.tokens", [])
    norms = []
    for n in ("output_norm.weight", "blk.0.attn_norm.weight", f"blk.{n_layer - 1}.attn_norm.weight"):
        if n not in tensors:
            raise GlassFormatError(f"{name}: no {n} tensor")
        norms.append(tensor_array(tensors[n]))
    fp = make_fingerprint(arch, int(n_embd), n_ff, n_vocab, tokens, norms)
    return ModelInfo(arch, int(n_layer), int(n_embd), tuple(n_ff), n_vocab, fp)


def gguf_model_info(path: str | os.PathLike) -> ModelInfo:
    return model_info(open_gguf(path), Path(path).name)


# ---------------------------------------------------------------------------------------------------------------
# The prior


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


def _glass_kvs(prior: Prior, with_shard: bool) -> list[bytes]:
    kvs = [
        _kv(schema.KEY_VERSION, GGUFValueType.UINT32, schema.GLASS_VERSION),
        _kv(schema.KEY_PRIOR_KIND, GGUFValueType.STRING, prior.kind),
        _kv(schema.KEY_PRIOR_SOURCE, GGUFValueType.STRING, prior.source),
        _kv(schema.KEY_PRIOR_TOKENS, GGUFValueType.UINT64, int(prior.tokens)),
        _kv(schema.KEY_MODEL_FINGERPRINT, GGUFValueType.STRING, prior.fingerprint),
    ]
    if prior.density is not None:
        kvs.append(_kv(schema.KEY_DENSITY, GGUFValueType.FLOAT32, float(prior.density)))
    if prior.lam is not None:
        kvs.append(_kv(schema.KEY_LAMBDA, GGUFValueType.FLOAT32, float(prior.lam)))
    if with_shard and prior.shard is not None:
        kvs.append(_kv(schema.KEY_PRIOR_SHARD, GGUFValueType.STRING, prior.shard))
    return kvs


def _prior_tensors(prior: Prior, with_sums: bool) -> list[tuple[str, np.ndarray]]:
    out = []
    for i, s in enumerate(prior.scores):
        out.append((schema.prior_tensor_name(i), np.ascontiguousarray(s, dtype=np.float32)))
        if with_sums and prior.sums is not None:
            out.append((schema.prior_sum_tensor_name(i), np.ascontiguousarray(prior.sums[i], dtype=np.float64)))
    return out


def write_prior(path: str | os.PathLike, prior: Prior, *, with_sums: bool = True) -> Path:
    """A prior file (or, without sums and with density/lambda, a sidecar): glass.* keys and per-layer tensors."""
    check_finite(prior)
    kvs = [_kv("general.type", GGUFValueType.STRING, schema.PRIOR_FILE_TYPE)] + _glass_kvs(prior, with_shard=True)
    tensors = _prior_tensors(prior, with_sums)
    infos, offset, blobs = [], 0, []
    for name, arr in tensors:
        offset = _align(offset, GGUF_DEFAULT_ALIGNMENT)
        infos.append(_tensor_info(name, arr, offset))
        blobs.append((offset, arr))
        offset += arr.nbytes
    with atomic_output(path) as f:
        _write_header(f, struct.pack("<II", GGUF_MAGIC, 3), kvs, infos, GGUF_DEFAULT_ALIGNMENT)
        _write_data(f, [(off, memoryview(arr).cast("B")) for off, arr in blobs], GGUF_DEFAULT_ALIGNMENT)
    return Path(path)


def read_prior(path: str | os.PathLike) -> Prior:
    """The prior in a prior file, a sidecar or a GLASS model."""
    name = Path(path).name
    reader = open_gguf(path)
    if field_value(reader, schema.KEY_VERSION) is None:
        raise GlassFormatError(f"{name}: no GLASS prior in this file (no {schema.KEY_VERSION} key)")
    version = field_value(reader, schema.KEY_VERSION)
    if version != schema.GLASS_VERSION:
        raise GlassFormatError(f"{name}: GLASS schema version {version}, this tool reads {schema.GLASS_VERSION}")
    tensors = {t.name: t for t in reader.tensors}
    scores, sums = [], []
    i = 0
    while schema.prior_tensor_name(i) in tensors:
        t = tensors[schema.prior_tensor_name(i)]
        if t.tensor_type != GGMLQuantizationType.F32 or len(t.shape) != 1:
            raise GlassFormatError(f"{name}: {t.name} must be a 1-D F32 tensor, found {t.tensor_type.name}")
        scores.append(np.array(t.data, dtype=np.float32))
        st = tensors.get(schema.prior_sum_tensor_name(i))
        sums.append(None if st is None else np.array(st.data, dtype=np.float64))
        i += 1
    stray = [n for n in tensors if schema.is_glass_tensor(n) and _layer_of(n) >= i]
    if not scores or stray:
        raise GlassFormatError(f"{name}: the prior tensors are not blk.0 .. blk.N-1 ({len(scores)} found in order)")
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


def _layer_of(tensor_name: str) -> int:
    return int(tensor_name.split(".")[1])


def merge_priors(priors: list[Prior]) -> Prior:
    """The exact union of priors over disjoint calibration data: sums and token counts add up."""
    if not priors:
        raise GlassFormatError("nothing to merge")
    first = priors[0]
    for p in priors:
        if p.sums is None:
            raise GlassFormatError(f"prior from {p.source!r} holds no sums (made from an imatrix?): it cannot be merged")
        if p.kind != first.kind:
            raise PriorMismatch(f"cannot merge an {first.kind} prior with an {p.kind} prior")
        if not fingerprints_match(p.fingerprint, first.fingerprint):
            raise PriorMismatch(f"cannot merge priors of different models: {first.fingerprint} vs {p.fingerprint}")
        if [len(s) for s in p.sums] != [len(s) for s in first.sums]:
            raise PriorMismatch("cannot merge priors with different layer counts or lengths")
    labels = [(p.source, p.shard) for p in priors]
    dupes = {lab for lab in labels if labels.count(lab) > 1}
    if dupes:
        src, shard = sorted(dupes, key=str)[0]
        raise GlassFormatError(f"the same prior is given twice (source {src!r}, shard {shard}): merging would count it twice")
    tokens = sum(p.tokens for p in priors)
    if tokens <= 0:
        raise GlassFormatError("the merged priors hold no calibration tokens")
    sums = [np.sum([p.sums[i] for p in priors], axis=0) for i in range(first.n_layer)]
    shards = {p.shard for p in priors}
    sources = list(dict.fromkeys(p.source for p in priors))
    source = sources[0] if len(sources) == 1 else "+".join(sources)
    shard = None
    if None not in shards:
        ns = {s.split("/")[1] for s in shards}
        if len(ns) == 1 and len(shards) < int(next(iter(ns))):
            shard = ",".join(sorted(s.split("/")[0] for s in shards)) + "/" + next(iter(ns))  # still partial
    return Prior(
        kind=first.kind,
        source=source,
        tokens=tokens,
        fingerprint=first.fingerprint,
        scores=[(s / tokens).astype(np.float32) for s in sums],
        sums=sums,
        shard=shard,
    )


# ---------------------------------------------------------------------------------------------------------------
# convert, sidecar, strip


def sidecar_path(model_path: str | os.PathLike) -> Path:
    p = Path(model_path)
    stem = p.name[: -len(".gguf")] if p.name.endswith(".gguf") else p.name
    return p.with_name(stem + schema.SIDECAR_SUFFIX)


def embed_prior(
    model_path: str | os.PathLike, prior: Prior, out_path: str | os.PathLike, *, density: float, lam: float
) -> Path:
    """A GLASS model: every key and tensor of the model byte for byte, then the glass.* keys and prior tensors.

    A model that already carries a prior has it replaced.
    """
    model_path, out_path = Path(model_path), Path(out_path)
    if model_path.resolve() == out_path.resolve():
        raise GlassFormatError("the output must be a new file, not the input model")
    reader = open_gguf(model_path)
    info = model_info(reader, model_path.name)
    validate_prior(prior, info, model_path.name)
    prior = replace(prior, density=_check_density(density), lam=_check_lambda(lam))
    extra_kvs = _glass_kvs(prior, with_shard=False)
    _rewrite(reader, out_path, extra_kvs, _prior_tensors(prior, with_sums=False))
    return out_path


def write_sidecar(
    model_path: str | os.PathLike, prior: Prior, out_path: str | os.PathLike | None, *, density: float, lam: float
) -> Path:
    """A sidecar for an untouched model: checked against the model, holding only the prior and glass.* keys."""
    model_path = Path(model_path)
    reader = open_gguf(model_path)
    info = model_info(reader, model_path.name)
    validate_prior(prior, info, model_path.name)
    prior = replace(prior, density=_check_density(density), lam=_check_lambda(lam), shard=None)
    return write_prior(out_path or sidecar_path(model_path), prior, with_sums=False)


def strip(glass_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """A stock GGUF from a GLASS model: without the prior tensors and glass.* keys, else byte for byte."""
    glass_path, out_path = Path(glass_path), Path(out_path)
    if glass_path.resolve() == out_path.resolve():
        raise GlassFormatError("the output must be a new file, not the input")
    reader = open_gguf(glass_path)
    has_glass = any(k.startswith(schema.KEY_PREFIX) for k in reader.fields) or any(
        schema.is_glass_tensor(t.name) for t in reader.tensors
    )
    if not has_glass:
        raise GlassFormatError(f"{glass_path.name} carries no GLASS prior: nothing to strip")
    if all(schema.is_glass_tensor(t.name) for t in reader.tensors):
        raise GlassFormatError(f"{glass_path.name} is a prior file or sidecar, not a model: nothing would be left")
    _rewrite(reader, out_path, [], [])
    return out_path


def _rewrite(reader: GGUFReader, out_path: Path, extra_kvs: list[bytes], extra_tensors) -> None:
    """Write the non-GLASS part of `reader` verbatim, then `extra_kvs` and `extra_tensors` (name, array)."""
    mm = reader.data
    alignment = int(reader.alignment)
    kvs = [
        bytes(mm[f.offset : f.offset + sum(int(p.nbytes) for p in f.parts)])
        for name, f in reader.fields.items()
        if not name.startswith("GGUF.") and not name.startswith(schema.KEY_PREFIX)
    ]
    kept = [t for t in reader.tensors if not schema.is_glass_tensor(t.name)]
    dropped = [t for t in reader.tensors if schema.is_glass_tensor(t.name)]
    base = reader.data_offset
    kept_end = max((t.data_offset - base + t.n_bytes for t in kept), default=0)
    if not dropped or kept_end <= min(t.data_offset - base for t in dropped):
        # the model's tensors keep their offsets: copy their infos and the data section as they are
        data_end = min((t.data_offset - base for t in dropped), default=mm.size - base)
        infos = [bytes(mm[t.field.offset : t.field.offset + sum(int(p.nbytes) for p in t.field.parts)]) for t in kept]
        chunks = [(0, mm[base : base + data_end])]
        next_offset = data_end
    else:  # GLASS tensors sit between model tensors (not a file of ours): lay the model's tensors out afresh
        infos, chunks, next_offset = [], [], 0
        for t in kept:
            next_offset = _align(next_offset, alignment)
            infos.append(_encode_tensor_info(t.name, t.field.parts[3].tolist(), int(t.tensor_type), next_offset))
            chunks.append((next_offset, mm[t.data_offset : t.data_offset + t.n_bytes]))
            next_offset += t.n_bytes
    for name, arr in extra_tensors:
        next_offset = _align(next_offset, alignment)
        infos.append(_tensor_info(name, arr, next_offset))
        chunks.append((next_offset, memoryview(arr).cast("B")))
        next_offset += arr.nbytes
    with atomic_output(out_path) as f:
        _write_header(f, bytes(mm[:8]), kvs + extra_kvs, infos, alignment)
        _write_data(f, chunks, alignment)


def _check_density(density: float) -> float:
    if not (0.0 < float(density) <= 1.0):
        raise GlassFormatError(f"density must be in (0, 1], got {density}")
    return float(density)


def _check_lambda(lam: float) -> float:
    if not (0.0 <= float(lam) <= 1.0):
        raise GlassFormatError(f"lambda must be in [0, 1], got {lam}")
    return float(lam)


# ---------------------------------------------------------------------------------------------------------------
# The raw writer


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator:
    """A binary file object on a temporary file next to `path`, renamed to `path` only if the block completes.

    On any exception (KeyboardInterrupt included) the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _align(n: int, alignment: int) -> int:
    return n + (-n % alignment)


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


_SCALAR_FORMATS = {
    GGUFValueType.UINT32: "<I",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.INT32: "<i",
}


def _kv(key: str, vtype: GGUFValueType, value) -> bytes:
    head = _str(key) + struct.pack("<I", int(vtype))
    if vtype == GGUFValueType.STRING:
        return head + _str(value)
    return head + struct.pack(_SCALAR_FORMATS[vtype], value)


_NP_TYPES = {np.dtype(np.float32): GGMLQuantizationType.F32, np.dtype(np.float64): GGMLQuantizationType.F64}


def _tensor_info(name: str, arr: np.ndarray, offset: int) -> bytes:
    return _encode_tensor_info(name, list(reversed(arr.shape)), int(_NP_TYPES[arr.dtype]), offset)


def _encode_tensor_info(name: str, ne: list[int], ggml_type: int, offset: int) -> bytes:
    return _str(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne) + struct.pack("<IQ", ggml_type, offset)


def _write_header(f, magic_version: bytes, kvs: list[bytes], infos: list[bytes], alignment: int) -> None:
    head = magic_version + struct.pack("<QQ", len(infos), len(kvs))
    f.write(head)
    n = len(head)
    for b in kvs + infos:
        f.write(b)
        n += len(b)
    f.write(b"\0" * (-n % alignment))


def _write_data(f, chunks, alignment: int) -> None:
    """Write (relative offset, bytes) chunks in order, zero-padding to each offset and to the final alignment."""
    pos = 0
    for offset, data in chunks:
        if offset < pos:
            raise AssertionError("tensor data chunks overlap")
        f.write(b"\0" * (offset - pos))
        _copy(f, data)
        pos = offset + len(data)
    f.write(b"\0" * (-pos % alignment))


def _copy(f, data) -> None:
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
    for start in range(0, len(view), _COPY_BLOCK):
        f.write(view[start : start + _COPY_BLOCK])


# ---------------------------------------------------------------------------------------------------------------
# inspect


def inspect_file(path: str | os.PathLike) -> dict:
    """What a GGUF is (model, GLASS model, prior file, sidecar), its FFN shape, glass.* keys and prior summary."""
    path = Path(path)
    reader = open_gguf(path)
    keys = {k: field_value(reader, k) for k in reader.fields if k.startswith(schema.KEY_PREFIX)}
    out: dict = {"file": str(path), "bytes": path.stat().st_size, "tensors": len(reader.tensors)}
    gtype = field_value(reader, "general.type")
    has_model = field_value(reader, "general.architecture") is not None and gtype != schema.PRIOR_FILE_TYPE
    if has_model:
        try:
            info = model_info(reader, path.name)
            out.update(arch=info.arch, layers=info.n_layer, n_embd=info.n_embd, n_ff=_compact(info.n_ff),
                       fingerprint=info.fingerprint)
        except UnsupportedModel as e:
            out.update(arch=field_value(reader, "general.architecture"), unsupported=str(e))
    out["type"] = ("GLASS model" if keys else "model") if has_model else (
        ("sidecar" if schema.KEY_DENSITY in keys else "prior") if keys else str(gtype or "unknown"))
    out["glass"] = keys
    if keys:
        prior = read_prior(path)
        if prior.sums is not None:
            out["mergeable"] = True
        out["prior"] = [_summary(i, s) for i, s in enumerate(prior.scores)]
    return out


def _compact(n_ff) -> int | list[int]:
    return n_ff[0] if len(set(n_ff)) == 1 else list(n_ff)


def _summary(layer: int, s: np.ndarray) -> dict:
    s = np.asarray(s, dtype=np.float64)
    total = s.sum()
    top = np.sort(s)[::-1][: max(1, len(s) // 10)].sum() / total if total > 0 else float("nan")
    return {"layer": layer, "n": len(s), "min": float(s.min()), "mean": float(s.mean()), "max": float(s.max()),
            "top10_share": float(top)}


def plot_prior(prior: Prior, png: str | os.PathLike, title: str = "") -> Path:
    """Per layer: the scores sorted in decreasing order, relative to the layer's mean (log colour scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    width = max(len(s) for s in prior.scores)
    img = np.full((prior.n_layer, width), np.nan)
    for i, s in enumerate(prior.scores):
        s = np.sort(np.asarray(s, dtype=np.float64))[::-1]
        mean = s.mean() if s.mean() > 0 else 1.0
        img[i, : len(s)] = np.maximum(s / mean, 1e-3)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    lo, hi = np.nanpercentile(img, [0.5, 99.5])
    im = ax.imshow(img, aspect="auto", cmap="viridis", norm=LogNorm(vmin=max(lo, 1e-3), vmax=max(hi, lo * 10)),
                   interpolation="nearest")
    ax.set_xlabel("neurons, sorted by prior score")
    ax.set_ylabel("layer")
    ax.set_title(title or f"{prior.kind} prior ({prior.source}, {prior.tokens} tokens)", fontsize=9)
    fig.colorbar(im, ax=ax, label="score / layer mean")
    shares = [_summary(i, s)["top10_share"] for i, s in enumerate(prior.scores)]
    ax2.barh(range(prior.n_layer), shares, color="tab:orange")
    ax2.set_ylim(prior.n_layer - 0.5, -0.5)
    ax2.set_xlabel("score share of the top 10% neurons")
    ax2.set_yticks([])
    fig.tight_layout()
    png = Path(png)
    with atomic_output(png) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return png
