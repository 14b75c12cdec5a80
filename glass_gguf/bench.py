"""Decode speed of GLASS against dense in one process: alternating runs, medians, a ratio.

Absolute times on shared 2-core machines mean little; the ratio of medians measured side by side does. Each repeat
runs dense and GLASS on the same prompt (in alternating order) and times three things: the prefill (dense, or
dense plus the collection op), the finalize (selection and compaction) and the decode of the generated tokens.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import method
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

    def to_dict(self) -> dict:
        return asdict(self)


def weight_bytes_per_token(model_path: Path, density: float) -> tuple[int, int]:
    """Bytes of weights a decoded token reads: (dense, GLASS). The memory-bound limit of the speed-up.

    The token embedding is a row lookup, not read whole, unless it doubles as the output matrix (no output.weight).
    A compacted layer reads k of n_ff gate and up rows, and a down projection of k columns; K-quant down
    projections become Q8_0 when compacted (as the runtime does).
    """
    import gguf

    reader = gguf.GGUFReader(str(model_path))
    tensors = {t.name: t for t in reader.tensors}
    tied = "output.weight" not in tensors
    dense = 0
    for name, t in tensors.items():
        if name == "token_embd.weight" and not tied:
            continue
        if name.endswith("ffn_glass_prior"):
            continue
        dense += int(t.n_bytes)
    saved = 0
    for name, t in tensors.items():
        if not (name.startswith("blk.") and name.endswith((".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight"))):
            continue
        layer = name.split(".")[1]
        if f"blk.{layer}.ffn_gate.weight" not in tensors:  # fused or ungated FFN: runs dense
            continue
        n_ff = int(t.shape[1] if not name.endswith("ffn_down.weight") else t.shape[0])
        k = method.neurons_to_keep(n_ff, density)
        if name.endswith("ffn_down.weight"):
            kept_type = t.tensor_type
            if kept_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16,
                                 gguf.GGMLQuantizationType.BF16, gguf.GGMLQuantizationType.Q4_0,
                                 gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q5_0,
                                 gguf.GGMLQuantizationType.Q5_1, gguf.GGMLQuantizationType.Q8_0):
                kept_type = gguf.GGMLQuantizationType.Q8_0
            block, type_size = gguf.GGML_QUANT_SIZES[kept_type]
            n_rows = int(t.shape[1])
            kept = n_rows * (k // block) * type_size
        else:
            kept = int(t.n_bytes) * k // n_ff
        saved += int(t.n_bytes) - kept
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


def _decode(llm, n: int) -> float:
    """Greedy-decode n tokens after the prompt already evaluated; seconds for tokens 2..n.

    The first decoded token is excluded on both sides: under GLASS it triggers the finalize, timed on its own.
    """
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    llm.eval([token])
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    t0 = time.perf_counter()
    for _ in range(n - 1):
        llm.eval([token])
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    return time.perf_counter() - t0


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
    glass.disable()  # the dense runs must be dense
    tokens = prompt_tokens(llm, n_prompt)

    dense_decode, glass_decode, dense_prefill, glass_prefill, finalize = [], [], [], [], []

    def dense_run():
        glass.disable()
        llm.reset()
        dense_prefill.append(_timed(lambda: llm.eval(tokens)))
        dense_decode.append(_decode(llm, n_gen))

    def glass_run():
        glass.enable(density, lam, "auto")
        llm.reset()
        glass_prefill.append(_timed(lambda: llm.eval(tokens)))
        glass_decode.append(_decode(llm, n_gen))
        assert glass.state == "sparse", "GLASS did not finalize on the first decoded token"
        finalize.append(glass.timings()["finalize_ms"])

    dense_run()  # warm-up: page in the weights, build the graphs
    rss_dense = peak_rss_mb()  # before GLASS ever compacted anything
    glass_run()
    for timings in (dense_decode, glass_decode, dense_prefill, glass_prefill, finalize):
        timings.clear()
    for r in range(repeats):
        first, second = (dense_run, glass_run) if r % 2 == 0 else (glass_run, dense_run)
        first()
        second()
        if progress:
            progress(r + 1)

    dense_tok_s = (n_gen - 1) / statistics.median(dense_decode)
    glass_tok_s = (n_gen - 1) / statistics.median(glass_decode)
    dense_bytes, glass_bytes = weight_bytes_per_token(model_path, density)
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
    )
