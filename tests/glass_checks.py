"""What a test that claims GLASS decoded sparse asserts (STYLE.md: "a test that claims GLASS changed something proves
it"): the count of tokens decoded with the compacted weights, read from the runtime, never the state alone.

- in process: `assert_decoded_sparse(glass, n)` on a GlassSession (llama_glass_get_sparse_tokens);
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
