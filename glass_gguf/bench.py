"""Decode speed of GLASS against dense in one process: alternating runs, medians, a ratio.

Absolute times on shared 2-core machines mean little; the ratio of medians measured side by side does. Each repeat
runs dense and GLASS on the same prompt (in alternating order) and times the prefill (dense, or dense plus the
collection op), every decode step, and the finalize (selection and compaction: at the first generated token, or in
the background while the first GLASS_GGUF_SWAP_AFTER tokens decode dense). Decode speed is taken over the positions
after GLASS's swap to the compacted weights, in both runs.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .runtime import GlassSession

# Plain prose to build prompts of any length from (tokenized and repeated as needed).
FILLER = (
    "The history of the printing press begins in the fifteenth century, when movable type changed how books were "
    "made and read. Before it, every copy of a text was written by hand, slowly and with many errors. Afterwards, "
    "ideas travelled faster than ever, and libraries, schools and newspapers grew across the continent. "
)


@dataclass
class BenchResult:
    model: str
    density: float
    lam: float
    threads: int
    prompt_tokens: int
    gen_tokens: int
    repeats: int
    dense_tok_s: float
    glass_tok_s: float
    speedup: float
    ideal_speedup: float
    finalize_ms: float
    prefill_dense_ms: float
    prefill_glass_ms: float
    prefill_overhead_pct: float
    finalize_pct_of_prefill: float
    peak_rss_dense_mb: float
    peak_rss_glass_mb: float
    ttft_dense_ms: float              # prefill + first decode step
    ttft_glass_ms: float
    swap_token_ms: float              # the decode step at which GLASS switches to the compacted weights
    dense_tokens_before_swap: int

    def to_dict(self) -> dict:
        return asdict(self)


def weight_bytes_per_token(model_path: Path, glass: GlassSession) -> tuple[int, int]:
    """Bytes of weights a decoded token reads: (dense, GLASS). A bytes model of the speed-up, not a bound.

    The token embedding is a row lookup, not read whole, unless it doubles as the output matrix (no output.weight).
    The FFN bytes of each layer, dense and compacted at the enabled density, come from the runtime itself.
    """
    import gguf

    reader = gguf.GGUFReader(str(model_path))
    tensors = {t.name: t for t in reader.tensors}
    tied = "output.weight" not in tensors
    dense = sum(int(t.n_bytes) for name, t in tensors.items()
                if not (name == "token_embd.weight" and not tied) and "ffn_glass" not in name)
    saved = sum(d - s for d, s in (glass.layer_bytes(il) for il in range(glass.n_layer)))
    return dense, dense - saved


def prompt_tokens(llm, n: int) -> list[int]:
    ids = llm.tokenize(FILLER.encode(), add_bos=False)
    bos = [llm.token_bos()] if llm.token_bos() >= 0 else []
    body = (ids * (n // max(1, len(ids)) + 1))[: n - len(bos)]
    return bos + body


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _decode(llm, n: int, glass: GlassSession | None = None) -> tuple[list[float], int]:
    """Greedy-decode n tokens after the prompt already evaluated: (seconds per token, index of the first token
    decoded sparse, or 0 for a dense run). GLASS decodes its first tokens densely while it compacts the weights in
    the background with GLASS_GGUF_SWAP_AFTER=N (by default it compacts at the first generated token, index 0)."""
    times, first_sparse = [], None
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    for i in range(n):
        t0 = time.perf_counter()
        llm.eval([token])
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        times.append(time.perf_counter() - t0)
        if glass is not None and first_sparse is None and glass.state == "sparse":
            first_sparse = i
    return times, first_sparse or 0


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_bench(model_path: Path, density: float | None, lam: float | None, threads: int, n_prompt: int, n_gen: int,
              repeats: int, progress=None, prior: str | Path | None = None) -> BenchResult:
    """density/lam None: what the runtime itself would use for this model (and sidecar prior, if given)."""
    from .glass_llama import load

    llm, glass = load(model_path, density=density, lam=lam, prior=prior, n_ctx=n_prompt + n_gen + 8,
                      n_batch=max(512, n_prompt), n_threads=threads, n_threads_batch=threads)
    if glass.state == "off":
        raise RuntimeError("GLASS is off for this model (GLASS_GGUF=off?): nothing to compare with dense")
    density, lam = glass.params["density"], glass.params["lambda"]
    dense_bytes, glass_bytes = weight_bytes_per_token(model_path, glass)
    glass.disable()  # the dense runs must be dense
    tokens = prompt_tokens(llm, n_prompt)

    dense_times, glass_times, dense_prefill, glass_prefill, finalize, swaps = [], [], [], [], [], []

    def dense_run():
        glass.disable()
        llm.reset()
        dense_prefill.append(_timed(lambda: llm.eval(tokens)))
        dense_times.append(_decode(llm, n_gen)[0])

    def glass_run():
        glass.enable(density, lam, "auto")
        llm.reset()
        glass_prefill.append(_timed(lambda: llm.eval(tokens)))
        times, first_sparse = _decode(llm, n_gen, glass)
        if glass.state != "sparse" or first_sparse >= n_gen - 2:
            raise RuntimeError(f"GLASS decoded only {n_gen - first_sparse} of {n_gen} tokens sparse: raise --gen-tokens")
        glass_times.append(times)
        swaps.append(first_sparse)
        finalize.append(glass.timings()["finalize_ms"])

    dense_run()  # warm-up: page in the weights, build the graphs
    rss_dense = peak_rss_mb()  # before GLASS ever compacted anything
    glass_run()
    for timings in (dense_times, glass_times, dense_prefill, glass_prefill, finalize, swaps):
        timings.clear()
    for r in range(repeats):
        first, second = (dense_run, glass_run) if r % 2 == 0 else (glass_run, dense_run)
        first()
        second()
        if progress:
            progress(r + 1)

    # steady-state decode: the tokens after GLASS's swap to the compacted weights, the same positions in both runs
    start = max(swaps) + 1
    dense_tok_s = (n_gen - start) / statistics.median(sum(t[start:]) for t in dense_times)
    glass_tok_s = (n_gen - start) / statistics.median(sum(t[start:]) for t in glass_times)
    # time to the first token: the prefill, and the first decode step after it (where a synchronous finalize stalls)
    ttft_dense = statistics.median(p + t[0] for p, t in zip(dense_prefill, dense_times)) * 1000
    ttft_glass = statistics.median(p + t[0] for p, t in zip(glass_prefill, glass_times)) * 1000
    swap_token = statistics.median(t[s] for s, t in zip(swaps, glass_times)) * 1000
    pre_dense = statistics.median(dense_prefill) * 1000
    pre_glass = statistics.median(glass_prefill) * 1000
    fin = statistics.median(finalize)
    return BenchResult(
        model=str(model_path), density=density, lam=lam, threads=threads, prompt_tokens=len(tokens),
        gen_tokens=n_gen, repeats=repeats, dense_tok_s=dense_tok_s, glass_tok_s=glass_tok_s,
        speedup=glass_tok_s / dense_tok_s, ideal_speedup=dense_bytes / glass_bytes, finalize_ms=fin,
        prefill_dense_ms=pre_dense, prefill_glass_ms=pre_glass,
        prefill_overhead_pct=100.0 * (pre_glass - pre_dense) / pre_dense,
        finalize_pct_of_prefill=100.0 * fin / pre_dense,
        peak_rss_dense_mb=rss_dense, peak_rss_glass_mb=peak_rss_mb(),
        ttft_dense_ms=ttft_dense, ttft_glass_ms=ttft_glass, swap_token_ms=swap_token, dense_tokens_before_swap=start - 1,
    )
