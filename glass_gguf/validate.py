"""One validation layer for every GLASS file glass-gguf reads: GLASS models (either form), prior files, sidecars.

Every check refuses with an InvalidGlassFile (a GlassFormatError): one line naming the file, the key or tensor, what
was found and what was expected. What is accepted but probably not meant (an all-zero layer) is a GlassWarning.

- glass_records(reader, name): the glass.* keys (types and ranges) and the prior layers (names, types, shapes,
  finite and non-negative values) of one file, checked; read_prior builds its Prior from them.
- check_glass_file(path): a model about to be loaded (stock or GLASS, either form): the above, plus agreement of the
  embedded prior with the model it sits in (layers, n_ff, fingerprint).
- check_prior_file(path, model_path=None): a prior file, sidecar or GLASS model used as a prior, and that it fits
  the model (fingerprint, layers, lengths).
- validate_prior(prior, info): a Prior record against a model (convert, sidecars, glass_llama).
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType

from . import schema
from .errors import GlassFormatError, GlassWarning, InvalidGlassFile, PriorMismatch
from .fingerprint import ModelInfo, fingerprints_match, model_info
from .gguf_reader import open_gguf
from .settings import check_density, check_lambda

_INTEGERS = (GGUFValueType.UINT8, GGUFValueType.INT8, GGUFValueType.UINT16, GGUFValueType.INT16,
             GGUFValueType.UINT32, GGUFValueType.INT32, GGUFValueType.UINT64, GGUFValueType.INT64)
_TYPE_NAMES = {GGUFValueType.UINT8: "u8", GGUFValueType.INT8: "i8", GGUFValueType.UINT16: "u16",
               GGUFValueType.INT16: "i16", GGUFValueType.UINT32: "u32", GGUFValueType.INT32: "i32",
               GGUFValueType.FLOAT32: "f32", GGUFValueType.BOOL: "bool", GGUFValueType.STRING: "string",
               GGUFValueType.ARRAY: "array", GGUFValueType.UINT64: "u64", GGUFValueType.INT64: "i64",
               GGUFValueType.FLOAT64: "f64"}
# keys every file with a prior carries (prior_file.glass_kvs writes them all)
REQUIRED_KEYS = (schema.KEY_VERSION, schema.KEY_PRIOR_KIND, schema.KEY_PRIOR_SOURCE, schema.KEY_PRIOR_TOKENS,
                 schema.KEY_MODEL_FINGERPRINT)
_SHARD_RE = re.compile(r"(0|[1-9][0-9]*)(,(0|[1-9][0-9]*))*/([1-9][0-9]*)")
_FINGERPRINT_RE = re.compile(r"glass-fp1:[^:]+:\d+x\d+x(\d+|var):[0-9a-f]{16}:[^:]+")


@dataclass
class GlassRecords:
    """The checked GLASS content of one file."""

    keys: dict                          # glass.* key -> value, without the per-layer arrays of the metadata form
    form: str | None                    # schema.FORM_TENSORS or FORM_METADATA; None: the file carries no prior
    scores: list[np.ndarray]            # per layer, float32
    sums: list[np.ndarray] | None       # per layer, float64 (prior files), else None
    has_model: bool                     # the file holds a model besides (a GLASS model, or a stock one)
    warnings: list[str] = field(default_factory=list)


def glass_records(reader: GGUFReader, name: str) -> GlassRecords:
    """The glass.* keys and prior layers of a file, checked on their own (not yet against a model)."""
    gtype = _string(reader, "general.type", name, required=False)
    has_model = reader.get_field("general.architecture") is not None and gtype != schema.PRIOR_FILE_TYPE
    keys, layer_keys = _glass_keys(reader, name)
    glass_tensors = _glass_tensors(reader, name)
    if not keys:
        item = next(iter(layer_keys), None) or next(iter(glass_tensors), None)
        if item is not None:
            raise InvalidGlassFile(name, item, f"a GLASS prior without {schema.KEY_VERSION}",
                                   f"{schema.KEY_VERSION} = {schema.GLASS_VERSION} with it")
        return GlassRecords({}, None, [], None, has_model)
    for key in REQUIRED_KEYS:
        if key not in keys:
            raise InvalidGlassFile(name, key, "no such key", "it in every file that carries a prior")
    form = keys.get(schema.KEY_PRIOR_FORM, schema.FORM_TENSORS)
    if form == schema.FORM_METADATA:
        if glass_tensors:
            raise InvalidGlassFile(name, next(iter(glass_tensors)), "a prior tensor",
                                   f"none: {schema.KEY_PRIOR_FORM} is {form!r} (the prior is in metadata)")
        scores, sums = _layer_keys(layer_keys, name), None
    else:
        if layer_keys:
            raise InvalidGlassFile(name, next(iter(layer_keys)), "a prior stored as metadata",
                                   f"none: {schema.KEY_PRIOR_FORM} is {form!r} (the prior is in tensors)")
        sum_tensor = next((n for n in glass_tensors if n.endswith("_sum")), None)
        if has_model and sum_tensor:
            raise InvalidGlassFile(name, sum_tensor, "prior sums in a model",
                                   "sums in prior files only (llama.cpp refuses a model with tensors it does not know)")
        scores, sums = _layer_tensors(glass_tensors, name)
    scale = keys.get(schema.KEY_LAYER_SCALE)
    if scale is not None and len(scale) != len(scores):
        raise InvalidGlassFile(name, schema.KEY_LAYER_SCALE, f"{len(scale)} factors",
                               f"one for each of the prior's {len(scores)} layers")
    records = GlassRecords(keys, form, scores, sums, has_model)
    for i, s in enumerate(scores):
        records.warnings += check_scores(s, name, _layer_item(form, i))
    for i, s in enumerate(sums or []):
        check_scores(s, name, schema.prior_sum_tensor_name(i))
    return records


def check_scores(scores: np.ndarray, file: str, item: str) -> list[str]:
    """Refuse NaN, inf and negative scores; a warning (returned and issued) for a layer that is all zero."""
    s = np.asarray(scores)
    bad = ~np.isfinite(s)
    if bad.any():
        j = int(np.argmax(bad))
        raise InvalidGlassFile(file, item, f"{s[j]} at neuron {j}", "finite scores")
    if (s < 0).any():
        j = int(np.argmax(s < 0))
        raise InvalidGlassFile(file, item, f"{s[j]:g} at neuron {j}", "non-negative scores")
    if not s.any():
        message = f"{file}: {item} is all zero: its neurons tie and the global rank orders them by index"
        warnings.warn(message, GlassWarning, stacklevel=2)
        return [message]
    return []


def validate_prior(prior, info: ModelInfo, name: str = "model", prior_name: str | None = None) -> None:
    """Refuse a Prior made for another model, with the wrong layer count or length, or with NaN, inf or negatives."""
    at = f"{prior_name}: " if prior_name else ""
    if prior.kind not in schema.PRIOR_KINDS:
        raise PriorMismatch(f"{at}prior kind {prior.kind!r} is not one of {', '.join(schema.PRIOR_KINDS)}")
    if not fingerprints_match(prior.fingerprint, info.fingerprint):
        raise PriorMismatch(
            f"{at}the prior was computed for another model: prior fingerprint {prior.fingerprint}, "
            f"{name} fingerprint {info.fingerprint}"
        )
    if prior.n_layer != info.n_layer:
        raise PriorMismatch(f"{at}the prior has {prior.n_layer} layers, {name} has {info.n_layer}")
    for i, (s, n) in enumerate(zip(prior.scores, info.n_ff)):
        if np.shape(s) != (n,):
            raise PriorMismatch(f"{at}layer {i}: the prior has {np.size(s)} values, {name}'s FFN has {n} neurons")
    for i, s in enumerate(prior.scores):
        if not np.all(np.isfinite(s)):
            raise PriorMismatch(f"{at}layer {i}: the prior contains NaN or inf")
        if np.any(np.asarray(s) < 0):
            raise PriorMismatch(f"{at}layer {i}: the prior has negative scores")


def checked_records(path: str | os.PathLike) -> GlassRecords:
    """glass_records of a file, and for a GLASS model the agreement of its prior with the model it sits in."""
    name = Path(path).name
    reader = open_gguf(path)
    records = glass_records(reader, name)
    if records.form is not None and records.has_model:
        _check_embedded(records, model_info(reader, name), name)
    return records


def check_glass_file(path: str | os.PathLike) -> list[str]:
    """Check a model GGUF before it is loaded: a stock model passes; a GLASS model's records must be well formed and
    its prior must fit the model it sits in. Returns the warnings (also issued as GlassWarning)."""
    records = checked_records(path)
    if not records.has_model:
        what = "a prior file or sidecar" if records.form else "no model"
        raise GlassFormatError(f"{Path(path).name}: {what}, not a model (no general.architecture)")
    return records.warnings


def check_prior_file(path: str | os.PathLike, model_path: str | os.PathLike | None = None) -> list[str]:
    """Check a prior file, sidecar or GLASS model used as a prior, and, given a model, that the prior fits it."""
    records = checked_records(path)
    name = Path(path).name
    if records.form is None:
        raise InvalidGlassFile(name, schema.KEY_VERSION, "no such key (no GLASS prior in this file)",
                               "a prior file, sidecar or GLASS model")
    if model_path is not None:
        from .prior_file import prior_from_records

        info = model_info(open_gguf(model_path), Path(model_path).name)
        validate_prior(prior_from_records(records), info, Path(model_path).name, name)
    return records.warnings


# --- keys ----------------------------------------------------------------------------------------------------------


def _glass_keys(reader: GGUFReader, name: str) -> tuple[dict, dict]:
    """({key: checked value} of the glass.* keys, {layer key: field} of the metadata form's arrays)."""
    keys, layer_keys = {}, {}
    for key, f in reader.fields.items():
        if not key.startswith(schema.KEY_PREFIX):
            if key.lower().startswith("glass"):
                raise InvalidGlassFile(name, repr(key), "a mangled GLASS key", f"keys starting with {schema.KEY_PREFIX}")
            continue
        if schema.PRIOR_KEY_RE.fullmatch(key):
            layer_keys[key] = f
            continue
        if key not in schema.KEYS:
            raise InvalidGlassFile(name, repr(key), "an unknown GLASS key",
                                   f"one of {', '.join(schema.KEYS)} or {schema.PRIOR_KEY}")
        keys[key] = _key_value(reader, key, f, name)
    return keys, layer_keys


def _key_value(reader: GGUFReader, key: str, f, name: str):
    if key == schema.KEY_VERSION:
        v = _scalar(f, key, name, (GGUFValueType.UINT32,), "u32")
        if v != schema.GLASS_VERSION:
            raise InvalidGlassFile(name, key, f"version {v}", f"{schema.GLASS_VERSION} (the version this tool reads)")
        return v
    if key == schema.KEY_PRIOR_TOKENS:
        v = _scalar(f, key, name, _INTEGERS, "an integer")
        if v < 0:
            raise InvalidGlassFile(name, key, str(v), "a token count >= 0")
        return v
    if key == schema.KEY_LAYER_SCALE:
        if f.types != [GGUFValueType.ARRAY, GGUFValueType.FLOAT32] or not f.data:
            raise InvalidGlassFile(name, key, _found(f), "an array of f32, one per layer")
        v = np.concatenate([f.parts[j] for j in f.data]).astype(np.float32)
        bad = ~(np.isfinite(v) & (v > 0) & (v <= schema.MAX_LAYER_SCALE))
        if bad.any():
            raise InvalidGlassFile(name, key, f"{v[bad][0]:g}", f"factors in (0, {schema.MAX_LAYER_SCALE:g}]")
        return [float(x) for x in v]
    if key in (schema.KEY_WARMUP, schema.KEY_REFRESH):
        v = _scalar(f, key, name, (GGUFValueType.UINT32,), "u32")
        if v > 1 << 20 or (key == schema.KEY_REFRESH and v == 1):
            raise InvalidGlassFile(name, key, str(v), "a token count up to 1048576 (refresh: 0 or at least 2)")
        return v
    if key in (schema.KEY_DENSITY, schema.KEY_LAMBDA):
        v = _scalar(f, key, name, (GGUFValueType.FLOAT32,), "f32")
        check, expected = (check_density, "a number in (0, 1]") if key == schema.KEY_DENSITY else \
            (check_lambda, "a number in [0, 1]")
        try:
            return check(v)
        except ValueError:
            raise InvalidGlassFile(name, key, f"{v:g}", expected) from None
    v = _string(reader, key, name)
    if key == schema.KEY_PRIOR_KIND and v not in schema.PRIOR_KINDS:
        raise InvalidGlassFile(name, key, repr(v), f"one of {', '.join(schema.PRIOR_KINDS)}")
    if key == schema.KEY_PRIOR_FORM and v not in schema.PRIOR_FORMS:
        raise InvalidGlassFile(name, key, repr(v), f"one of {', '.join(schema.PRIOR_FORMS)}")
    if key == schema.KEY_PRIOR_SHARD and not _shard_ok(v):
        raise InvalidGlassFile(name, key, repr(_short(v)), "a shard 'I/N' (or 'I,J/N') with 0 <= I < N")
    if key == schema.KEY_MODEL_FINGERPRINT and not _FINGERPRINT_RE.fullmatch(v):
        raise InvalidGlassFile(name, key, repr(_short(v)), "a fingerprint glass-fp1:ARCH:LxExF:DIGEST:NUMBERS")
    return v


def _shard_ok(text: str) -> bool:
    m = _SHARD_RE.fullmatch(text)
    if not m:
        return False
    indices = [int(i) for i in text.split("/")[0].split(",")]
    return len(set(indices)) == len(indices) and max(indices) < int(m.group(4))


def _found(f) -> str:
    """What a key holds, in words: its type and (for a scalar) its value."""
    t = f.types
    if not t:
        return "no value"
    if t[0] == GGUFValueType.ARRAY:
        return f"an array of {len(f.data)} {_TYPE_NAMES.get(t[-1], '?')}"
    if t[0] == GGUFValueType.STRING:
        return f"string {_short(bytes(f.parts[-1]).decode('utf-8', errors='replace'))!r}"
    return f"{_TYPE_NAMES.get(t[0], '?')} {f.parts[-1][0]}"


def _scalar(f, key: str, name: str, types, expected: str):
    if len(f.types) != 1 or f.types[0] not in types:
        raise InvalidGlassFile(name, key, _found(f), expected)
    return f.parts[-1][0].item()


def _string(reader: GGUFReader, key: str, name: str, required: bool = True) -> str | None:
    f = reader.get_field(key)
    if f is None:
        if not required:
            return None
        raise InvalidGlassFile(name, key, "no such key", "a string")
    if f.types != [GGUFValueType.STRING]:
        raise InvalidGlassFile(name, key, _found(f), "a string")
    try:
        return bytes(f.parts[-1]).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidGlassFile(name, key, "bytes that are not UTF-8", "a UTF-8 string") from None


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "..."


# --- prior layers --------------------------------------------------------------------------------------------------


def _layer_item(form: str, layer: int) -> str:
    return schema.prior_key_name(layer) if form == schema.FORM_METADATA else schema.prior_tensor_name(layer)


def _glass_tensors(reader: GGUFReader, name: str) -> dict:
    """{name: tensor} of the GLASS tensors; a name that looks like one but is not (mangled, stray) is refused."""
    out = {}
    for t in reader.tensors:
        if schema.GLASS_TENSOR_RE.fullmatch(t.name):
            out[t.name] = t
        elif schema.is_glass_tensor(t.name) or "glass" in t.name.lower():
            raise InvalidGlassFile(name, repr(t.name), "a stray or mangled GLASS tensor",
                                   "blk.N.ffn_glass_prior (or blk.N.ffn_glass_prior_sum in a prior file)")
    return out


def _layers_0_to_n(names: dict, layer_of, name: str, what: str) -> int:
    """The number of layers of a prior stored under `names`, which must be layers 0 .. N-1 exactly."""
    layers = sorted(layer_of(n) for n in names)
    if not layers:
        raise InvalidGlassFile(name, what, "no prior layers", "one per layer, from layer 0")
    if layers != list(range(len(layers))):
        missing = sorted(set(range(layers[-1] + 1)) - set(layers))
        raise InvalidGlassFile(name, what, f"layers {_ranges(layers)} (layer {missing[0]} missing)",
                               "layers 0 .. N-1, one each")
    return len(layers)


def _ranges(layers: list[int]) -> str:
    return ",".join(map(str, layers)) if len(layers) <= 6 else f"{layers[0]} .. {layers[-1]}"


def _layer_tensors(tensors: dict, name: str) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    priors = {n: t for n, t in tensors.items() if not n.endswith("_sum")}
    sums = {n: t for n, t in tensors.items() if n.endswith("_sum")}
    layer = lambda n: int(n.split(".")[1])  # noqa: E731
    n_layer = _layers_0_to_n(priors, layer, name, schema.PRIOR_TENSOR)
    scores = [_vector(priors[schema.prior_tensor_name(i)], GGMLQuantizationType.F32, name) for i in range(n_layer)]
    if not sums:
        return scores, None
    if sorted(map(layer, sums)) != list(range(n_layer)):
        raise InvalidGlassFile(name, schema.PRIOR_SUM_TENSOR, f"sums for layers {_ranges(sorted(map(layer, sums)))}",
                               f"one for every prior layer, 0 .. {n_layer - 1}")
    out = []
    for i in range(n_layer):
        t = sums[schema.prior_sum_tensor_name(i)]
        s = _vector(t, GGMLQuantizationType.F64, name)
        if s.shape != scores[i].shape:
            raise InvalidGlassFile(name, t.name, f"{s.size} values", f"{scores[i].size}, as {schema.prior_tensor_name(i)}")
        out.append(s)
    return scores, out


def _vector(t, ggml_type: GGMLQuantizationType, name: str) -> np.ndarray:
    shape = [int(n) for n in t.shape]
    if t.tensor_type != ggml_type or len(shape) != 1 or shape[0] < 1:
        raise InvalidGlassFile(name, t.name, f"{t.tensor_type.name} {shape}", f"a {ggml_type.name} vector [n_ff]")
    return np.array(t.data, dtype=np.float32 if ggml_type == GGMLQuantizationType.F32 else np.float64)


def _layer_keys(fields: dict, name: str) -> list[np.ndarray]:
    layer = lambda k: int(k.rsplit(".", 1)[1])  # noqa: E731
    n_layer = _layers_0_to_n(fields, layer, name, schema.PRIOR_KEY)
    out = []
    for i in range(n_layer):
        key = schema.prior_key_name(i)
        f = fields[key]
        if f.types != [GGUFValueType.ARRAY, GGUFValueType.FLOAT32] or not f.data:
            raise InvalidGlassFile(name, key, _found(f), "an array of n_ff f32")
        out.append(np.concatenate([f.parts[j] for j in f.data]).astype(np.float32))
    return out


# --- the prior inside a model --------------------------------------------------------------------------------------


def _check_embedded(records: GlassRecords, info: ModelInfo, name: str) -> None:
    """A GLASS model's own prior: one layer per model layer, n_ff values each, the model's fingerprint."""
    n = len(records.scores)
    if n != info.n_layer:
        item = _layer_item(records.form, min(n, info.n_layer))
        raise InvalidGlassFile(name, item, f"a prior for {n} layers", f"one for each of the model's {info.n_layer}")
    for i, (s, n_ff) in enumerate(zip(records.scores, info.n_ff)):
        if s.shape != (n_ff,):
            raise InvalidGlassFile(name, _layer_item(records.form, i), f"{s.size} values",
                                   f"{n_ff}, the layer's FFN width")
    fp = records.keys[schema.KEY_MODEL_FINGERPRINT]
    if not fingerprints_match(fp, info.fingerprint):
        raise InvalidGlassFile(name, schema.KEY_MODEL_FINGERPRINT, f"{fp} (another model)",
                               f"the fingerprint of the model in this file, {info.fingerprint}")
