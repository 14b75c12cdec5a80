"""Two contexts on one model, one dense and one under GLASS (issue 23): the GLASS context hands the dense FFN pages of
the mapped file back to the kernel at its swap, and the dense context sharing the model must neither change its
answer nor re-read weights on every token afterwards (it faults them back in once).

The re-reading is counted in page faults, not timed: a timing on a shared 2-core machine measures the neighbours."""
import resource
import statistics
import time

import gguf
import numpy as np
import pytest

import llama_cpp
from llama_cpp import llama_cpp as lib

from glass_gguf.glass_file import embed_prior
from glass_gguf.runtime import GlassSession
from glass_checks import assert_decoded_sparse, sparse_after_swap
from test_runtime import seeded_prior

pytestmark = pytest.mark.slow

PROMPT = "The history of the printing press begins"


class DenseContext:
    """A second llama_context on an already loaded llama_cpp.Llama's model, GLASS off, greedy decoding by hand."""

    def __init__(self, llm):
        params = lib.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_threads, params.n_threads_batch = 256, 64, 2, 2
        self.ctx = lib.llama_init_from_model(llm.model, params)
        assert self.ctx
        self.n_vocab = llm.n_vocab()
        self.model = llm.model
        self.n_past = 0
        GlassSession(self).disable()  # the GLASS GGUF auto-enables GLASS on every context

    def reset(self):  # what GlassSession expects of a client
        pass

    def decode(self, tokens) -> int:
        arr = (lib.llama_token * len(tokens))(*tokens)
        assert lib.llama_decode(self.ctx, lib.llama_batch_get_one(arr, len(tokens))) == 0
        self.n_past += len(tokens)
        logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
        return int(np.argmax(logits))

    def greedy(self, first: int, n: int) -> tuple[list[int], list[float], list[int]]:
        """n tokens, with each token's time and page faults (the weights it had to bring back into the mapping)"""
        tokens, times, faults, tok = [], [], [], first
        for _ in range(n):
            t, f = time.perf_counter(), page_faults()
            tok = self.decode([tok])
            times.append(time.perf_counter() - t)
            faults.append(page_faults() - f)
            tokens.append(tok)
        return tokens, times, faults

    def free(self):
        lib.llama_free(self.ctx)


def page_faults() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt + usage.ru_majflt


@pytest.fixture(scope="module")
def glass_model(smollm2_path, tmp_path_factory):
    return embed_prior(smollm2_path, seeded_prior(smollm2_path), tmp_path_factory.mktemp("two") / "glass.gguf",
                       density=0.5, lam=0.5)


def rss_file_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.claims_sparse
def test_a_dense_context_beside_a_glass_context_on_one_model(glass_model):
    llm = llama_cpp.Llama(model_path=str(glass_model), n_ctx=256, n_threads=2, n_threads_batch=2, verbose=False)
    glass = GlassSession(llm)
    dense = DenseContext(llm)
    prompt = llm.tokenize(PROMPT.encode(), special=True)

    # the dense context's answer, in two halves: before and after the GLASS context's swap releases the pages
    first = dense.decode(prompt)
    before, t_before, f_before = dense.greedy(first, 24)
    rss_before = rss_file_mb()
    out = llm.create_chat_completion([{"role": "user", "content": "Write a long story about a dragon who learns to "
                                                                  "bake bread."}], max_tokens=48, temperature=0.0)
    assert out["usage"]["completion_tokens"] == 48
    assert_decoded_sparse(glass, exactly=sparse_after_swap(48))
    rss_released = rss_file_mb()
    after, t_after, f_after = dense.greedy(before[-1], 24)
    dense.free()

    # the same answer as a model of its own, without a GLASS context beside it
    alone = llama_cpp.Llama(model_path=str(glass_model), n_ctx=256, n_threads=2, n_threads_batch=2, verbose=False)
    ref = DenseContext(alone)
    ref_first = ref.decode(prompt)
    ref_tokens, _, _ = ref.greedy(ref_first, 48)
    ref.free()
    assert [first] + before + after == [ref_first] + ref_tokens

    # (the release itself is asserted by test_runtime's bench test through decode RSS: the process-wide RssFile
    # read here also counts other models' mappings when the whole suite runs in one process)
    # the dense context pays for the release once: its first token after the swap faults the FFN pages back in, the
    # rest touch no more pages than the tokens before the swap did (a re-read on every token would fault on each)
    print(f"dense context: {1000 * statistics.median(t_before):.1f} ms/token before, first after "
          f"{1000 * t_after[0]:.1f} ms, then {1000 * statistics.median(t_after[1:]):.1f} ms; page faults per token "
          f"{statistics.median(f_before)} before, {f_after[0]} first after, then {f_after[1:]}; file pages resident "
          f"{rss_before:.0f} -> {rss_released:.0f} MB")
    # (how many faults bring the pages back depends on the page cache's folio sizes: 16 pages per fault, or 2 MB)
    ffn_pages = sum(t.n_bytes for t in gguf.GGUFReader(glass_model).tensors if ".ffn_" in t.name) // 4096
    assert f_after[0] > 0, "the swap released no page of the dense FFN weights"
    assert sum(f_after[1:]) <= sum(f_before[1:]) + ffn_pages // 100
