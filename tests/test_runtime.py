"""The GLASS runtime inside the patched llama.cpp, driven through llama-cpp-python on the real SmolLM2-135M."""
import numpy as np
import pytest

import llama_cpp

from glass_gguf import method
from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.glass_file import embed_prior
from glass_gguf.prior_file import Prior
from glass_gguf.runtime import GlassError, GlassSession
from glass_checks import (assert_decoded_sparse, assert_server_answers_like_this_process, sparse_after_swap,
                          zero_pruned_neurons)

CHAT_PROMPT = (
    "<|im_start|>user\nExplain in a few sentences why the sky is blue.<|im_end|>\n<|im_start|>assistant\n"
)


def seeded_prior(smollm2_path, seed=0, decimals=None) -> Prior:
    """A prior with the right shape and fingerprint (values from a seed; rounding makes ties on purpose)."""
    info = gguf_model_info(smollm2_path)
    rng = np.random.default_rng(seed)
    scores = [rng.gamma(2.0, 1.0, n).astype(np.float32) for n in info.n_ff]
    if decimals is not None:
        scores = [np.round(s, decimals).astype(np.float32) for s in scores]
    return Prior(kind="activation", source=f"test:seed={seed}", tokens=0, fingerprint=info.fingerprint, scores=scores)


@pytest.fixture(scope="module")
def glass_model(smollm2_path, tmp_path_factory):
    """SmolLM2 with a prior embedded (glass.density 0.5, glass.lambda 0.5): auto-enables in the patched build."""
    out = tmp_path_factory.mktemp("glass") / "smollm2-glass.gguf"
    return embed_prior(smollm2_path, seeded_prior(smollm2_path, decimals=1), out, density=0.5, lam=0.5)


def make_llm(path, **kw):
    kw.setdefault("n_ctx", 512)
    return llama_cpp.Llama(model_path=str(path), n_threads=2, n_threads_batch=2, verbose=False, seed=0, **kw)


def greedy(llm, tokens, n):
    """n greedy tokens after tokens, through llama-cpp-python's own eval (auto mode sees real batches)."""
    llm.reset()
    llm.eval(tokens)
    out = []
    for _ in range(n):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        llm.eval([token])
    return out


def test_density_1_gives_identical_tokens_and_logits(smollm2_path):
    """An exactness check of the lifecycle at density 1 (every neuron kept, nothing compacted): it proves nothing
    about sparse decoding, and is not marked claims_sparse."""
    llm = make_llm(smollm2_path)
    tokens = llm.tokenize(CHAT_PROMPT.encode(), special=True)
    glass = GlassSession(llm)
    assert glass.state == "off"
    dense_tokens = greedy(llm, tokens, 24)
    dense_logits = llm.scores[: llm.n_tokens].copy()

    glass.enable(density=1.0, lam=0.0)
    sparse_tokens = greedy(llm, tokens, 24)
    assert glass.state == "sparse"
    assert sparse_tokens == dense_tokens
    np.testing.assert_array_equal(llm.scores[len(tokens) - 1], dense_logits[len(tokens) - 1])


# 0.1, 0.3 and 0.6 are not exact in float32 (the C API's type) and pick other neurons in float64 for some layers;
# 21.5 / 48 puts density * 1536 / 32 on a rounding tie that float32 and float64 break differently (k 672 vs 704)
@pytest.mark.parametrize("density", [0.5, 21.5 / 48])
@pytest.mark.parametrize("lam", [0.0, 0.1, 0.25, 0.3, 0.6, 1.0])
def test_cpp_selection_equals_method_py(glass_model, lam, density):
    llm = make_llm(glass_model)
    glass = GlassSession(llm)
    glass.enable(density=density, lam=lam, mode="manual")
    llm.eval(llm.tokenize(CHAT_PROMPT.encode(), special=True))
    glass.finalize()

    sums, rows = glass.stats()
    priors = [np.asarray(p, dtype=np.float64) for p in seeded_prior(glass_model, decimals=1).scores]
    expected = method.select_layers(sums, rows, priors, lam, density)
    chosen = glass.selected()
    assert rows[-1] == 0 < rows[0], "the last layer runs on the output rows only and never collects"
    for layer, (got, want) in enumerate(zip(chosen, expected)):
        np.testing.assert_array_equal(got, want, err_msg=f"layer {layer}, lambda {lam}")
    k = method.neurons_to_keep(1536, density)
    assert k == (768 if density == 0.5 else 672)
    assert all(len(c) == k for c in chosen)


@pytest.mark.parametrize("lam", [0.25, 0.6])
def test_cpp_per_layer_density_equals_method_py(glass_model, lam):
    """The same per-layer k and the same neurons as method.select_layers under a split that moves every layer."""
    prior = seeded_prior(glass_model, decimals=1)
    scale = method.layer_scale(prior.scores, 0.6, 2.0)
    llm = make_llm(glass_model)
    glass = GlassSession(llm)
    glass.enable(density=0.6, lam=lam, mode="manual")
    glass.set_layer_scale(scale)
    assert glass.layer_scale() == [float(np.float32(x)) for x in scale]
    llm.eval(llm.tokenize(CHAT_PROMPT.encode(), special=True))
    glass.finalize()

    sums, rows = glass.stats()
    priors = [np.asarray(p, dtype=np.float64) for p in prior.scores]
    expected = method.select_layers(sums, rows, priors, lam, 0.6, scale)
    chosen = glass.selected()
    for layer, (got, want) in enumerate(zip(chosen, expected)):
        np.testing.assert_array_equal(got, want, err_msg=f"layer {layer}")
    ks = [len(c) for c in chosen]
    assert len(set(ks)) > 3, "the split gives layers different widths"
    assert abs(sum(ks) - 30 * method.neurons_to_keep(1536, 0.6)) <= 30 * 16, "and keeps the total"
    glass.set_layer_scale(None)                  # back to uniform: a new statistic, every layer at k
    llm.eval(llm.tokenize(CHAT_PROMPT.encode(), special=True))
    glass.finalize()
    assert {len(c) for c in glass.selected()} == {method.neurons_to_keep(1536, 0.6)}


@pytest.mark.claims_sparse
def test_a_glass_gguf_carries_its_layer_split(smollm2_path, tmp_path):
    prior = seeded_prior(smollm2_path, decimals=1)
    scale = method.layer_scale(prior.scores, 0.5, 1.0)
    path = embed_prior(smollm2_path, prior, tmp_path / "split.gguf", density=0.5, lam=0.5, layer_scale=scale)
    llm = make_llm(path)
    glass = GlassSession(llm)
    assert glass.layer_scale() == [float(np.float32(x)) for x in scale]
    out = llm.create_completion(CHAT_PROMPT, max_tokens=24, temperature=0.0)   # past the swap at 16 tokens
    assert out["usage"]["completion_tokens"] == 24
    assert_decoded_sparse(glass, exactly=sparse_after_swap(24))
    assert [len(c) for c in glass.selected()] == [
        method.neurons_to_keep(1536, method.layer_density(0.5, s)) for s in scale]
    with pytest.raises(GlassError, match=r"layer scale: 2 values for 30 layers"):
        glass.set_layer_scale([1.0, 1.0])
    with pytest.raises(GlassError, match=r"layer scale: layer 1 has 0.000000, expected a factor in \(0, 16\]"):
        glass.set_layer_scale([1.0, 0.0] + [1.0] * 28)
    assert glass.layer_scale() == [float(np.float32(x)) for x in scale], "a refused call changes nothing"


def test_selection_ties_go_to_the_smaller_neuron_index(smollm2_path):
    """A flat prior ties every neuron: static selection (lambda 1) must keep the first k, as method.py does."""
    llm = make_llm(smollm2_path)
    glass = GlassSession(llm)
    glass.set_priors([np.ones(n, dtype=np.float32) for n in glass.n_ff()])
    glass.enable(density=0.25, lam=1.0, mode="manual")
    llm.eval(llm.tokenize(b"Hello there"))
    glass.finalize()
    k = method.neurons_to_keep(1536, 0.25)
    for got in glass.selected():
        np.testing.assert_array_equal(got, np.arange(k))


def kl_divergence(p_logits, q_logits) -> float:
    """Mean over rows of KL(softmax(p) || softmax(q))."""
    lp = p_logits - p_logits.max(1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(1, keepdims=True))
    lq = q_logits - q_logits.max(1, keepdims=True)
    lq -= np.log(np.exp(lq).sum(1, keepdims=True))
    return float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1)))


def dense_logits(path, tokens):
    llm = make_llm(path, logits_all=True)
    GlassSession(llm).disable()  # a GLASS GGUF (or a copy of one) auto-enables: run it dense
    llm.eval(tokens)
    return llm.scores[: len(tokens)].copy()


PRUNING_TEXT = CHAT_PROMPT + "The sky looks blue because air molecules scatter short wavelengths of sunlight."


def sparse_logits_at_density_half(path):
    """(session, tokens, logits) of PRUNING_TEXT scored under the selection its own prefill makes (manual mode)."""
    llm = make_llm(path, logits_all=True)
    glass = GlassSession(llm)
    glass.enable(density=0.5, lam=0.5, mode="manual")
    tokens = llm.tokenize(PRUNING_TEXT.encode(), special=True)
    llm.eval(tokens)
    glass.finalize()
    llm.reset()  # score the whole text under the frozen mask (manual mode keeps SPARSE for every batch)
    llm.eval(tokens)
    assert_decoded_sparse(glass, exactly=len(tokens))
    return glass, tokens, llm.scores[: len(tokens)].copy()


@pytest.mark.claims_sparse
@pytest.mark.parametrize("down_q8_0, tolerance, agreement", [("1", 0.1, 0.9), ("0", 0.25, 0.6)])
def test_sparse_logits_equal_an_independent_pruned_model(glass_model, tmp_path, monkeypatch, down_q8_0, tolerance,
                                                          agreement):
    """Sparse decoding computes the pruned FFN: compare with dense llama.cpp on a copy whose pruned neurons are 0.

    What remains is the re-quantization of the gathered down columns: small when they become Q8_0, larger when
    Q4_1 columns are regrouped into new Q4_1 blocks (the default, for speed). Both are measured against the
    distance between dense and sparse, which is what pruning itself costs.
    """
    monkeypatch.setenv("GLASS_GGUF_DOWN_Q8_0", down_q8_0)
    glass, tokens, sparse = sparse_logits_at_density_half(glass_model)

    pruned_path = tmp_path / "pruned.gguf"
    zero_pruned_neurons(glass_model, pruned_path, glass.selected())
    reference = dense_logits(pruned_path, tokens)
    dense = dense_logits(glass_model, tokens)

    assert kl_divergence(reference, sparse) < tolerance * kl_divergence(dense, sparse)
    assert np.mean(np.argmax(reference, 1) == np.argmax(sparse, 1)) >= agreement


@pytest.fixture(scope="module")
def glass_model_q4_k(smollm2_path, tmp_path_factory):
    """SmolLM2 re-quantized to Q4_K_M by llama.cpp (its down projections are Q4_K and Q6_K), prior embedded."""
    from glass_gguf.quantize import quantize

    out = tmp_path_factory.mktemp("q4k")
    quantize(smollm2_path, out / "q4_k_m.gguf", "Q4_K_M", threads=2)
    return embed_prior(out / "q4_k_m.gguf", seeded_prior(smollm2_path, decimals=1), out / "glass.gguf",
                       density=0.5, lam=0.5)


@pytest.mark.claims_sparse
def test_k_quant_down_projections_compact_in_their_own_type_close_to_the_pruned_model(glass_model_q4_k, tmp_path):
    """Q4_K and Q6_K down columns regrouped into new blocks of their own type (a compacted layer reads the bytes of
    its kept neurons at the model's bits per weight): the second rounding stays small next to what pruning costs,
    measured against the exactly pruned model; and the bytes a token reads are those of the kept neurons."""
    import gguf

    Q = gguf.GGMLQuantizationType
    tensors = {t.name: t for t in gguf.GGUFReader(str(glass_model_q4_k)).tensors}
    down_types = [tensors[f"blk.{i}.ffn_down.weight"].tensor_type for i in range(30)]
    assert Q.Q4_K in down_types and Q.Q6_K in down_types
    glass, tokens, sparse = sparse_logits_at_density_half(glass_model_q4_k)

    k, n_ff = 768, 1536  # k is whole 256-element blocks: no padding
    for source in (Q.Q4_K, Q.Q6_K):
        layer = next(i for i, t in enumerate(down_types)
                     if t == source and glass.layer_bytes(i)[0] != glass.layer_bytes(i)[1])  # a compacted layer
        dense = sum(int(tensors[f"blk.{layer}.ffn_{w}.weight"].n_bytes) for w in ("gate", "up", "down"))
        assert glass.layer_bytes(layer) == (dense, dense * k // n_ff), source.name

    pruned_path = tmp_path / "pruned.gguf"
    zero_pruned_neurons(glass_model_q4_k, pruned_path, glass.selected())
    reference = dense_logits(pruned_path, tokens)
    dense = dense_logits(glass_model_q4_k, tokens)
    assert kl_divergence(reference, sparse) < 0.25 * kl_divergence(dense, sparse)


@pytest.mark.claims_sparse
def test_iq4_xs_down_projections_compact_in_their_own_type_close_to_the_pruned_model(smollm2_path, tmp_path):
    """IQ4_XS (a non-linear codebook) compacts in its own type through the runtime's closed-form quantizer: the
    bytes of the kept neurons at 4.25 bits per weight, and a second rounding small next to what pruning costs."""
    import gguf

    from glass_gguf.quantize import quantize

    quantize(smollm2_path, tmp_path / "iq4_xs.gguf", "IQ4_XS", threads=2)
    model = embed_prior(tmp_path / "iq4_xs.gguf", seeded_prior(smollm2_path, decimals=1), tmp_path / "glass.gguf",
                        density=0.5, lam=0.5)
    tensors = {t.name: t for t in gguf.GGUFReader(str(model)).tensors}
    layers = [i for i in range(30)  # llama.cpp gives a few layers' down projections more bits (Q5_K)
              if tensors[f"blk.{i}.ffn_down.weight"].tensor_type == gguf.GGMLQuantizationType.IQ4_XS]
    assert len(layers) >= 20
    glass, tokens, sparse = sparse_logits_at_density_half(model)
    for il in layers:
        dense_bytes = sum(int(tensors[f"blk.{il}.ffn_{w}.weight"].n_bytes) for w in ("gate", "up", "down"))
        assert glass.layer_bytes(il) == (dense_bytes, dense_bytes * 768 // 1536)

    pruned_path = tmp_path / "pruned.gguf"
    zero_pruned_neurons(model, pruned_path, glass.selected())
    reference = dense_logits(pruned_path, tokens)
    assert kl_divergence(reference, sparse) < 0.25 * kl_divergence(dense_logits(model, tokens), sparse)


@pytest.mark.claims_sparse
def test_a_glass_gguf_runs_glass_under_plain_llama(glass_model):
    llm = make_llm(glass_model)
    glass = GlassSession(llm)
    assert glass.state == "collect"
    assert glass.params == {"density": 0.5, "lambda": 0.5, "mode": "auto"}
    out = llm.create_completion(CHAT_PROMPT, max_tokens=24, temperature=0.0)   # past the swap at 16 tokens
    assert out["usage"]["completion_tokens"] == 24
    assert_decoded_sparse(glass, exactly=sparse_after_swap(24))


def test_environment_turns_glass_off_or_overrides(glass_model, monkeypatch):
    monkeypatch.setenv("GLASS_GGUF", "off")
    assert GlassSession(make_llm(glass_model)).state == "off"
    monkeypatch.setenv("GLASS_GGUF", "")
    monkeypatch.setenv("GLASS_GGUF_DENSITY", "0.75")
    monkeypatch.setenv("GLASS_GGUF_LAMBDA", "0.25")
    assert GlassSession(make_llm(glass_model)).params == {"density": 0.75, "lambda": 0.25, "mode": "auto"}


@pytest.mark.claims_sparse
def test_multi_turn_chat_accumulates_statistics_across_turns(glass_model):
    llm = make_llm(glass_model, n_ctx=1024)
    glass = GlassSession(llm)
    messages = [{"role": "user", "content": "Name three colours of the rainbow."}]
    first = llm.create_chat_completion(messages, max_tokens=24, temperature=0.0)
    assert first["usage"]["completion_tokens"] == 24, "the answer runs past the swap"
    assert_decoded_sparse(glass, exactly=sparse_after_swap(24))
    rows_after_first = glass.stats()[1][0]

    messages += [first["choices"][0]["message"], {"role": "user", "content": "And which one is between them?"}]
    second = llm.create_chat_completion(messages, max_tokens=24, temperature=0.0)
    assert second["usage"]["completion_tokens"] == 24
    # a new turn continues the statistic (it is not cleared), and so does the count: both answers' sparse tokens
    assert_decoded_sparse(glass, exactly=2 * sparse_after_swap(24))
    assert glass.stats()[1][0] > rows_after_first
    assert second["choices"][0]["message"]["content"].strip()


@pytest.mark.claims_sparse
def test_streaming_completion_with_glass(glass_model):
    llm = make_llm(glass_model)
    chunks = list(llm.create_completion(CHAT_PROMPT, max_tokens=24, temperature=0.0, stream=True))
    assert "".join(c["choices"][0]["text"] for c in chunks).strip()
    assert_decoded_sparse(GlassSession(llm), exactly=sparse_after_swap(24))


def test_bad_arguments_give_clear_errors(smollm2_path):
    llm = make_llm(smollm2_path)
    glass = GlassSession(llm)
    for density in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(GlassError, match="density must be in"):
            glass.enable(density=density, lam=0.0)
    with pytest.raises(GlassError, match="lambda must be in"):
        glass.enable(density=0.5, lam=1.5)
    with pytest.raises(GlassError, match="needs a global prior"):
        glass.enable(density=0.5, lam=0.5)  # the stock GGUF has no prior
    with pytest.raises(GlassError, match="has 1000 values, the layer has n_ff = 1536"):
        glass.set_prior(0, np.ones(1000, dtype=np.float32))
    with pytest.raises(GlassError, match="non-finite"):
        glass.set_prior(0, np.full(1536, np.nan, dtype=np.float32))
    with pytest.raises(GlassError, match="out of range"):
        glass.set_prior(30, np.ones(1536, dtype=np.float32))
    with pytest.raises(ValueError, match="priors for 29 layers, the model has 30"):
        glass.set_priors([np.ones(1536, dtype=np.float32)] * 29)
    with pytest.raises(GlassError, match="not enabled"):
        glass.finalize()
    with pytest.raises(GlassError, match="nothing was collected"):
        glass.enable(density=0.5, lam=0.0, mode="manual")
        glass.finalize()
    # the context still works after every refusal
    assert llm.create_completion("Hello", max_tokens=4, temperature=0.0)["choices"][0]["text"] is not None


@pytest.mark.claims_sparse
def test_llama_cpp_python_server_answers_with_glass_active(glass_model, tmp_path):
    """`python -m llama_cpp.server` on a GLASS GGUF: an OpenAI-style request on loopback gets the answer GLASS gives in
    this process (which decoded 31 of its 48 tokens sparse and differs from the dense answer)."""
    messages = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
    assert_server_answers_like_this_process(glass_model, messages, tmp_path / "server.log", make_llm,
                                            ["glass: enabled (density 0.500, lambda 0.500, auto mode)"])


def run_cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "glass_gguf.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_bench_reports_dense_and_glass_in_one_run(smollm2_path):
    import json

    run = run_cli("bench", smollm2_path, "--density", "0.5", "--repeats", "1", "--prompt-tokens", "32",
                  "--gen-tokens", "48", "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    for key in ("dense_tok_s", "glass_tok_s", "speedup", "ideal_speedup", "finalize_ms", "prefill_overhead_pct",
                "ttft_dense_ms", "ttft_glass_ms", "peak_rss_dense_mb", "peak_rss_glass_mb"):
        assert key in result
    # by default the first 16 generated tokens decode dense while the compaction runs beside them
    assert result["dense_tokens_before_swap"] == 16
    assert result["peak_rss_glass_mb"] >= result["peak_rss_dense_mb"] > 0
    # bytes read per token: SmolLM2 Q4_1 is ~52% FFN, half of it pruned (exact from the file's tensor sizes)
    assert 1.30 < result["ideal_speedup"] < 1.40
    # the speed-up is the median of per-round ratios, bracketed by their quartiles; the ceiling was timed too
    assert result["speedup_q1"] <= result["speedup"] <= result["speedup_q3"]
    assert result["ceiling_tok_s"] > 0 and result["share_of_ceiling"] > 0
    # decoding from the compacted copies, the dense FFN pages of the mapped file are handed back: resident memory
    # falls below dense (measured: by 13 MB, 0.55 of the 24 MB pruned; the GLASS context's own buffers take the rest)
    assert 20 < result["pruned_ffn_mb"] < 30
    if result["file_huge_pages_mb"] == 0:
        assert result["decode_rss_glass_mb"] < result["decode_rss_dense_mb"] - 0.4 * result["pruned_ffn_mb"]
    else:  # a kernel that maps the file in 2 MB pages (large page-cache folios): the release cannot hold there, and
        # bench says why (measured on such a machine: 12 MB above dense, the compacted copies)
        assert result["decode_rss_glass_mb"] < result["decode_rss_dense_mb"] + 1.0 * result["pruned_ffn_mb"]


def test_bench_says_in_one_line_when_the_answer_ends_before_the_swap(smollm2_path):
    run = run_cli("bench", smollm2_path, "--repeats", "1", "--prompt-tokens", "32", "--gen-tokens", "8")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("Error: cannot bench SmolLM2-135M-Instruct.Q4_1.gguf: GLASS "
                                                          "decodes dense until it swaps")
    assert "Traceback" not in run.stderr


def _unusual_file(smollm2_path, tmp_path, case):
    prior = seeded_prior(smollm2_path)
    if case == "all-zero prior":        # every neuron ties: the global ranks fall back to neuron order
        prior.scores = [np.zeros_like(s) for s in prior.scores]
    elif case == "huge prior values":   # finite, near float32's maximum: ranks only, nothing overflows
        prior.scores = [(s / s.max() * 3e38).astype(np.float32) for s in prior.scores]
    form = "metadata" if case == "prior in the metadata" else "tensors"
    return embed_prior(smollm2_path, prior, tmp_path / "unusual.gguf", density=0.5, lam=0.5, form=form)


@pytest.mark.parametrize("case", ["all-zero prior", "huge prior values", "prior in the metadata", "density 1e-45"])
def test_bench_measures_valid_but_unusual_files(smollm2_path, tmp_path, case):
    """Valid files and settings at the edges of what GLASS accepts are measured, not given up on: the GLASS context
    swaps to compacted weights after its 16 dense tokens like any other (a density of 1e-45 keeps one neuron per
    layer, padded to a block)."""
    import json

    model = _unusual_file(smollm2_path, tmp_path, case)
    density = ["--density", "1e-45"] if case == "density 1e-45" else []
    run = run_cli("bench", model, *density, "--repeats", "1", "--prompt-tokens", "32", "--gen-tokens", "40", "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["dense_tokens_before_swap"] == 16 and result["speedup"] > 0
    assert result["pruned_ffn_mb"] > 0  # GLASS did compact: its tokens read fewer FFN bytes than dense
    if case == "density 1e-45":
        assert result["density"] == pytest.approx(1e-45, rel=1e-3) and result["ideal_speedup"] > 1.5


def test_bench_has_no_ceiling_for_a_per_layer_split(smollm2_path, tmp_path):
    """llama.cpp builds these models with one FFN width: no stock model has a split's shapes, so bench says so."""
    import json

    prior = seeded_prior(smollm2_path, decimals=1)
    split = embed_prior(smollm2_path, prior, tmp_path / "split.gguf", density=0.5, lam=0.5,
                        layer_scale=method.layer_scale(prior.scores, 0.5, 2.0))
    run = run_cli("bench", split, "--repeats", "1", "--prompt-tokens", "32", "--gen-tokens", "48", "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["ceiling_tok_s"] is None and result["share_of_ceiling"] is None and result["speedup"] > 0


def test_answer_speed_times_whole_answers_under_each_schedule(glass_model):
    """The warm-up's dense tokens are part of an answer's time: each setting gets its own context and the same
    prompt, and the report says how much of the answer each schedule collects."""
    from glass_gguf.answer_speed import AnswerSetting, answer_speed

    settings = {"glass": AnswerSetting(), "warm": AnswerSetting(warmup=8, refresh=8)}
    out = answer_speed(glass_model, 0.5, 0.5, settings, threads=2, n_prompt=32, n_gen=32, repeats=1)
    assert out["dense"]["speedup"] == 1.0 and out["gen_tokens"] == 32 and out["prompt_tokens"] == 32
    assert out["glass"]["collected_share"] == 0.0
    assert out["warm"]["collected_share"] == pytest.approx((8 + 3) / 32)   # positions 0-7, then 15, 23, 31
    assert all(out[name]["answer_tok_s"] > 0 for name in ("dense", "glass", "warm"))


def test_generate_prints_text_and_refuses_bad_density(smollm2_path):
    run = run_cli("generate", smollm2_path, "What is the capital of France?", "--density", "0.75",
                  "--gen-tokens", "8")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip()
    assert "tok/s" in run.stderr and "GLASS density 0.75 lambda 0.00" in run.stderr
    bad = run_cli("generate", smollm2_path, "Hi", "--density", "1.5")
    assert bad.returncode == 2
    assert "must be in (0, 1], got 1.5" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.claims_sparse
def test_a_sidecar_prior_runs_glass_on_a_stock_gguf(smollm2_path, tmp_path):
    from glass_gguf import glass_llama
    from glass_gguf.errors import PriorMismatch
    from glass_gguf.glass_file import write_sidecar

    sidecar = write_sidecar(smollm2_path, seeded_prior(smollm2_path), tmp_path / "smollm2.glass-prior.gguf",
                            density=0.75, lam=0.25)
    llm, glass = glass_llama.load(smollm2_path, prior=sidecar, n_ctx=512, n_threads=2)
    assert glass.params == {"density": 0.75, "lambda": 0.25, "mode": "auto"}
    assert all(glass.layer_info(il)[1] & 2 for il in range(glass.n_layer))  # every layer has its prior
    llm.create_completion(CHAT_PROMPT, max_tokens=24, temperature=0.0)
    assert_decoded_sparse(glass, exactly=sparse_after_swap(24))

    other = seeded_prior(smollm2_path)
    other.fingerprint = other.fingerprint.replace("llama", "qwen2")
    with pytest.raises(PriorMismatch, match="another model"):
        glass_llama.load(smollm2_path, prior=write_prior_file(tmp_path / "other.gguf", other))


def write_prior_file(path, prior):
    from glass_gguf.prior_file import write_prior

    return write_prior(path, prior, with_sums=False)


def test_a_truncated_gguf_gets_a_clear_error_not_a_crash(smollm2_path, tmp_path):
    truncated = tmp_path / "truncated.gguf"
    with open(smollm2_path, "rb") as f:
        truncated.write_bytes(f.read(5_000_000))
    for command in (["generate", truncated, "Hi"], ["bench", truncated, "--repeats", "1"]):
        run = run_cli(*command)
        assert run.returncode == 1, run.stderr[-2000:]
        assert "Error:" in run.stderr and "Traceback" not in run.stderr
