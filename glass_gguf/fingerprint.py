"""Which model a file is: architecture, FFN sizes and the fingerprint that ties a prior to its model.

The fingerprint is built the same way from a GGUF (any quantization) and from an HF checkpoint, so a prior
computed on an hf-export is accepted by the GGUF it came from and refused by any other model:

    glass-fp1:{arch}:{layers}x{n_embd}x{n_ff}:{digest}:{weights}

The digest covers the architecture family, layer count, widths, vocabulary size and token strings, all exact.
The weights part is 18 numbers from three norm vectors (final norm, attention norm of the first and last layer),
which every GGUF keeps in F32, in llama.cpp's convention (Gemma norms + 1); they are compared with a tolerance,
since a converter may round them (Gemma's +1 in bf16).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFReader

from .errors import GlassFormatError, UnsupportedModel
from .gguf_reader import field_value, open_gguf, tensor_array

# Architectures whose FFN llama.cpp builds with the dense gated path the runtime hooks (docs/design.md, runtime).
SUPPORTED_GGUF_ARCHS = ("llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3")
# Families whose norm weights llama.cpp's converter stores as w + 1.
NORM_PLUS_ONE_ARCHS = ("gemma", "gemma2", "gemma3")
# Relative tolerance on the norm numbers: bf16 rounding of Gemma's +1 stays well inside it.
NORM_RTOL, NORM_ATOL = 1e-2, 1e-3


@dataclass(frozen=True)
class ModelInfo:
    arch: str              # llama.cpp architecture name (the fingerprint's family)
    n_layer: int
    n_embd: int
    n_ff: tuple[int, ...]  # per layer
    n_vocab: int
    fingerprint: str


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
    """The model fingerprint (module docstring) from what both an HF checkpoint and a GGUF can tell."""
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
    return va.shape == vb.shape and bool(np.allclose(va, vb, rtol=NORM_RTOL, atol=NORM_ATOL))


# --- from a GGUF ---------------------------------------------------------------------------------------------------

_INFOS: dict[int, tuple[GGUFReader, ModelInfo]] = {}


def model_info(reader: GGUFReader, name: str = "model") -> ModelInfo:
    """Architecture and FFN sizes of a GGUF model; refuses a model without a dense gated FFN in every layer.

    Cached per reader (open_gguf keeps readers), since the vocabulary digest of a large model takes a while.
    """
    if id(reader) not in _INFOS or _INFOS[id(reader)][0] is not reader:
        _INFOS[id(reader)] = (reader, _model_info(reader, name))
        while len(_INFOS) > 4:
            _INFOS.pop(next(iter(_INFOS)))
    return _INFOS[id(reader)][1]


def gguf_model_info(path: str | os.PathLike) -> ModelInfo:
    return model_info(open_gguf(path), Path(path).name)


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
    tensors = {t.name: t for t in reader.tensors}
    # every layer has tensors of its own, so a block count beyond the tensor count is a corrupt key
    _check_count(name, f"{arch}.block_count", n_layer, len(tensors))
    _check_count(name, f"{arch}.embedding_length", n_embd, 1 << 24)
    n_ff = list(ff) if isinstance(ff, list) else [ff] * n_layer
    if len(n_ff) != n_layer:
        raise GlassFormatError(f"{name}: {arch}.feed_forward_length has {len(n_ff)} entries for {n_layer} layers")
    for v in n_ff:
        _check_count(name, f"{arch}.feed_forward_length", v, 1 << 24)
    for i in range(n_layer):
        _check_dense_gated_ffn(tensors, i, n_ff[i], name)
    embd = tensors.get("token_embd.weight")
    if embd is None:
        raise GlassFormatError(f"{name}: no token_embd.weight tensor")
    if len(embd.shape) != 2 or int(embd.shape[0]) != n_embd:
        raise GlassFormatError(f"{name}: token_embd.weight has shape {embd.shape.tolist()}, expected [{n_embd}, n_vocab]")
    n_vocab = int(embd.shape[1])
    tokens = field_value(reader, "tokenizer.ggml.tokens", [])
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise GlassFormatError(f"{name}: tokenizer.ggml.tokens is not an array of strings")
    norms = []
    for n in ("output_norm.weight", "blk.0.attn_norm.weight", f"blk.{n_layer - 1}.attn_norm.weight"):
        if n not in tensors:
            raise GlassFormatError(f"{name}: no {n} tensor")
        t = tensors[n]
        if t.tensor_type.name not in ("F32", "F16", "BF16") or len(t.shape) != 1 or int(t.shape[0]) < 1:
            raise GlassFormatError(f"{name}: {n} is {t.tensor_type.name} {t.shape.tolist()}, expected an F32 vector")
        norms.append(tensor_array(t))
    fp = make_fingerprint(arch, int(n_embd), n_ff, n_vocab, tokens, norms)
    return ModelInfo(arch, int(n_layer), int(n_embd), tuple(n_ff), n_vocab, fp)


def _check_count(name: str, key: str, value, most: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise GlassFormatError(f"{name}: {key} is {value!r}, expected an integer in [1, {most}]")


def _check_dense_gated_ffn(tensors: dict, i: int, n_ff: int, name: str) -> None:
    names = [f"blk.{i}.ffn_{p}.weight" for p in ("gate", "up", "down")]
    if any(n not in tensors for n in names) or f"blk.{i}.ffn_gate_exps.weight" in tensors:
        raise UnsupportedModel(
            f"{name}: layer {i} has no dense gated FFN (ffn_gate, ffn_up, ffn_down); "
            "MoE and fused gate/up FFNs are not supported"
        )
    gate, up, down = (tensors[n] for n in names)
    if any(len(t.shape) != 2 for t in (gate, up, down)):
        raise GlassFormatError(f"{name}: layer {i}: ffn_gate/ffn_up/ffn_down are not all matrices "
                               f"({gate.shape.tolist()}/{up.shape.tolist()}/{down.shape.tolist()})")
    if int(gate.shape[1]) != n_ff or int(up.shape[1]) != n_ff or int(down.shape[0]) != n_ff:
        raise UnsupportedModel(
            f"{name}: layer {i}: ffn_gate/ffn_up/ffn_down shapes {gate.shape.tolist()}/{up.shape.tolist()}/"
            f"{down.shape.tolist()} do not match feed_forward_length {n_ff}"
        )


# --- from an HF checkpoint -----------------------------------------------------------------------------------------


def hf_model_info(hf_dir: str | os.PathLike, tokenizer=None) -> ModelInfo:
    """Architecture, FFN sizes and fingerprint of an HF checkpoint, equal to those of its GGUF conversions."""
    from .hf_model import architecture, load_tokenizer, text_config

    hf_dir = Path(hf_dir)
    config = text_config(hf_dir)
    arch = architecture(config, hf_dir.name)
    ff = config.intermediate_size
    n_ff = list(ff) if isinstance(ff, (list, tuple)) else [int(ff)] * int(config.num_hidden_layers)
    n_vocab = int(config.vocab_size)
    if tokenizer is None:
        tokenizer = load_tokenizer(hf_dir)
    tokens: list[str | None] = [None] * n_vocab
    for s, i in tokenizer.get_vocab().items():
        if 0 <= i < n_vocab:
            tokens[i] = s
    norms = _hf_norm_weights(hf_dir, len(n_ff))
    if arch in NORM_PLUS_ONE_ARCHS:  # HF Gemma norms scale by (1 + w); llama.cpp stores 1 + w
        norms = [w + np.float32(1.0) for w in norms]
    fp = make_fingerprint(arch, int(config.hidden_size), n_ff, n_vocab, tokens, norms)
    return ModelInfo(arch, len(n_ff), int(config.hidden_size), tuple(n_ff), n_vocab, fp)


def _hf_norm_weights(hf_dir: Path, n_layer: int) -> list[np.ndarray]:
    """The three norm vectors of the fingerprint, read straight from the safetensors files (no model load)."""
    from safetensors import safe_open

    index = hf_dir / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
    else:
        files = sorted(hf_dir.glob("*.safetensors"))
        if not files:
            raise GlassFormatError(f"{hf_dir}: no *.safetensors weights (only safetensors checkpoints are read)")
        weight_map = {}
        for f in files:
            with safe_open(str(f), framework="pt") as st:
                weight_map.update({k: f.name for k in st.keys()})
    wanted = ("model.norm.weight", "model.layers.0.input_layernorm.weight",
              f"model.layers.{n_layer - 1}.input_layernorm.weight")
    out = []
    for suffix in wanted:
        keys = sorted((k for k in weight_map if k == suffix or k.endswith("." + suffix)), key=len)
        if not keys:
            raise GlassFormatError(f"{hf_dir}: no {suffix} in the checkpoint")
        # framework="pt": numpy has no bfloat16, and bf16 checkpoints are common
        with safe_open(str(hf_dir / weight_map[keys[0]]), framework="pt") as st:
            out.append(st.get_tensor(keys[0]).float().numpy())
    return out
