"""Decode speed of GLASS against dense and against its ceiling, in one process: finely interleaved, per-pair ratios.

Three contexts, kept warm, each continuing its own sequence: the model dense, the model under GLASS, and the ceiling,
a model statically compacted to the shapes and types GLASS compacts to (static_model.py: the first k neurons of
every layer, stock llama.cpp, GLASS off). Every repeat, each context reads the same prompt (timed: the prefill, and
the first decode step, where GLASS selects and compacts) and decodes up to GLASS's swap to the compacted weights
(after 16 dense tokens by default, GLASS_GGUF_SWAP_AFTER=N). Then they decode in rounds of `chunk` tokens,
one context after the other at the same positions; within a round the three are timed back to back, so a round's
ratios see the same machine. The reported ratios are medians over all rounds of all repeats, with their quartiles:
a shared machine's slow seconds hit a few rounds, not the median.
"""
from __future__ import annotations

import hashlib
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .runtime import GlassSession

DEFAULT_PROMPT_TOKENS = 256     # bench and the demo measure with the same lengths
DEFAULT_GEN_TOKENS = 128
DEFAULT_CHUNK = 16              # tokens per context per round

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
    gen_tokens: int                   # tokens each context decodes per repeat
    repeats: int
    chunk_tokens: int                 # tokens per context per round
    rounds: int                       # rounds behind the medians (repeats x rounds per repeat)
    dense_tok_s: float                # medians over the rounds
    glass_tok_s: float
    ceiling_tok_s: float | None       # None for a per-layer density (ceiling_model)
    speedup: float                    # median over rounds of dense time / GLASS time
    speedup_q1: float                 # its quartiles: the spread
    speedup_q3: float
    ceiling_speedup: float | None     # median over rounds of dense time / ceiling time
    share_of_ceiling: float | None    # median over rounds of ceiling time / GLASS time (GLASS tok/s / ceiling tok/s)
    share_of_ceiling_q1: float | None
    share_of_ceiling_q3: float | None
    ideal_speedup: float              # the bytes model: weight bytes a token reads, dense over GLASS (not a bound)
    ceiling_k: int                    # neurons per layer of the ceiling (GLASS's k, padded to the down's blocks)
    ceiling_model: str | None
    glass_dense_layers: list          # layers GLASS keeps dense (the ceiling compacts them too)
    finalize_ms: float
    prefill_dense_ms: float
    prefill_glass_ms: float
    prefill_overhead_pct: float
    finalize_pct_of_prefill: float
    peak_rss_dense_mb: float
    peak_rss_glass_mb: float
    decode_rss_dense_mb: float        # resident memory while decoding dense, the model alone
    decode_rss_glass_mb: float        # ... and while decoding under GLASS after its swap (dense FFN pages released)
    pruned_ffn_mb: float              # FFN weight bytes a GLASS token does not read (dense minus compacted)
    ttft_dense_ms: float              # prefill + first decode step
    ttft_glass_ms: float
    swap_token_ms: float              # the decode step at which GLASS switches to the compacted weights
    dense_tokens_before_swap: int
    file_huge_pages_mb: float = 0.0   # model file mapped as 2 MB pages while decoding under GLASS (FilePmdMapped):
    # where > 0, the dense FFN pages handed back return with their neighbours and decode RSS stays at dense's
    token_fraction: float = 1.0       # two-level decoding (docs/two-level.md): the selection is at
    selection_density: float | None = None  # method.superset_density and density is the share of rows a token reads

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


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb() -> float:
    """The resident memory of this process now (VmRSS), MB: file pages the weights are mapped from count too."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def file_huge_pages_mb() -> float:
    """File pages this process maps as 2 MB huge pages (FilePmdMapped), MB. Kernels with large page-cache folios map
    model files this way; a huge page holds several layers' tensors, so the dense FFN pages GLASS hands back after
    its swap come back with the attention weights beside them and resident memory does not fall (docs/runtime.md)."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("FilePmdMapped:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def last_logits(llm) -> np.ndarray:
    """The logits of the last decoded token, read from the context: llama-cpp-python fills `scores` only with
    logits_all=True (and its array holds n_batch rows otherwise, fewer than a long prompt plus its answer)."""
    import llama_cpp

    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))


class Sequence:
    """One context continuing its own greedy sequence, one token per eval."""

    def __init__(self, llm, glass: GlassSession | None = None):
        self.llm, self.glass = llm, glass

    def prefill(self, tokens: list[int]) -> float:
        """Start again at position 0 with the prompt (GLASS restarts its statistic there); seconds."""
        self.llm.reset()
        t0 = time.perf_counter()
        self.llm.eval(tokens)
        return time.perf_counter() - t0

    def decode(self, n: int) -> list[float]:
        """n greedy tokens; seconds per token."""
        llm, times = self.llm, []
        for _ in range(n):
            t0 = time.perf_counter()
            token = int(np.argmax(last_logits(llm)))
            llm.eval([token])
            times.append(time.perf_counter() - t0)
        return times

    def decode_until_sparse(self, limit: int) -> list[float]:
        """Decode until GLASS runs on its compacted weights (at most limit tokens); seconds per token."""
        times = []
        while self.glass.state != "sparse" or not times:
            if len(times) == limit:
                swap = os.environ.get("GLASS_GGUF_SWAP_AFTER", "16")
                raise RuntimeError(f"GLASS decodes dense until it swaps to its compacted weights (after {swap} "
                                   f"generated tokens, GLASS_GGUF_SWAP_AFTER, or the warm-up) and {limit + 1} tokens "
                                   "end before that: give --gen-tokens well past the swap (the default 128 is)")
            times += self.decode(1)
        return times


def static_model_path(model_path: Path, k: int, down_types) -> Path:
    """Where the ceiling for (model, k, down types) is cached: beside the other models, never next to the input."""
    from .assets import cache_dir

    st = model_path.stat()
    key = f"{model_path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{k}:{[int(t) for t in down_types]}:v2"
    stem = model_path.name.removesuffix(".gguf")
    return cache_dir() / "static" / f"{stem}.static-k{k}.{hashlib.sha256(key.encode()).hexdigest()[:12]}.gguf"


def ceiling_model(model_path: Path, glass: GlassSession) -> tuple[Path | None, int, list[int]]:
    """(static model at GLASS's k and down types, its n_ff, layers GLASS keeps dense), written once and cached. A per-layer
    density (glass.layer_scale) has no ceiling: llama.cpp builds llama, qwen2, gemma3 ... with one FFN width, so
    the path is None and k the largest per-layer k."""
    from .static_model import down_types_from_runtime, static_width, write_static

    selected = glass.selected()
    ks = {len(s) for s in selected if s is not None}
    if not ks:
        raise RuntimeError("GLASS compacted no layer of this model: there is no sparse decoding to time")
    if len(ks) > 1:
        return None, max(ks), [il for il, s in enumerate(selected) if s is None]
    k = ks.pop()
    down_types = down_types_from_runtime(model_path, glass, k)
    path = static_model_path(model_path, k, down_types)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_static(model_path, path, k, down_types)
    return path, static_width(k, down_types), [il for il, s in enumerate(selected) if s is None]


def _median_iqr(values) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(med), float(q1), float(q3)


def run_bench(model_path: Path, density: float | None, lam: float | None, threads: int,
              n_prompt: int = DEFAULT_PROMPT_TOKENS, n_gen: int = DEFAULT_GEN_TOKENS, repeats: int = 5,
              progress=None, prior: str | Path | None = None, chunk: int = DEFAULT_CHUNK,
              token_fraction: float = 1.0) -> BenchResult:
    """density/lam None: what the runtime itself would use for this model (and sidecar prior, if given).
    token_fraction < 1: two-level decoding reading `density` of the FFN rows per token (no ceiling model: the
    single-level bench at the same density is the comparison)."""
    from . import method
    from .glass_llama import load

    model_path = Path(model_path)
    kwargs = dict(n_ctx=n_prompt + n_gen + 8, n_batch=max(512, n_prompt), n_threads=threads,
                  n_threads_batch=threads)
    llm, glass = load(model_path, density=density, lam=lam, prior=prior, **kwargs)
    if glass.state == "off":
        raise RuntimeError("GLASS is off for this model (GLASS_GGUF=off?): nothing to compare with dense")
    density, lam = glass.params["density"], glass.params["lambda"]
    selection = density
    if token_fraction < 1.0:
        selection = method.superset_density(density, token_fraction)
        if selection > 1.0:
            raise RuntimeError(f"two-level at density {density:g} with token fraction {token_fraction:g} needs a "
                               f"selection at density {selection:.3f} > 1: raise the token fraction")
        glass.set_token_fraction(token_fraction)
        glass.enable(selection, lam, "auto")
    dense_bytes, glass_bytes = weight_bytes_per_token(model_path, glass)
    tokens = prompt_tokens(llm, n_prompt)

    # peak memory of this model alone, dense, then with GLASS's compacted copies: before the other contexts exist
    glass.disable()
    warm = Sequence(llm)
    warm.prefill(tokens)
    warm.decode(min(chunk, n_gen))
    rss_dense, rss_decode_dense = peak_rss_mb(), current_rss_mb()
    glass.enable(selection, lam, "auto")
    sparse = Sequence(llm, glass)
    sparse.prefill(tokens)
    n_head = len(sparse.decode_until_sparse(n_gen - 1))   # tokens up to and including the swap
    rss_glass, rss_decode_glass = peak_rss_mb(), current_rss_mb()
    huge_pages = file_huge_pages_mb()
    pruned = sum(d - c for d, c in (glass.layer_bytes(il) for il in range(glass.n_layer))) / 2**20
    static_path, k, glass_dense = ceiling_model(model_path, glass) if token_fraction == 1.0 else (None, 0, [])

    dense = Sequence(load(model_path, prior=prior, dense=True, **kwargs)[0])
    seqs = {"dense": dense, "glass": sparse}
    if static_path is not None:
        seqs["ceiling"] = Sequence(load(static_path, dense=True, **kwargs)[0])
    for seq in (s for name, s in seqs.items() if name != "glass"):  # warm-up: page in the weights, build the graphs
        seq.prefill(tokens)
        seq.decode(min(chunk, n_gen))

    prefill = {"dense": [], "glass": []}
    ttft = {"dense": [], "glass": []}
    finalize, swap_token = [], []
    rounds = {name: [] for name in seqs}
    names = list(seqs)
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            seq = seqs[name]
            pre = seq.prefill(tokens)
            if name == "glass" and glass.state != "collect":
                raise RuntimeError(f"GLASS is {glass.state!r} after a new prompt, not collecting it")
            head = seq.decode_until_sparse(n_gen) if name == "glass" else seq.decode(n_head)
            if len(head) != n_head:
                raise RuntimeError(f"GLASS swapped after {len(head)} tokens in one repeat and {n_head} in another")
            if name in prefill:
                prefill[name].append(pre)
                ttft[name].append(pre + head[0])
            if name == "glass":
                finalize.append(glass.timings()["finalize_ms"])
                swap_token.append(head[-1])
        done = n_head
        while done < n_gen:
            n = min(chunk, n_gen - done)
            for name in (order if len(rounds["dense"]) % 2 == 0 else order[::-1]):
                rounds[name].append((n, sum(seqs[name].decode(n))))
            done += n
        if progress:
            progress(r + 1)

    seconds = {name: np.array([t for _, t in rs]) for name, rs in rounds.items()}
    rate = {name: float(np.median([n / t for n, t in rs])) for name, rs in rounds.items()}
    speedup = _median_iqr(seconds["dense"] / seconds["glass"])
    no_ceiling = (None, None, None)
    share = _median_iqr(seconds["ceiling"] / seconds["glass"]) if "ceiling" in seconds else no_ceiling
    pre_dense, pre_glass = (statistics.median(prefill[n]) * 1000 for n in ("dense", "glass"))
    fin = statistics.median(finalize)
    return BenchResult(
        model=str(model_path), density=density, lam=lam, threads=threads, prompt_tokens=len(tokens),
        gen_tokens=n_gen, repeats=repeats, chunk_tokens=chunk, rounds=len(rounds["dense"]),
        dense_tok_s=rate["dense"], glass_tok_s=rate["glass"], ceiling_tok_s=rate.get("ceiling"),
        speedup=speedup[0], speedup_q1=speedup[1], speedup_q3=speedup[2],
        ceiling_speedup=float(np.median(seconds["dense"] / seconds["ceiling"])) if "ceiling" in seconds else None,
        share_of_ceiling=share[0], share_of_ceiling_q1=share[1], share_of_ceiling_q3=share[2],
        ideal_speedup=dense_bytes / glass_bytes, ceiling_k=k,
        ceiling_model=str(static_path) if static_path else None,
        glass_dense_layers=glass_dense, finalize_ms=fin,
        prefill_dense_ms=pre_dense, prefill_glass_ms=pre_glass,
        prefill_overhead_pct=100.0 * (pre_glass - pre_dense) / pre_dense,
        finalize_pct_of_prefill=100.0 * fin / pre_dense,
        peak_rss_dense_mb=rss_dense, peak_rss_glass_mb=rss_glass,
        decode_rss_dense_mb=rss_decode_dense, decode_rss_glass_mb=rss_decode_glass, pruned_ffn_mb=pruned,
        ttft_dense_ms=statistics.median(ttft["dense"]) * 1000, ttft_glass_ms=statistics.median(ttft["glass"]) * 1000,
        swap_token_ms=statistics.median(swap_token) * 1000, dense_tokens_before_swap=n_head - 1,
        token_fraction=token_fraction, selection_density=selection, file_huge_pages_mb=huge_pages,
    )
