"""The statically compacted model bench times as the ceiling: shapes, types and bytes on a small synthetic GGUF
(fast), and on SmolLM2 that llama.cpp runs it as GLASS runs the same selection (slow)."""
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T, GGUFValueType, GGUFWriter
from gguf.quants import dequantize, quantize

from glass_gguf.gguf_reader import field_value, open_gguf
from glass_gguf.static_model import write_static
from synthetic import write_out

N_EMBD, N_FF, K = 64, 512, 160


def _q4_k(rng, rows, cols):
    """Random Q4_K bytes with small finite scales (gguf-py cannot quantize to Q4_K)."""
    n_blocks = rows * cols // 256
    raw = rng.integers(0, 256, size=(n_blocks, GGML_QUANT_SIZES[T.Q4_K][1]), dtype=np.uint8)
    raw[:, 0:4] = np.array([0.01, 0.002], dtype=np.float16).view(np.uint8)  # d, dmin
    return raw.reshape(rows, -1)


def _model(path, rng):
    """Two layers: Q4_0 gate/up; down Q4_K in layer 0 (compacts to Q5_0), Q8_0 in layer 1 (stays Q8_0); a prior."""
    w = GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(4)
    w.add_context_length(128)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(100)])
    w.add_key_value("glass.density", 0.5, GGUFValueType.FLOAT32)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    tensors = {"token_embd.weight": (f32(100, N_EMBD), T.F32), "output_norm.weight": (f32(N_EMBD), T.F32)}
    for i in range(2):
        tensors[f"blk.{i}.attn_norm.weight"] = (f32(N_EMBD), T.F32)
        tensors[f"blk.{i}.ffn_gate.weight"] = (quantize(f32(N_FF, N_EMBD), T.Q4_0), T.Q4_0)
        tensors[f"blk.{i}.ffn_up.weight"] = (quantize(f32(N_FF, N_EMBD), T.Q4_0), T.Q4_0)
        down = (_q4_k(rng, N_EMBD, N_FF), T.Q4_K) if i == 0 else (quantize(f32(N_EMBD, N_FF), T.Q8_0), T.Q8_0)
        tensors[f"blk.{i}.ffn_down.weight"] = down
        tensors[f"blk.{i}.ffn_glass_prior"] = (f32(N_FF), T.F32)
    for name, (arr, t) in tensors.items():
        w.add_tensor(name, arr, raw_dtype=None if t == T.F32 else t)
    return write_out(w, path), tensors


def test_static_model_keeps_the_first_k_neurons_in_the_runtime_types(tmp_path):
    src, tensors = _model(tmp_path / "model.gguf", np.random.default_rng(0))
    out = write_static(src, tmp_path / "static.gguf", K, [T.Q5_0, T.Q8_0])

    r = open_gguf(out)
    assert field_value(r, "llama.feed_forward_length") == K
    assert field_value(r, "general.architecture") == "llama"
    assert field_value(r, "glass.density") is None
    got = {t.name: t for t in r.tensors}
    assert "blk.0.ffn_glass_prior" not in got and len(got) == len(tensors) - 2
    for name in ("token_embd.weight", "output_norm.weight", "blk.1.attn_norm.weight"):
        assert np.array_equal(got[name].data, tensors[name][0])  # byte for byte
    for i in range(2):
        for part in ("gate", "up"):
            t = got[f"blk.{i}.ffn_{part}.weight"]
            assert (t.tensor_type, t.shape.tolist()) == (T.Q4_0, [N_EMBD, K])
            assert bytes(t.data) == bytes(tensors[t.name][0][:K])  # whole rows, whole blocks
        down = got[f"blk.{i}.ffn_down.weight"]
        assert down.shape.tolist() == [K, N_EMBD]
        original = dequantize(tensors[down.name][0], tensors[down.name][1])[:, :K]
        if i == 0:  # Q4_K -> Q5_0: the same columns within Q5_0's rounding (half a step of its 16 levels)
            assert down.tensor_type == T.Q5_0 and down.n_bytes == N_EMBD * K // 32 * 22
            step = np.abs(original).reshape(N_EMBD, -1, 32).max(axis=2, keepdims=True) / 16
            err = np.abs(dequantize(down.data, T.Q5_0) - original).reshape(N_EMBD, -1, 32)
            assert np.all(err <= step * 0.51 + 1e-7)
        else:  # Q8_0 stays Q8_0: a row's first K/32 blocks, bit-exact
            assert down.tensor_type == T.Q8_0 and down.n_bytes == N_EMBD * K // 32 * 34
            assert np.array_equal(dequantize(down.data, T.Q8_0), original)



TEXT = ("<|im_start|>user\nExplain in a few sentences why the sky is blue.<|im_end|>\n<|im_start|>assistant\n"
        "The sky looks blue because air molecules scatter short wavelengths of sunlight more than long ones.")


def _logits(path, glass_first_k=None):
    """Logits of every position of TEXT: dense llama.cpp, or with glass_first_k = k GLASS in manual mode under a
    prior that ranks the first k neurons of every layer highest (lambda 1: the prior alone), the whole text sparse."""
    import llama_cpp

    from glass_gguf.runtime import GlassSession

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=2, n_threads_batch=2, logits_all=True,
                          verbose=False)
    tokens = llm.tokenize(TEXT.encode(), special=True)
    glass = GlassSession(llm)
    if glass_first_k is None:
        glass.disable()
    else:
        glass.set_priors([np.arange(n, 0, -1, dtype=np.float32) for n in glass.n_ff()])
        glass.enable(density=glass_first_k / glass.n_ff()[0], lam=1.0, mode="manual")
        llm.eval(tokens[:4])
        glass.finalize()
        assert all(np.array_equal(s, np.arange(glass_first_k)) for s in glass.selected())
        llm.reset()  # manual mode keeps the selection: the whole text runs sparse
    llm.eval(tokens)
    if glass_first_k is not None:
        from glass_checks import assert_decoded_sparse

        assert_decoded_sparse(glass, exactly=len(tokens))
    return llm.scores[: len(tokens)].copy()


def _kl(p_logits, q_logits) -> float:
    """Mean over rows of KL(softmax(p) || softmax(q))."""
    lp = p_logits - p_logits.max(1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(1, keepdims=True))
    lq = q_logits - q_logits.max(1, keepdims=True)
    lq -= np.log(np.exp(lq).sum(1, keepdims=True))
    return float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1)))


@pytest.mark.claims_sparse
def test_static_model_computes_what_glass_computes_at_the_same_selection(smollm2_path, tmp_path):
    """SmolLM2 statically cut to its first 768 neurons runs in stock llama.cpp (GLASS off) and gives the logits GLASS
    gives when it selects those 768 neurons: the same pruned FFN in the same types (Q4_1 down columns in the same
    blocks), measured against what pruning itself moves (dense against GLASS)."""
    from glass_gguf.static_model import write_static

    k = 768
    static = write_static(smollm2_path, tmp_path / "static.gguf", k, [T.Q4_1] * 30)
    reader = open_gguf(static)
    assert field_value(reader, "llama.feed_forward_length") == k
    assert {t.tensor_type for t in reader.tensors if "ffn_down" in t.name} == {T.Q4_1}

    static_logits, sparse, dense = _logits(static), _logits(smollm2_path, k), _logits(smollm2_path)
    assert _kl(static_logits, sparse) < 0.02 * _kl(dense, sparse)
    assert np.mean(np.argmax(static_logits, 1) == np.argmax(sparse, 1)) >= 0.95
