"""Small synthetic GGUFs and priors for the fast tests: real files written with gguf-py's GGUFWriter, random weights.

They stand in for a model wherever the behaviour depends on the file format only (schema, reading, writing, strip),
for architectures GLASS must refuse (phi3's fused FFN, MoE), and for a second, different model.
"""
import numpy as np
from gguf import GGUFValueType, GGUFWriter

from glass_gguf.prior_file import Prior

U32, U64, I64, F32, STR, ARR = (GGUFValueType.UINT32, GGUFValueType.UINT64, GGUFValueType.INT64,
                                GGUFValueType.FLOAT32, GGUFValueType.STRING, GGUFValueType.ARRAY)


def tiny_gguf(path, arch="llama", n_layer=2, n_embd=64, n_ff=128, fused=False, moe=False, seed=0,
              keys=None, tensors=None):
    """A small but complete model GGUF (random F32 weights) of the given architecture; `keys` ({key: (type, value)
    or (ARR, values, item type)}) and `tensors` ({name: array}) are added after the model's own."""
    rng = np.random.default_rng(seed)
    w = GGUFWriter(str(path), arch)
    w.add_block_count(n_layer)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(4)
    w.add_context_length(128)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(100)])
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", f32(100, n_embd))
    w.add_tensor("output_norm.weight", 1 + f32(n_embd))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", 1 + f32(n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", 1 + f32(n_embd))
        for p in ("q", "k", "v", "output"):
            w.add_tensor(f"blk.{i}.attn_{p}.weight", f32(n_embd, n_embd))
        if moe:
            w.add_tensor(f"blk.{i}.ffn_gate_exps.weight", f32(4, n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_up_exps.weight", f32(4, n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_down_exps.weight", f32(4, n_embd, n_ff))
        elif fused:
            w.add_tensor(f"blk.{i}.ffn_up.weight", f32(2 * n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_down.weight", f32(n_embd, n_ff))
        else:
            w.add_tensor(f"blk.{i}.ffn_gate.weight", f32(n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_up.weight", f32(n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_down.weight", f32(n_embd, n_ff))
    return write_out(_add(w, keys, tensors), path)


def prior_gguf(path, keys, tensors):
    """A prior file or sidecar (no model) with exactly these keys and tensors, written by gguf-py."""
    w = GGUFWriter(str(path), "unused")
    w.kv_data[0].clear()
    return write_out(_add(w, {"general.type": (STR, "glass-prior"), **keys}, tensors), path)


def glass_keys(prior: Prior, density=0.5, lam=0.5, form=None) -> dict:
    """The glass.* keys of schema v1 for `prior` ({key: (type, value)}), spelled out independently of glass-gguf's
    writer; with form="metadata" also the per-layer array keys of the portable form."""
    keys = {"glass.version": (U32, 1), "glass.prior.kind": (STR, prior.kind), "glass.prior.source": (STR, prior.source),
            "glass.prior.tokens": (U64, prior.tokens), "glass.prior.model_fingerprint": (STR, prior.fingerprint)}
    if density is not None:
        keys["glass.density"] = (F32, density)
    if lam is not None:
        keys["glass.lambda"] = (F32, lam)
    if prior.shard is not None:
        keys["glass.prior.shard"] = (STR, prior.shard)
    if form == "metadata":
        keys["glass.prior.form"] = (STR, "metadata")
        keys.update({f"glass.prior.blk.{i}": (ARR, [float(x) for x in s], F32) for i, s in enumerate(prior.scores)})
    return keys


def glass_tensors(prior: Prior, sums=False) -> dict:
    """{name: array} of the prior tensors (and the sums behind them)."""
    out = {}
    for i, s in enumerate(prior.scores):
        out[f"blk.{i}.ffn_glass_prior"] = np.asarray(s, dtype=np.float32)
        if sums:
            out[f"blk.{i}.ffn_glass_prior_sum"] = np.asarray(prior.sums[i], dtype=np.float64)
    return out


def _add(w: GGUFWriter, keys, tensors) -> GGUFWriter:
    for key, (vtype, value, *sub) in (keys or {}).items():
        w.add_key_value(key, value, vtype, sub[0] if sub else None)
    for name, arr in (tensors or {}).items():
        w.add_tensor(name, arr)
    return w


def write_out(w: GGUFWriter, path):
    """Header, keys and tensors of a GGUFWriter to its file."""
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def random_prior(info, seed=0, **kw) -> Prior:
    """A prior with the shape and fingerprint of `info` (a ModelInfo), scores from a seed, sums behind them."""
    rng = np.random.default_rng(seed)
    sums = [rng.random(n) * 100 for n in info.n_ff]
    return Prior(kind="activation", source="test:random", tokens=100, fingerprint=info.fingerprint,
                 scores=[(s / 100).astype(np.float32) for s in sums], sums=sums, **kw)
