"""Warm-up and refresh: the selection follows the answer, and still depends only on the tokens in the KV cache.

The runtime decodes the first W generated tokens dense and collects them before it selects; then every R-th token
decodes dense, joins the statistic and the selection is made again (docs/runtime.md, "Warm-up and refresh").
These tests drive it as clients do, on the real SmolLM2-135M with a prior embedded.
"""
import numpy as np
import pytest

import llama_cpp
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

from glass_gguf.glass_file import embed_prior
from glass_gguf.runtime import GlassError, GlassSession
from glass_gguf.server import chat as server_chat
from glass_gguf.server import llama_cpp_server
from glass_checks import assert_decoded_sparse, sparse_after_swap
from test_lifecycle import (decode_one_by_one, glass_answer_differing_from_dense, glass_model,  # noqa: F401
                            make_llm)  # the same model, contexts, decoding

pytestmark = pytest.mark.slow

PROMPT = b"Write three sentences about the history of the printing press."


@pytest.mark.claims_sparse
def test_warm_up_tokens_decode_dense_then_select_as_if_they_were_prompt(glass_model, monkeypatch):
    monkeypatch.setenv("GLASS_GGUF_WARMUP", "6")
    llm = make_llm(glass_model, logits_all=True)
    prompt = llm.tokenize(PROMPT)
    dense = make_llm(glass_model, logits_all=True)
    GlassSession(dense).disable()
    want_tokens, want_logits, _ = decode_one_by_one(dense, prompt, 6, declare_prompt_end=True)

    tokens, logits, states = decode_one_by_one(llm, prompt, 10, declare_prompt_end=True)
    assert states == ["collect"] * 6 + ["sparse"] * 4
    assert_decoded_sparse(GlassSession(llm), exactly=4)
    assert tokens[:6] == want_tokens
    for step in range(7):   # the prompt's last position and the six warm-up tokens: dense, bit for bit
        np.testing.assert_array_equal(logits[step], want_logits[step], err_msg=f"step {step}")
    warmed = GlassSession(llm).selected()

    # the same neurons as a context that reads prompt + those six tokens as its prompt (same rows, same order)
    monkeypatch.delenv("GLASS_GGUF_WARMUP")
    monkeypatch.setenv("GLASS_GGUF_SWAP_AFTER", "0")   # select at the first generated token, not in the background
    longer = make_llm(glass_model)
    answer = longer.generate(prompt + tokens[:6], temp=0.0)
    next(answer), next(answer)     # the first generated token is decoded: the selection is made
    as_prompt = GlassSession(longer).selected()
    jaccards = [len(np.intersect1d(a, b)) / len(np.union1d(a, b)) for a, b in zip(warmed, as_prompt) if a is not None]
    assert min(jaccards) >= 0.98, jaccards


@pytest.mark.claims_sparse
def test_a_batch_across_refresh_points_gives_the_logits_of_single_tokens(glass_model):
    """A client may feed generated tokens in any batches (teacher forcing, speculative verification): the runtime
    splits a batch that crosses a collected position, so every position decodes as it would alone."""
    llm = make_llm(glass_model, logits_all=True)
    glass = GlassSession(llm)
    glass.set_schedule(warmup=3, refresh=4, min_change=0.0)
    prompt = llm.tokenize(PROMPT)
    tokens, want, _ = decode_one_by_one(llm, prompt, 24, declare_prompt_end=True)
    steps_one_by_one = glass.schedule()["steps"]
    # positions 0-2 (warm-up) and 6, 10, 14, 18, 22 (refresh) decode dense and are collected: 16 of 24 sparse
    assert_decoded_sparse(glass, exactly=16)

    llm.reset()
    glass.set_prompt_end(len(prompt))
    llm.eval(prompt)
    llm.eval(tokens)               # one batch of 24 generated tokens crossing six refresh points
    got = llm.scores[len(prompt) - 1: len(prompt) + len(tokens)]
    np.testing.assert_array_equal(got, np.asarray(want))
    assert glass.schedule()["steps"] == steps_one_by_one == 1 + (24 - 3) // 4
    assert_decoded_sparse(glass, exactly=16)


@pytest.mark.claims_sparse
def test_refresh_gives_the_same_answer_with_prompt_lookup_decoding(glass_model):
    """Drafted tokens that cross a refresh point and are rejected leave no trace: their rows are dropped and the
    selection goes back to the one made without them."""
    text = ("Repeat this list exactly: red apple, green pear, yellow banana, red apple, green pear, yellow banana, "
            "red apple, green pear, yellow banana.")

    def answer(**kw):
        llm = make_llm(glass_model, **kw)
        glass = GlassSession(llm)
        glass.set_schedule(warmup=4, refresh=3, min_change=0.0)
        out = llm.create_completion(text, max_tokens=48, temperature=0.0)["choices"][0]["text"]
        # of the 47 decoded positions, 0-3 warm up and 6, 9, ..., 45 refresh (14): at least 29 sparse (drafting
        # verifies more)
        assert_decoded_sparse(glass, min_tokens=47 - 4 - 14)
        return out, glass.schedule()

    plain, plain_schedule = answer()
    drafted, drafted_schedule = answer(draft_model=LlamaPromptLookupDecoding(num_pred_tokens=8))
    assert drafted == plain
    assert plain_schedule["steps"] > 5 and plain_schedule["layers_recompacted"] > 0
    # drafting verifies a few positions past the last accepted token: at least as many selections were made
    assert drafted_schedule["steps"] >= plain_schedule["steps"]


def test_an_unchanged_selection_is_not_compacted_again(glass_model):
    llm = make_llm(glass_model)
    glass = GlassSession(llm)
    glass.set_schedule(warmup=0, refresh=4, min_change=1.0)   # no change is ever large enough
    llm.create_chat_completion([{"role": "user", "content": PROMPT.decode()}], max_tokens=32, temperature=0.0)
    report = glass.schedule()
    assert report["steps"] > 1 and report["layers_recompacted"] == 0


def test_bad_schedules_are_refused_with_the_reason(glass_model, monkeypatch):
    llm = make_llm(glass_model)
    glass = GlassSession(llm)
    with pytest.raises(GlassError, match="refresh must be 0 \\(off\\) or a period of at least 2 tokens, got 1"):
        glass.set_schedule(warmup=0, refresh=1)
    with pytest.raises(GlassError, match="threshold must be in \\[0, 1\\]"):
        glass.set_schedule(min_change=1.5)
    assert glass.schedule()["refresh"] == 0

    monkeypatch.setenv("GLASS_GGUF_REFRESH", "often")
    with pytest.raises(ValueError, match=r"^GLASS_GGUF_REFRESH=often is not 0 \(off\) or a period of at least 2 tokens$"):
        llama_cpp.Llama(model_path=str(glass_model), n_ctx=256, verbose=False)


@pytest.mark.claims_sparse
def test_server_with_refresh_answers_as_a_fresh_server_would(glass_model, tmp_path, monkeypatch):
    monkeypatch.setenv("GLASS_GGUF_WARMUP", "4")
    monkeypatch.setenv("GLASS_GGUF_REFRESH", "8")
    first = [{"role": "user", "content": "Write a haiku about autumn leaves."}]
    second = [{"role": "user", "content": "Explain in a few sentences why the sky is blue."}]
    with llama_cpp_server(glass_model, log_path=tmp_path / "a.log", n_ctx=1024) as server:
        server_chat(server.url, first, max_tokens=48)
        after_other = server_chat(server.url, second, max_tokens=48)
    with llama_cpp_server(glass_model, log_path=tmp_path / "b.log", n_ctx=1024) as server:
        alone = server_chat(server.url, second, max_tokens=48)
    # in this process, under the same schedule: 47 decoded positions, 0-3 warm up, 11, 19, ..., 43 refresh (5)
    assert after_other == alone == glass_answer_differing_from_dense(glass_model, second, n=48, sparse=47 - 4 - 5)


@pytest.mark.claims_sparse
def test_background_compaction_gives_the_same_answer_with_prompt_lookup_decoding(glass_model, monkeypatch):
    """GLASS_GGUF_SWAP_AFTER=5: the first five generated tokens decode dense while the compaction runs; a drafted
    verification batch across the swap position is split there, so drafting changes nothing."""
    monkeypatch.setenv("GLASS_GGUF_SWAP_AFTER", "5")
    text = ("Repeat this list exactly: red apple, green pear, yellow banana, red apple, green pear, yellow banana, "
            "red apple, green pear, yellow banana.")

    def answer(**kw):
        llm = make_llm(glass_model, **kw)
        out = llm.create_completion(text, max_tokens=32, temperature=0.0)["choices"][0]["text"]
        assert_decoded_sparse(GlassSession(llm), min_tokens=sparse_after_swap(32, swap_after=5))
        return out

    assert answer(draft_model=LlamaPromptLookupDecoding(num_pred_tokens=8)) == answer()


def test_the_schedule_stored_in_the_gguf_is_used_and_the_environment_overrides_it(glass_model, tmp_path,
                                                                                   monkeypatch):
    from glass_gguf.prior_file import read_prior

    scheduled = embed_prior(glass_model, read_prior(glass_model), tmp_path / "scheduled.gguf", density=0.5, lam=0.5,
                            warmup=16, refresh=32)
    assert (read_prior(scheduled).warmup, read_prior(scheduled).refresh) == (16, 32)
    report = GlassSession(make_llm(scheduled)).schedule()
    assert (report["warmup"], report["refresh"]) == (16, 32)

    monkeypatch.setenv("GLASS_GGUF_REFRESH", "0")
    report = GlassSession(make_llm(scheduled)).schedule()
    assert (report["warmup"], report["refresh"]) == (16, 0)


@pytest.mark.claims_sparse
def test_a_warm_up_schedule_then_another_density_on_a_padded_k_quant_model(smollm2_path, tmp_path):
    """Regression (issue 23): K-quant down projections pad k to 256-neuron blocks (density 0.6: 928 -> 1024); a
    teacher-forced answer under a warm-up schedule, then the same context at other densities, must decode (an
    earlier padding crashed llama.cpp's graph allocator on the second setting's prefill) and go sparse each time."""
    from glass_gguf.quantize import quantize

    model = quantize(smollm2_path, tmp_path / "q4_k_m.gguf", "Q4_K_M", threads=2)
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=512, logits_all=True, n_threads=2, verbose=False)
    glass = GlassSession(llm)
    prompt = llm.tokenize(b"Write a long story about a dragon who learns to bake bread. " * 4)
    answer = llm.tokenize(b" Once upon a time there was a dragon named Ember." * 12, add_bos=False)[:96]
    for density in (0.6, 0.75, 0.9):
        glass.disable()
        glass.enable(density, 0.0, "auto")
        glass.set_schedule(24, 0)
        glass.set_prompt_end(len(prompt))
        llm.eval(prompt)
        llm.eval(answer[:24])   # the warm-up: dense, collected
        llm.eval(answer[24:])   # sparse under the selection made from the prompt and the warm-up
        assert glass.sparse_tokens == len(answer) - 24, density
        assert np.isfinite(llm.scores[: len(prompt) + len(answer)]).all()
