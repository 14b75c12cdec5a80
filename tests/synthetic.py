"""Small synthetic GGUFs and priors for the fast tests: real files written with gguf-py's GGUFWriter, random weights.

They stand in for a model wherever the behaviour depends on the file format only (schema, reading, writing, strip),
for architectures GLASS must refuse (phi3's fused FFN, MoE), and for a second, different model.
"""
import numpy as np
from gguf import GGUFWriter

from glass_gguf.prior_file import Prior


def tiny_gguf(path, arch="llama", n_layer=2, n_embd=64, n_ff=128, fused=False, moe=False, seed=0):
    """A small but complete model GGUF (random F32 weights) of the given architecture."""
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
    return write_out(w, path)


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
