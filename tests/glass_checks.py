"""What a test that claims GLASS decoded sparse asserts (STYLE.md: "a test that claims GLASS changed something proves
it"): the count of tokens decoded with the compacted weights, read from the runtime, never the state alone.

- in process: `assert_decoded_sparse(glass, n)` on a GlassSession (llama_glass_get_info's n_sparse_tokens);
- a subprocess (llama.cpp's binaries, a server): `sparse_count(log)`, the count libllama logs when a GLASS context is
  freed (`glass: N tokens decoded sparse`, INFO level: llama-completion/llama-server `-lv 4`, llama-bench `-v`,
  llama_cpp.Llama `verbose=True`).

Every test that makes such a claim is marked `claims_sparse`; tests/test_mutation.py runs them with
GLASS_GGUF_MUTATE_DENSE=1 (the runtime keeps the dense weights in the graph, everything else as usual) and requires
each of them to fail.
"""
from __future__ import annotations

import re

SWAP_AFTER = 16  # the default background compaction: generated tokens 0-15 of an answer decode dense
MUTATE_DENSE = "GLASS_GGUF_MUTATE_DENSE"
_SPARSE_COUNT = re.compile(r"glass: (\d+) tokens decoded sparse")


def assert_decoded_sparse(glass, min_tokens: int = 1, exactly: int | None = None) -> int:
    """The session is SPARSE and decoded at least min_tokens (or exactly `exactly`) tokens with the compacted weights
    since its statistic was last cleared (each new answer in auto mode). Returns the count."""
    n = glass.sparse_tokens
    assert glass.state == "sparse", f"GLASS is {glass.state}, not sparse ({n} tokens decoded sparse)"
    if exactly is not None:
        assert n == exactly, f"{n} tokens decoded sparse, expected {exactly}"
    assert n >= min_tokens, f"{n} tokens decoded sparse, expected at least {min_tokens}"
    return n


def sparse_counts(log: str) -> list[int]:
    """Every `glass: N tokens decoded sparse` count in a log, in order (one per freed GLASS context)."""
    return [int(n) for n in _SPARSE_COUNT.findall(log)]


def sparse_count(log: str) -> int:
    """The count of the last GLASS context freed in this log; fails when the log has none."""
    counts = sparse_counts(log)
    assert counts, "the log has no `glass: N tokens decoded sparse` line (was the GLASS context freed, at INFO level?)"
    return counts[-1]


def sparse_after_swap(n_generated: int, swap_after: int = SWAP_AFTER) -> int:
    """How many of n_generated tokens an auto-mode answer decodes sparse when the client evaluates all but the last
    one (llama-cpp-python and llama.cpp's tools sample the last token without decoding it)."""
    return max(0, n_generated - 1 - swap_after)


def assert_server_answers_like_this_process(model, messages, log_path, load, expected_log_lines, max_tokens=48):
    """`python -m llama_cpp.server` on `model` answers `messages` exactly as GLASS does in this process (loaded with
    `load(model)`), which decodes every token past the swap sparse and gives another answer than dense. The server's
    log has every line of expected_log_lines."""
    from glass_gguf.runtime import GlassSession
    from glass_gguf.server import chat, llama_cpp_server

    with llama_cpp_server(model, log_path=log_path, n_ctx=512) as server:
        served = chat(server.url, messages, max_tokens=max_tokens)
    log = log_path.read_text()
    for line in expected_log_lines:
        assert line in log, f"the server's log lacks {line!r}"

    def answer(llm):
        out = llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=0.0, seed=0)
        assert out["usage"]["completion_tokens"] == max_tokens, "the answer runs past the swap"
        return out["choices"][0]["message"]["content"]

    llm = load(model)
    in_process = answer(llm)
    assert_decoded_sparse(GlassSession(llm), exactly=sparse_after_swap(max_tokens))
    dense = load(model)
    GlassSession(dense).disable()
    assert answer(dense) != in_process, "the sparse tokens changed the answer"
    assert served == in_process


def zero_pruned_neurons(src, dst, selected):
    """An independent pruned model: a copy of the GGUF whose ffn_up rows of unselected neurons are all zero bytes.

    A zero block decodes to 0 in every type (its scales are 0), so h[j] = act(gate) * 0 = 0 and the dense model
    computes exactly the pruned FFN, without any of the runtime's compaction code. selected: per layer, the kept
    neurons (None or absent: the layer keeps all).
    """
    import gguf
    import numpy as np

    dst.write_bytes(src.read_bytes())
    reader = gguf.GGUFReader(str(dst), "r+")
    for t in reader.tensors:
        if t.name.startswith("blk.") and t.name.endswith(".ffn_up.weight"):
            keep = selected[int(t.name.split(".")[1])]
            if keep is None:
                continue
            rows = t.data.reshape(int(t.shape[1]), -1)
            mask = np.ones(rows.shape[0], dtype=bool)
            mask[list(keep)] = False
            rows[mask] = 0
    reader.data.flush()
