"""The main job end to end on the bundled SmolLM2-135M: GGUF -> prior -> GLASS GGUF -> faster decoding.

Every artifact lands in one folder and is reused by the next run (the measurements are taken again):

    prior-activation.gguf        the global prior from self-generated calibration text (glass-gguf prior MODEL.gguf)
    <model>.glass.gguf           the model with the prior embedded (glass-gguf convert)
    demo.json, demo.png          the numbers and the plot of speed and quality against density
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import assets
from .atomic import write_text
from .settings import DEFAULT_LAMBDA_WITH_PRIOR, physical_cores

DEMO_PROMPT = "Explain to a curious ten-year-old why the sky is blue and why sunsets are red."
# a GLASS answer is as coherent as the dense one when its share of repeated 8-grams is at most this much higher
COHERENCE_MARGIN = 0.05


@dataclass
class DemoSettings:
    out_dir: Path
    density: float | None = None      # the side-by-side density; None: the lowest coherent one (choose_density)
    lam: float = DEFAULT_LAMBDA_WITH_PRIOR
    densities: tuple[float, ...] = (0.5, 0.6, 0.75, 0.9)
    prior_tokens: int = 4096          # self-generated calibration; a few minutes on 2 cores
    calibration_seq_len: int = 64
    gen_tokens: int = 128
    repeats: int = 3
    threads: int = field(default_factory=physical_cores)
    progress: bool = True
    warmup: int = 16                  # generated tokens decoded dense and collected first (docs/refresh.md)
    model: str = "smollm2-135m"       # a packaged model (assets.MODELS)


def log(msg: str, settings: DemoSettings) -> None:
    if settings.progress:
        print(f"[demo] {msg}", file=sys.stderr, flush=True)  # stdout stays clean for --json


def build_artifacts(s: DemoSettings) -> Path:
    """prior (computed by the patched llama.cpp on the GGUF itself: no torch, no float32 export; as good as the HF
    path, docs/priors.md) and convert, each skipped when its output already exists."""
    from .glass_file import embed_prior
    from .gguf_prior import compute_gguf_prior
    from .prior_file import read_prior, write_prior

    s.out_dir.mkdir(parents=True, exist_ok=True)
    model = assets.model_path(assets.MODELS[s.model])
    prior_path = s.out_dir / "prior-activation.gguf"
    if not prior_path.exists():
        log(f"computing the activation prior from {s.prior_tokens} self-generated tokens (llama.cpp)", s)
        seq_len = min(s.calibration_seq_len, s.prior_tokens)
        prior = compute_gguf_prior(model, "activation", tokens=s.prior_tokens, seq_len=seq_len,
                                   threads=s.threads, progress=s.progress)
        write_prior(prior_path, prior)
    glass_path = s.out_dir / model.name.replace(".gguf", ".glass.gguf")
    if glass_path.exists() and (read_prior(glass_path).warmup or 0) != s.warmup:
        glass_path.unlink()       # built with another warm-up: embed again (seconds)
    if not glass_path.exists():
        log(f"embedding the prior: {glass_path.name}", s)
        embed_prior(model, read_prior(prior_path), glass_path, density=s.density or max(s.densities), lam=s.lam,
                    warmup=s.warmup)
    return glass_path


def glass_answer(backend, prompt_ids: list[int], density: float, s: DemoSettings) -> list[int]:
    """The greedy GLASS answer at `density`, decoded by the runtime in auto mode (warm-up from the GGUF)."""
    glass = backend.glass
    backend.llm.reset()
    glass.enable(density, s.lam, "auto")
    ids = []
    for tok in backend.llm.generate(prompt_ids, temp=0.0, top_k=1, reset=True):
        ids.append(int(tok))
        if tok == backend.llm.token_eos() or len(ids) >= s.gen_tokens:
            break
    glass.disable()
    return ids


def choose_density(answers: dict[float, list[int]], dense_ids: list[int]) -> tuple[float, bool]:
    """(the lowest density whose answer repeats itself no more than the dense answer, plus COHERENCE_MARGIN; True)
    -- lower density is faster -- or (the highest density, False) when none is coherent."""
    limit = repeated_share(dense_ids) + COHERENCE_MARGIN
    coherent = [d for d, ids in answers.items() if repeated_share(ids) <= limit]
    return (min(coherent), True) if coherent else (max(answers), False)


def side_by_side(backend, dense_ids: list[int], glass_ids: list[int], measured: dict) -> dict:
    """Both answers, how much each repeats itself, and the speed and KL measured at the GLASS answer's density."""
    return {
        "prompt": DEMO_PROMPT,
        "dense_text": backend.llm.detokenize(dense_ids).decode(errors="replace"),
        "glass_text": backend.llm.detokenize(glass_ids).decode(errors="replace"),
        "dense_repeated": repeated_share(dense_ids), "glass_repeated": repeated_share(glass_ids),
        **{k: v for k, v in measured.items() if k != "density"},
    }


def repeated_share(ids: list[int], n: int = 8) -> float:
    """The share of an answer's n-grams that already occurred earlier in it: 0 for text that never repeats itself,
    near 1 for an answer stuck in a loop (a sentence said four times scores about 0.75)."""
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    seen, repeated = set(), 0
    for g in grams:
        repeated += g in seen
        seen.add(g)
    return repeated / len(grams) if grams else 0.0


def kl_by_method(backend, prompt_ids, cont_ids, density: float, lam: float, priors: dict, warmup: int = 0) -> dict:
    """Mean per-token KL(dense || method) of GLASS (with its warm-up, as the runtime decodes it; priors: the GLASS
    GGUF's, results.model_priors) and GRIFFIN (mask from the prompt alone), and of GLASS without the warm-up, to
    show what it buys."""
    from .reference import Config

    dense, griffin = Config("dense"), Config("griffin", density)
    glass, plain = Config("glass", density, lam, "activation", warmup), Config("glass", density, lam, "activation")
    configs = list(dict.fromkeys([dense, griffin, glass, plain]))
    scores = backend.score(prompt_ids, cont_ids, configs, priors=priors)
    n = max(1, scores.n_tokens)
    return {"kl_glass": scores.kl[glass] / n, "kl_griffin": scores.kl[griffin] / n,
            "kl_glass_no_warmup": scores.kl[plain] / n,
            "ppl_dense": float(np.exp(scores.nll[dense] / n)),
            "ppl_glass": float(np.exp(scores.nll[glass] / n)),
            "ppl_griffin": float(np.exp(scores.nll[griffin] / n)), "scored_tokens": scores.n_tokens}


SPEED_KEYS = ("prompt_tokens", "gen_tokens", "dense_tok_s", "glass_tok_s", "ceiling_tok_s", "speedup", "speedup_q1",
              "speedup_q3", "ceiling_speedup", "share_of_ceiling", "ideal_speedup", "finalize_ms", "ttft_dense_ms",
              "ttft_glass_ms")


def speed(glass_path: Path, density: float, s: DemoSettings) -> dict:
    """bench's measurement (run_bench, with bench's default prompt and generation lengths), the keys the demo shows."""
    from .bench import DEFAULT_GEN_TOKENS, DEFAULT_PROMPT_TOKENS, run_bench

    result = run_bench(glass_path, density, s.lam, s.threads, DEFAULT_PROMPT_TOKENS, DEFAULT_GEN_TOKENS, s.repeats)
    return {key: getattr(result, key) for key in SPEED_KEYS}


def sweep(glass_path: Path, backend, prompt_ids: list[int], cont: list[int], s: DemoSettings, priors: dict
          ) -> list[dict]:
    """Speed-up (and its ceiling) and KL at every density of the plot, on the dense continuation of the side-by-side
    run."""
    from tqdm import tqdm

    rows = []
    for d in tqdm(s.densities, desc="density sweep", disable=not s.progress):
        rows.append({"density": d, **speed(glass_path, d, s),
                     **kl_by_method(backend, prompt_ids, cont, d, s.lam, priors, s.warmup)})
    return rows


def run_demo(s: DemoSettings) -> dict:
    from .evaluate import LlamaBackend
    from .plots import plot_demo
    from .results import model_priors

    glass_path = build_artifacts(s)
    priors = model_priors(glass_path)
    log("dense and GLASS on the same prompt, GLASS at every density", s)
    backend = LlamaBackend(glass_path, n_ctx=1024, threads=s.threads)
    prompt_ids = backend.prompt_ids(DEMO_PROMPT)
    dense_ids = backend.generate(prompt_ids, s.gen_tokens)
    answers = {d: glass_answer(backend, prompt_ids, d, s) for d in sorted({*s.densities, s.density} - {None})}
    density, coherent = (s.density, None) if s.density is not None else choose_density(
        {d: answers[d] for d in s.densities}, dense_ids)
    log("speed and quality against density", s)
    rows = sweep(glass_path, backend, prompt_ids, dense_ids, s, priors)
    # the side-by-side density is one of the sweep's unless --density named another: measure that one alone
    measured = next((r for r in rows if r["density"] == density), None) or {
        **speed(glass_path, density, s), **kl_by_method(backend, prompt_ids, dense_ids, density, s.lam, priors, s.warmup)}
    result = side_by_side(backend, dense_ids, answers[density], measured)
    result.update(model=str(glass_path), density=density, lam=s.lam, warmup=s.warmup,
                  density_chosen=s.density is None, coherent=coherent, coherence_margin=COHERENCE_MARGIN,
                  repeated_by_density={str(d): repeated_share(ids) for d, ids in answers.items()},
                  sweep=rows, plot=str(plot_demo(rows, s.out_dir / "demo.png")))
    write_text(s.out_dir / "demo.json", json.dumps(result, indent=2) + "\n")
    return result
