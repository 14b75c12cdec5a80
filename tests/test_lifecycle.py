"""The runtime under real clients: the selection for a request depends only on the tokens in the KV cache.

Every test drives the patched build through llama-cpp-python as users do (create_chat_completion, prompt caches,
save/load, prompt-lookup decoding, the server over loopback) on the real SmolLM2-135M with a prior embedded, and
compares with what a fresh context does with the same tokens (docs/runtime.md, "Lifecycle").
"""
import numpy as np
import pytest

import llama_cpp
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.glass_file import embed_prior
from glass_gguf.prior_file import Prior
from glass_gguf.runtime import GlassSession
from glass_gguf.server import chat as server_chat
from glass_gguf.server import llama_cpp_server
from glass_checks import assert_decoded_sparse, sparse_after_swap

pytestmark = pytest.mark.slow

QUESTION = "Explain in a few sentences why the sky is blue."
OTHERS = [
    "Write a haiku about autumn leaves.",
    "What is the capital of Australia, and why was it chosen?",
    "List three uses of a paperclip.",
]


@pytest.fixture(scope="module")
def glass_model(smollm2_path, tmp_path_factory):
    """SmolLM2 with a prior embedded (glass.density 0.5, glass.lambda 0.5): auto-enables in the patched build."""
    info = gguf_model_info(smollm2_path)
    rng = np.random.default_rng(0)
    prior = Prior(kind="activation", source="test:seed=0", tokens=0, fingerprint=info.fingerprint,
                  scores=[rng.gamma(2.0, 1.0, n).astype(np.float32) for n in info.n_ff])
    out = tmp_path_factory.mktemp("lifecycle") / "smollm2-glass.gguf"
    return embed_prior(smollm2_path, prior, out, density=0.5, lam=0.5)


def make_llm(path, **kw):
    kw.setdefault("n_ctx", 1024)
    return llama_cpp.Llama(model_path=str(path), n_threads=2, n_threads_batch=2, verbose=False, seed=0, **kw)


def ask(llm, messages, n=24) -> str:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    out = llm.create_chat_completion(messages, temperature=0.0, max_tokens=n, seed=0)
    return out["choices"][0]["message"]["content"]


def fresh(glass_model, messages, **kw):
    """(answer, selection, collected positions) of a brand-new context."""
    llm = make_llm(glass_model, **kw)
    answer = ask(llm, messages)
    glass = GlassSession(llm)
    return answer, glass.selected(), glass.collected


def assert_same_selection(got, want):
    assert len(got) == len(want)
    assert any(w is not None for w in want), "no layer was selected: there is nothing to compare"
    for layer, (g, w) in enumerate(zip(got, want)):
        assert (g is None) == (w is None), f"layer {layer}"
        if g is not None:
            np.testing.assert_array_equal(g, w, err_msg=f"layer {layer}")


def jaccard(a, b) -> float:
    a, b = set(a.tolist()), set(b.tolist())
    return len(a & b) / len(a | b)


@pytest.mark.claims_sparse
def test_unrelated_requests_do_not_change_the_answer(glass_model):
    want_answer, want_selection, want_collected = fresh(glass_model, QUESTION)

    llm = make_llm(glass_model)
    for other in OTHERS:
        ask(llm, other)
    glass = GlassSession(llm)
    assert ask(llm, QUESTION) == want_answer
    assert_decoded_sparse(glass, exactly=sparse_after_swap(24))
    assert glass.collected == want_collected, "the statistic covers this prompt, nothing of the earlier ones"
    assert_same_selection(glass.selected(), want_selection)


def test_multi_turn_chat_collects_the_whole_conversation(glass_model):
    llm = make_llm(glass_model)
    messages = [{"role": "user", "content": "Give me three tips for learning to play the guitar."}]
    messages += [{"role": "assistant", "content": ask(llm, messages, n=40)},
                 {"role": "user", "content": "Which of these matters most for a beginner, and why?"}]
    ask(llm, messages)
    glass = GlassSession(llm)

    _, want_selection, want_collected = fresh(glass_model, messages)
    assert glass.collected == want_collected, "turn two re-reads the first answer densely"
    for layer, (got, want) in enumerate(zip(glass.selected(), want_selection)):
        if want is not None:
            assert jaccard(got, want) >= 0.95, f"layer {layer}"


@pytest.mark.claims_sparse
@pytest.mark.parametrize("n_batch,n_ubatch", [(32, 32), (32, 8)])
def test_prompt_of_n_batch_plus_one_tokens_is_collected_and_runs_dense(glass_model, n_batch, n_ubatch):
    tokenizer = make_llm(glass_model, n_batch=n_batch, n_ubatch=n_ubatch)
    text = ("Summarise the plot of a detective story in which the butler did not do it, in two short paragraphs: "
            "who the victim was, who was suspected first, which clue turned the case, and how it ended.")
    prompt = tokenizer.tokenize(text.encode())[: n_batch + 1]
    assert len(prompt) == n_batch + 1

    # logits_all: llama-cpp-python keeps the logits of every position only then
    dense = make_llm(glass_model, n_batch=n_batch, n_ubatch=n_ubatch, logits_all=True)
    GlassSession(dense).disable()
    dense.create_completion(prompt, max_tokens=2, temperature=0.0)

    llm = make_llm(glass_model, n_batch=n_batch, n_ubatch=n_ubatch, logits_all=True)
    llm.create_completion(prompt, max_tokens=24, temperature=0.0)  # past the swap (16 tokens) to the compacted set
    glass = GlassSession(llm)
    assert glass.collected == len(prompt), "the one-token last chunk is prompt, collected densely"
    assert_decoded_sparse(glass, exactly=sparse_after_swap(24))
    np.testing.assert_array_equal(llm.scores[len(prompt) - 1], dense.scores[len(prompt) - 1])


@pytest.mark.claims_sparse
def test_state_load_decodes_with_the_selection_of_its_own_tokens(glass_model):
    want_answer, want_selection, _ = fresh(glass_model, QUESTION)

    llm = make_llm(glass_model)
    ask(llm, QUESTION)
    saved = llm.save_state()
    ask(llm, OTHERS[0])  # another request's statistic and selection
    llm.load_state(saved)
    assert ask(llm, QUESTION) == want_answer
    assert_decoded_sparse(GlassSession(llm), exactly=sparse_after_swap(24))
    assert_same_selection(GlassSession(llm).selected(), want_selection)


@pytest.mark.claims_sparse
def test_ram_prompt_cache_hit_gives_the_fresh_answer(glass_model):
    want_answer, want_selection, _ = fresh(glass_model, QUESTION)

    llm = make_llm(glass_model)
    llm.set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=2 << 30))
    ask(llm, QUESTION)
    ask(llm, OTHERS[1])
    assert ask(llm, QUESTION) == want_answer  # served from the cache: a state load
    assert_decoded_sparse(GlassSession(llm), exactly=sparse_after_swap(24))
    assert_same_selection(GlassSession(llm).selected(), want_selection)


@pytest.mark.claims_sparse
def test_disk_prompt_cache_hit_gives_the_fresh_answer(glass_model, tmp_path):
    want_answer, _, _ = fresh(glass_model, OTHERS[2])

    llm = make_llm(glass_model)
    llm.set_cache(llama_cpp.LlamaDiskCache(cache_dir=str(tmp_path / "cache")))
    ask(llm, OTHERS[2])
    ask(llm, QUESTION)
    assert ask(llm, OTHERS[2]) == want_answer
    assert_decoded_sparse(GlassSession(llm), exactly=sparse_after_swap(24))


@pytest.mark.claims_sparse
def test_prompt_lookup_decoding_verifies_sparse_without_recollecting(glass_model):
    text = ("Repeat this list exactly: red apple, green pear, yellow banana, red apple, green pear, yellow banana, "
            "red apple, green pear, yellow banana.")
    plain = make_llm(glass_model)
    want = plain.create_completion(text, max_tokens=48, temperature=0.0)["choices"][0]["text"]
    assert_decoded_sparse(GlassSession(plain), exactly=sparse_after_swap(48))

    llm = make_llm(glass_model, draft_model=LlamaPromptLookupDecoding(num_pred_tokens=8))
    got = llm.create_completion(text, max_tokens=48, temperature=0.0)["choices"][0]["text"]
    glass = GlassSession(llm)
    assert got == want
    assert_decoded_sparse(glass, min_tokens=sparse_after_swap(48))  # and the drafts verified after the swap
    assert glass.collected == len(llm.tokenize(text.encode())), "drafted tokens never enter the statistic"


def test_last_layer_selection_does_not_depend_on_logits_all(glass_model):
    _, without, _ = fresh(glass_model, QUESTION, logits_all=False)
    _, with_all, _ = fresh(glass_model, QUESTION, logits_all=True)
    assert_same_selection(with_all, without)


@pytest.mark.claims_sparse
def test_glass_on_for_a_stock_gguf_runs_griffin(smollm2_path, monkeypatch):
    monkeypatch.setenv("GLASS_GGUF", "on")
    llm = make_llm(smollm2_path)
    glass = GlassSession(llm)
    assert glass.state == "collect"
    assert glass.params["lambda"] == 0.0 and glass.params["density"] == 0.5
    ask(llm, QUESTION)
    assert_decoded_sparse(glass, exactly=sparse_after_swap(24))


def test_bad_environment_setting_is_refused_not_replaced(glass_model, monkeypatch):
    monkeypatch.setenv("GLASS_GGUF_DENSITY", "0x1p-2")
    with pytest.raises(ValueError, match=r"GLASS_GGUF_DENSITY=0x1p-2 is not a number in \(0, 1\]"):
        make_llm(glass_model)


def glass_answer_differing_from_dense(glass_model, messages, n=48, sparse=None) -> str:
    """The answer GLASS gives in this process, after checking it decoded all its tokens past the swap sparse and that
    they changed the answer (so a server that returns it did decode sparse too)."""
    llm = make_llm(glass_model)
    answer = ask(llm, messages, n=n)
    assert_decoded_sparse(GlassSession(llm), exactly=sparse_after_swap(n) if sparse is None else sparse)
    dense = make_llm(glass_model)
    GlassSession(dense).disable()
    assert ask(dense, messages, n=n) != answer, "the sparse tokens did not change the answer: nothing is proven"
    return answer


@pytest.mark.claims_sparse
def test_server_answers_each_request_as_a_fresh_server_would(glass_model, tmp_path):
    first = [{"role": "user", "content": OTHERS[0]}]
    second = [{"role": "user", "content": QUESTION}]
    with llama_cpp_server(glass_model, log_path=tmp_path / "a.log", n_ctx=1024) as server:
        server_chat(server.url, first, max_tokens=48)
        after_other = server_chat(server.url, second, max_tokens=48)
    with llama_cpp_server(glass_model, log_path=tmp_path / "b.log", n_ctx=1024) as server:
        alone = server_chat(server.url, second, max_tokens=48)
    assert after_other == alone == glass_answer_differing_from_dense(glass_model, second)
    log = (tmp_path / "a.log").read_text()
    assert "glass: enabled (density 0.500, lambda 0.500, auto mode)" in log


def decode_one_by_one(llm, prompt, n, declare_prompt_end=False):
    """Greedy tokens after prompt, one single-token batch each; (tokens, logits per step, GLASS state per step).
    declare_prompt_end: tell GLASS where the prompt ends first, as llama-cpp-python's generate does."""
    glass = GlassSession(llm)
    llm.reset()
    if declare_prompt_end:
        glass.set_prompt_end(len(prompt))
    llm.eval(prompt)
    tokens, logits, states = [], [llm.scores[len(prompt) - 1].copy()], []
    for _ in range(n):
        tokens.append(int(np.argmax(logits[-1])))
        llm.eval([tokens[-1]])
        logits.append(llm.scores[llm.n_tokens - 1].copy())
        states.append(glass.state)
    return tokens, logits, states


@pytest.mark.claims_sparse
def test_background_compaction_swaps_at_a_fixed_position_never_half_built(glass_model, monkeypatch):
    """The first 6 generated tokens decode dense (bit-identical to dense) while the compaction runs beside them;
    from the swap position on, the complete compacted set is used, so two runs give bit-identical logits."""
    import threading

    monkeypatch.setenv("GLASS_GGUF_SWAP_AFTER", "6")
    prompt = make_llm(glass_model).tokenize(b"Write three sentences about the history of the printing press.")

    dense = make_llm(glass_model, logits_all=True)
    GlassSession(dense).disable()
    dense_tokens, dense_logits, _ = decode_one_by_one(dense, prompt, 6)

    llm = make_llm(glass_model, logits_all=True)
    tokens, logits, states = decode_one_by_one(llm, prompt, 16)
    assert states[:6] == ["collect"] * 6 and states[6:] == ["sparse"] * 10
    assert_decoded_sparse(GlassSession(llm), exactly=10)
    assert tokens[:6] == dense_tokens
    for step in range(7):  # the prompt's last position and the six dense generated tokens
        np.testing.assert_array_equal(logits[step], dense_logits[step], err_msg=f"step {step}")

    stop = threading.Event()
    busy = threading.Thread(target=lambda: [sum(range(10_000)) for _ in iter(stop.is_set, True)])
    busy.start()  # another timing for the background worker
    try:
        again_tokens, again_logits, _ = decode_one_by_one(make_llm(glass_model, logits_all=True), prompt, 16)
    finally:
        stop.set()
        busy.join()
    assert again_tokens == tokens
    for step, (a, b) in enumerate(zip(again_logits, logits)):
        np.testing.assert_array_equal(a, b, err_msg=f"step {step}")
