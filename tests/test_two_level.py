"""Two-level decoding in the runtime (docs/two-level.md): inside the prompt's selection, each decoded token keeps the
share f of the neurons with the largest |act(gate)|. Checked on the real SmolLM2-135M through llama_cpp.Llama against
glass_gguf/method.py, the specification."""
import numpy as np
import pytest

from glass_gguf import method
from glass_gguf.runtime import GlassError, GlassSession
from glass_checks import assert_decoded_sparse, sparse_after_swap
from test_runtime import CHAT_PROMPT, glass_model, greedy, kl_divergence, make_llm  # noqa: F401 (fixture)

DUMP = "GLASS_GGUF_DUMP_SELECTION"  # FILE.tokens: `layer il: k m | k activations | kept positions` per token


def read_token_lines(path):
    """[(layer, k, m, activations, kept)] from the runtime's FILE.tokens, in the order it wrote them."""
    lines = []
    for line in path.read_text().splitlines():
        head, acts, kept = line.split("|")
        layer, k, m = head.replace("layer", "").replace(":", "").split()
        lines.append((int(layer), int(k), int(m), np.array(acts.split(), dtype=np.float32),
                      np.array(kept.split(), dtype=np.int64)))
    return lines


def two_level_session(model, fraction, selection_density, monkeypatch=None, dump=None):
    if dump is not None:
        monkeypatch.setenv(DUMP, str(dump))
    llm = make_llm(model, logits_all=True)
    glass = GlassSession(llm)
    glass.set_token_fraction(fraction)
    glass.enable(selection_density, 0.5, "manual")
    return llm, glass


def teacher_forced_logits(llm, glass, prompt, continuation):
    """Logits of every continuation position: the prompt collects, one selection, the continuation decodes sparse."""
    llm.reset()
    glass.reset()
    llm.eval(prompt)
    glass.finalize()
    llm.eval(continuation)
    return np.array(llm.scores[len(prompt):len(prompt) + len(continuation)])


@pytest.mark.claims_sparse
def test_every_token_keeps_the_neurons_method_py_keeps(glass_model, tmp_path, monkeypatch):
    dump = tmp_path / "selection"
    llm, glass = two_level_session(glass_model, 0.5, 0.75, monkeypatch, dump)
    prompt = llm.tokenize(CHAT_PROMPT.encode(), special=True)
    llm.eval(prompt)
    glass.finalize()
    answer = []
    for _ in range(6):
        answer.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([answer[-1]])
    assert_decoded_sparse(glass, exactly=6)

    lines = read_token_lines(tmp_path / "selection.tokens")
    selections = glass.selected()
    assert len(lines) == 6 * len(selections), "one line per layer and decoded token"
    for layer, k, m, acts, kept in lines:
        assert k == len(selections[layer]) and len(acts) == k
        assert m == method.neurons_per_token(k, 0.5)
        np.testing.assert_array_equal(kept, method.token_select(acts, m))
    # the tokens choose differently: a per-token choice, not a second fixed mask
    first_layer = [kept for layer, *_, kept in lines if layer == 0]
    assert any(not np.array_equal(first_layer[0], other) for other in first_layer[1:])


@pytest.mark.claims_sparse
def test_two_level_reads_half_the_rows_and_loses_less_than_glass_reading_as_many(glass_model):
    """At density 0.5 (f = 0.5 of a selection at 0.75) a token reads about half the FFN rows; its answer differs
    from single-level GLASS at the selection's density (the per-token choice acts) and is closer to dense than
    single-level GLASS at density 0.5 (docs/two-level.md measures the same on the torch reference)."""
    llm = make_llm(glass_model, logits_all=True)
    glass = GlassSession(llm)
    glass.disable()
    prompt = llm.tokenize(CHAT_PROMPT.encode(), special=True)
    continuation = greedy(llm, prompt, 24)  # the dense answer
    dense = teacher_forced_logits_dense(llm, prompt, continuation)

    kl = {}
    for name, fraction, density in (("glass@0.5", 1.0, 0.5), ("glass@0.75", 1.0, 0.75), ("two-level", 0.5, 0.75)):
        glass.set_token_fraction(fraction)
        glass.enable(density, 0.5, "manual")
        logits = teacher_forced_logits(llm, glass, prompt, continuation)
        assert_decoded_sparse(glass, len(continuation))
        kl[name] = kl_divergence(dense, logits)

    dense_bytes, sparse_bytes = glass.layer_bytes(0)
    assert 0.45 < sparse_bytes / dense_bytes < 0.6, "gate rows at 0.75 and half of them for up and down (Q8_0)"
    assert kl["two-level"] != kl["glass@0.75"]
    assert kl["two-level"] < 0.6 * kl["glass@0.5"], kl


def teacher_forced_logits_dense(llm, prompt, continuation):
    llm.reset()
    llm.eval(prompt + continuation)
    return np.array(llm.scores[len(prompt):len(prompt) + len(continuation)])


@pytest.mark.claims_sparse
def test_prompt_lookup_decoding_gives_the_answer_of_plain_decoding(glass_model, monkeypatch):
    """Drafted tokens are verified in batches; the runtime decodes each token on its own, so a plain Llama with
    GLASS_GGUF_TOKEN_FRACTION gives the same two-level answer with and without a draft model."""
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    monkeypatch.setenv("GLASS_GGUF_TOKEN_FRACTION", "0.5")
    monkeypatch.setenv("GLASS_GGUF_DENSITY", "0.75")
    text = ("Repeat this list exactly: red apple, green pear, yellow banana, red apple, green pear, yellow banana, "
            "red apple, green pear, yellow banana.")
    plain = make_llm(glass_model)
    want = plain.create_completion(text, max_tokens=48, temperature=0.0)["choices"][0]["text"]
    assert GlassSession(plain).token_fraction() == 0.5
    assert_decoded_sparse(GlassSession(plain), exactly=sparse_after_swap(48))

    llm = make_llm(glass_model, draft_model=LlamaPromptLookupDecoding(num_pred_tokens=8))
    assert llm.create_completion(text, max_tokens=48, temperature=0.0)["choices"][0]["text"] == want
    assert_decoded_sparse(GlassSession(llm), min_tokens=sparse_after_swap(48))

    monkeypatch.delenv("GLASS_GGUF_TOKEN_FRACTION")
    single = make_llm(glass_model).create_completion(text, max_tokens=48, temperature=0.0)["choices"][0]["text"]
    assert single != want, "two-level changed the answer (the per-token choice acts)"


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, float("nan")])
def test_a_bad_token_fraction_is_refused_with_the_reason(glass_model, fraction):
    glass = GlassSession(make_llm(glass_model))
    with pytest.raises(GlassError, match=r"token fraction must be in \(0, 1\]"):
        glass.set_token_fraction(fraction)
    assert glass.token_fraction() == 1.0 and glass.state == "collect"


def test_the_environment_turns_two_level_on_and_refuses_a_bad_value(glass_model, monkeypatch):
    monkeypatch.setenv("GLASS_GGUF_TOKEN_FRACTION", "0.25")
    assert GlassSession(make_llm(glass_model)).token_fraction() == 0.25
    monkeypatch.setenv("GLASS_GGUF_TOKEN_FRACTION", "half")
    with pytest.raises(ValueError, match=r"GLASS_GGUF_TOKEN_FRACTION=half is not a number in \(0, 1\]"):
        make_llm(glass_model)
