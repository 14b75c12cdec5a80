"""How long a user waits for a whole answer, dense and under GLASS settings that decode part of it dense.

bench.py times the steady state after the swap to the compacted weights. A warm-up or refresh (docs/refresh.md)
costs what it decodes dense and what it compacts again, and a split of the density across layers may cost
something too: those costs show only over a whole answer. Here every setting gets its own context on the same
model; every repeat, each context reads the same prompt and decodes the whole answer greedily, one token per eval,
the contexts in rotating order. Reported: the median answer time per context over the repeats, as tokens per second
of the answer (prefill excluded: GLASS does not change it, bench measures it) and as a ratio to dense.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from .bench import DEFAULT_PROMPT_TOKENS, Sequence, prompt_tokens


@dataclass(frozen=True)
class AnswerSetting:
    """A GLASS setting as the runtime takes it: the generation schedule and per-layer density factors."""

    warmup: int = 0
    refresh: int = 0
    layer_scale: list[float] | None = None


def answer_speed(model_path: str | Path, density: float, lam: float, settings: dict[str, AnswerSetting],
                 threads: int, n_prompt: int = DEFAULT_PROMPT_TOKENS, n_gen: int = 256, repeats: int = 3,
                 progress=None) -> dict:
    """{"dense": {...}, name: {...} for each setting}: answer_tok_s (n_gen / median answer seconds), speedup over
    dense (the ratio of the medians), and the share of the answer the schedule collects (decoded dense); plus what
    was measured. The runtime's background compaction decodes the first 16 tokens dense too, without collecting."""
    from .glass_llama import load
    from .method import collected_positions

    kwargs = dict(n_ctx=n_prompt + n_gen + 8, n_batch=max(512, n_prompt), n_threads=threads,
                  n_threads_batch=threads)
    llm, _ = load(model_path, dense=True, **kwargs)
    contexts = {"dense": Sequence(llm)}
    tokens = prompt_tokens(llm, n_prompt)
    for name, s in settings.items():
        llm, glass = load(model_path, density=density, lam=lam, **kwargs)
        glass.set_schedule(s.warmup, s.refresh)
        glass.set_layer_scale(s.layer_scale)
        contexts[name] = Sequence(llm, glass)
    for seq in contexts.values():          # warm: page in the weights, build the graphs, compact once
        seq.prefill(tokens)
        seq.decode(min(n_gen, 32))

    seconds: dict[str, list[float]] = {name: [] for name in contexts}
    names = list(contexts)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            contexts[name].prefill(tokens)
            seconds[name].append(sum(contexts[name].decode(n_gen)))
        if progress:
            progress(r + 1)

    dense = statistics.median(seconds["dense"])
    out = {"model": str(model_path), "density": density, "lambda": lam, "threads": threads,
           "prompt_tokens": len(tokens), "gen_tokens": n_gen, "repeats": repeats}
    for name, times in seconds.items():
        s = settings.get(name, AnswerSetting())
        out[name] = {"answer_tok_s": n_gen / statistics.median(times), "speedup": dense / statistics.median(times),
                     "warmup": s.warmup, "refresh": s.refresh, "layer_split": s.layer_scale is not None,
                     "collected_share": 0.0 if name == "dense" else
                     float(collected_positions(n_gen, s.warmup, s.refresh).mean())}
    return out
