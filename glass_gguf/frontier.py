"""The speed-quality frontier: GLASS against what a user would do instead (a smaller quantization), on this machine.

One run measures, against the model as the user has it:
- the quantization ladder (quantize.py): every rung dense;
- GRIFFIN (prompt only, no prior) and GLASS (the swept setting: the file's glass.* keys, or options) at several
  densities on the model, and GLASS on every rung smaller than the model (it composes with quantization: the
  model's prior is reused, the rungs have the same neurons and the same fingerprint);
- two-level decoding (docs/two-level.md) on the model: GLASS's setting, each decoded token keeping a fraction f of
  the selection; its density is the share of FFN rows a token reads (the selection is method.superset_density).

Quality, on the reference's greedy answers (the reference: a higher-precision GGUF given with --source, else the
model itself). For every prompt (one user turn, chat template applied) the reference generates up to N tokens
greedily, c_0 .. c_{N-1} (stopping after an end-of-generation token). Each candidate reads the prompt and then the
reference's answer teacher-forced, on its own model file, GLASS in auto mode exactly as it generates (dense prompt,
the schedule's warm-up, the background swap to the compacted weights after 16 tokens). At every answer position
t = 0 .. N-1 both models predict c_t (c_0 from the prompt's last position), and

    KL(reference || candidate) = sum_t sum_v p_ref(v | ., t) * (log p_ref(v | ., t) - log p_cand(v | ., t))

over the full vocabulary in float64, summed over prompts and divided by the scored tokens (token-weighted). Both
logit rows are read from llama.cpp (logits_all) for the same token sequence; the reference's rows are computed
again for every model file (deterministic on the CPU) rather than stored, so the KL is exact, not a top-k estimate.
Also the perplexity of the reference answer under the candidate. Note: evaluate.py scores c_1 .. c_{N-1} only (c_0
is the same for every sparse setting of one model); across quantizations c_0 differs, so it is scored here.

The user-visible looping problem: each candidate's own greedy answer to every prompt (auto mode, decoded token by
token), and the share of its 8-grams that already occurred earlier in it (demo.repeated_share), up to its first
end-of-generation token, averaged over prompts.

Speed, from those same answers: every candidate decodes gen_tokens tokens per prompt (past an end-of-generation
token, so every answer has the same length), timed per token, warm-up, background compaction and swap inside, as a
user waits for a whole answer (answer_speed.py); prefill and the first token give the time to first token. The
model's dense context decodes the same prompt in every round, next to the candidates of one model file, in rotating
order, so each candidate's speed-up is the median over rounds (prompts x repeats) of dense seconds / candidate
seconds, with quartiles. Peak RSS of each candidate alone comes from a separate process (rss_probe) that loads the
file, reads a prompt and decodes past the swap. File size and real bits per weight are the file's.

Every finished model file's rows are cached (resumable: a run stopped by --time-limit or Ctrl-C continues where
it stopped). Pure logic (Pareto frontier, iso-quality headline, table) is at the top and needs no model.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import SettingError

KL_BUDGETS = (0.05, 0.1, 0.2)
REPEAT_MARGIN = 0.05            # "repeats no more than the dense answer + 5 points" (demo.COHERENCE_MARGIN)
DEFAULT_DENSITIES = (0.3, 0.5, 0.6, 0.75, 0.9)
DEFAULT_RUNG_DENSITIES = (0.5, 0.75, 0.9)
DEFAULT_TOKEN_FRACTIONS = (0.5,)
# the headline's groups of families: the quantization ladder, GRIFFIN, GLASS on the model, GLASS on any rung,
# two-level decoding on the model
GROUPS = ("quantization", "GRIFFIN", "GLASS", "GLASS + quantization", "two-level")


def group_of(family: str) -> str:
    """The headline group of a family: "quant" -> quantization, "griffin", "glass", "glass+Q3_K_M" -> GLASS + q."""
    if family == "quant":
        return "quantization"
    if family == "griffin":
        return "GRIFFIN"
    if family == "glass":
        return "GLASS"
    if family.startswith("glass+"):
        return "GLASS + quantization"
    if family == "two-level":
        return "two-level"
    raise SettingError(f"unknown family {family!r}")


# -- pure logic: rows, Pareto frontier, headline, table ------------------------------------------------------------


@dataclass
class Row:
    """One measured candidate: a row of the frontier JSON."""

    family: str                 # "quant", "griffin", "glass", "glass+<rung>" or "two-level"
    label: str                  # e.g. "Q3_K_M", "GLASS @0.5", "GLASS @0.5 on Q3_K_M", "two-level @0.5 (f 0.5)"
    base: str                   # the file it runs on: the model's type with " (model)", or a rung
    method: str                 # "dense", "griffin", "glass" or "two-level"
    density: float              # 1.0 for dense; two-level: the share of FFN rows a decoded token reads
    kl: float                   # KL(reference || candidate), per scored token
    speedup: float              # median over rounds of the model's dense seconds / candidate seconds
    repeated: float             # mean share of repeated 8-grams of its greedy answers
    ppl: float = float("nan")
    speedup_q1: float = float("nan")
    speedup_q3: float = float("nan")
    tok_s: float = float("nan")
    ttft_ms: float = float("nan")
    ttft_ratio: float = float("nan")   # median over rounds of candidate TTFT / dense TTFT
    file_mb: float = float("nan")
    bpw: float = float("nan")
    rss_mb: float | None = None
    scored_tokens: int = 0
    token_fraction: float = 1.0   # two-level: the share of its selection a decoded token keeps

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> "Row":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: (float("nan") if v is None and k not in ("rss_mb",) else v)
                      for k, v in d.items() if k in names})


def pareto(rows: list[Row]) -> list[Row]:
    """The rows no other row beats: none is at least as fast with at most the KL and better in one of them. Sorted by
    speed-up."""
    front = [r for r in rows if not any(
        o is not r and o.speedup >= r.speedup and o.kl <= r.kl and (o.speedup > r.speedup or o.kl < r.kl)
        for o in rows)]
    return sorted(front, key=lambda r: (r.speedup, -r.kl))


def fastest(rows: list[Row], ok) -> Row | None:
    """The fastest row for which ok(row) holds (ties: the lower KL), or None."""
    meeting = [r for r in rows if ok(r)]
    return max(meeting, key=lambda r: (r.speedup, -r.kl)) if meeting else None


def headline(rows: list[Row], dense_repeated: float, budgets=KL_BUDGETS, margin: float = REPEAT_MARGIN) -> list[dict]:
    """Iso-quality speed-up: per budget (KL at most b, or repeats at most the dense answer's + margin), the fastest
    candidate of each group (None: no candidate of the group meets it) and the fastest overall."""
    out = []
    tests = [(f"KL <= {b:g}", "kl", b, (lambda b: lambda r: r.kl <= b)(b)) for b in budgets]
    limit = dense_repeated + margin
    tests.append((f"repeats <= dense + {margin * 100:g} points", "repeated", limit, lambda r: r.repeated <= limit))
    for name, kind, value, ok in tests:
        best = {g: fastest([r for r in rows if group_of(r.family) == g], ok) for g in GROUPS}
        overall = fastest(rows, ok)
        out.append({"budget": name, "kind": kind, "value": value,
                    "best": {g: None if r is None else _brief(r) for g, r in best.items()},
                    "overall": None if overall is None else _brief(overall)})
    return out


def _brief(r: Row) -> dict:
    return {"label": r.label, "family": r.family, "speedup": r.speedup, "kl": r.kl, "repeated": r.repeated}


def verdict(head: list[dict]) -> list[str]:
    """One plain sentence per budget: which group is fastest, and whether GLASS (alone or on a rung) wins."""
    lines = []
    for h in head:
        o = h["overall"]
        if o is None:
            lines.append(f"{h['budget']}: no candidate meets it.")
            continue
        glass = [h["best"][g] for g in ("GLASS", "GLASS + quantization", "two-level") if h["best"].get(g)]
        g = max(glass, key=lambda r: r["speedup"]) if glass else None
        q = h["best"]["quantization"]
        if g is not None and g["label"] == o["label"]:
            lines.append(f"{h['budget']}: GLASS wins: {o['label']} at {o['speedup']:.2f}x" +
                         (f" (best quantization {q['label']} at {q['speedup']:.2f}x)." if q else "."))
        elif o["family"] == "quant" and "(model)" in o["label"]:
            lines.append(f"{h['budget']}: nothing faster than the dense model meets it" +
                         (f" (best GLASS {g['label']} at {g['speedup']:.2f}x)." if g else " (nor does any GLASS)."))
        else:
            lines.append(f"{h['budget']}: GLASS loses to {o['label']} at {o['speedup']:.2f}x" +
                         (f" (best GLASS {g['label']} at {g['speedup']:.2f}x)." if g else
                          " (no GLASS candidate meets it)."))
    return lines


def _fmt(x, spec: str, none: str = "-") -> str:
    return none if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def render_table(result: dict) -> str:
    """The markdown table of every candidate (sorted by family, then speed-up), Pareto rows in bold."""
    rows = [Row.from_json(r) for r in result["candidates"]]
    front = {r.label for r in pareto(rows)}
    lines = ["| candidate | family | KL | repeated 8-grams | speed-up (IQR) | tok/s | TTFT ms | file MB | bpw | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    order = {f: i for i, f in enumerate(dict.fromkeys(r.family for r in rows))}
    for r in sorted(rows, key=lambda r: (order[r.family], -r.speedup)):
        name = f"**{r.label}**" if r.label in front else r.label
        lines.append(f"| {name} | {r.family} | {_fmt(r.kl, '.4f')} | {_fmt(r.repeated * 100, '.1f')}% | "
                     f"{_fmt(r.speedup, '.2f')}x ({_fmt(r.speedup_q1, '.2f')}-{_fmt(r.speedup_q3, '.2f')}) | "
                     f"{_fmt(r.tok_s, '.1f')} | {_fmt(r.ttft_ms, '.0f')} | {_fmt(r.file_mb, '.1f')} | "
                     f"{_fmt(r.bpw, '.2f')} | {_fmt(r.rss_mb, '.0f')} |")
    return "\n".join(lines)


def render_headline(result: dict) -> str:
    """The iso-quality table: per budget, the fastest candidate of each group and its speed-up."""
    groups = [g for g in GROUPS if g in result["headline"][0]["best"]]   # older runs: no two-level group
    lines = ["| budget | " + " | ".join(groups) + " | fastest overall |",
             "|---|" + "---|" * (len(groups) + 1)]
    for h in result["headline"]:
        cells = [("none" if b is None else f"{b['label']} {b['speedup']:.2f}x") for b in
                 (h["best"][g] for g in groups)]
        o = h["overall"]
        lines.append(f"| {h['budget']} | " + " | ".join(cells) + f" | {'none' if o is None else o['label']} |")
    return "\n".join(lines)


def render_markdown(result: dict) -> str:
    """The results block of docs/frontier.md, rendered from a frontier JSON (tests compare the doc with this)."""
    p = result["protocol"]
    s = result["setting"]
    d = result["dense"]
    lines = [
        f"Model: `{Path(result['model']).name}` ({result['model_type']}); reference: {result['reference']}; "
        f"ladder made from {result['source']['kind']}; importance matrix: {result['imatrix'] or 'none'}.",
        f"GLASS setting ({s['from']}): {s['prior_kind']} prior ({s['prior_source']}, {s['prior_tokens']} tokens), "
        f"lambda {s['lambda']:g}, warm-up {s['warmup']}, refresh {s['refresh']}, "
        f"{'per-layer density' if s['layer_scale'] else 'uniform density'}.",
        f"Protocol: {p['n_prompts']} MT-Bench prompts ({p['prompts']}), {p['gen_tokens']} tokens, "
        f"{p['threads']} threads, {p['rounds']} speed rounds; densities {', '.join(map(str, p['densities']))} on "
        f"the model, {', '.join(map(str, p['rung_densities']))} on the rungs smaller than the model" +
        (f"; two-level at token fractions {', '.join(map(str, p['token_fractions']))} (density: the share of FFN "
         "rows a decoded token reads)." if p.get("token_fractions") else "."),
        f"Dense model: {d['tok_s']:.1f} tok/s, TTFT {d['ttft_ms']:.0f} ms, repeated 8-grams {d['repeated']:.1%}.",
        "",
        "Iso-quality speed-up (the fastest candidate of each family within the budget):",
        "",
        render_headline(result),
        "",
        *[f"- {v}" for v in result["verdict"]],
        "",
        "Every candidate (Pareto frontier in bold):",
        "",
        render_table(result),
    ]
    return "\n".join(lines) + "\n"


def plot_frontier(result: dict, png) -> Path:
    """Speed-up against KL (log x), one curve per family (by density), the Pareto frontier drawn."""
    from .plots import _pyplot, _save

    plt = _pyplot()
    rows = [Row.from_json(r) for r in result["candidates"]]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    floor = min([r.kl for r in rows if r.kl > 0] or [1e-4]) / 3
    x = lambda r: max(r.kl, floor)   # noqa: E731  the reference itself (KL 0) sits at the left edge
    styles = {"quant": dict(color="tab:blue", marker="s", lw=2), "griffin": dict(color="black", marker="v", ls="--"),
              "glass": dict(color="tab:red", marker="o", lw=2),
              "two-level": dict(color="tab:purple", marker="D", ls="-.")}
    extra = iter(plt.cm.Oranges(np.linspace(0.4, 0.9, max(1, len({r.family for r in rows})))))
    for fam in dict.fromkeys(r.family for r in rows):
        rs = [r for r in rows if r.family == fam]
        rs = sorted(rs, key=(lambda r: r.bpw) if fam == "quant" else (lambda r: r.density))
        kw = styles.get(fam, dict(color=next(extra), marker="^", ls=":"))
        ax.plot([x(r) for r in rs], [r.speedup for r in rs], label=fam, ms=5, **kw)
        for r in rs:
            tag = r.base.split(" ")[0] if fam == "quant" else f"{r.density:g}"
            tag += f" f{r.token_fraction:g}" if fam == "two-level" else ""
            ax.annotate(tag, (x(r), r.speedup), fontsize=6, xytext=(3, 3), textcoords="offset points")
    front = pareto(rows)
    ax.step([x(r) for r in sorted(front, key=lambda r: r.kl)], [r.speedup for r in sorted(front, key=lambda r: r.kl)],
            where="post", color="grey", lw=6, alpha=0.25, label="Pareto frontier")
    for b in KL_BUDGETS:
        ax.axvline(b, color="grey", ls=":", lw=0.8)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("KL(reference || candidate) per token (log)")
    ax.set_ylabel("whole-answer decode speed-up over the dense model")
    p = result["protocol"]
    ax.set_title(f"{Path(result['model']).name}: {p['n_prompts']} prompts x {p['gen_tokens']} tokens, "
                 f"{p['threads']} threads", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _save(fig, png, dpi=110)


# -- the measurement ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GlassSetting:
    """The GLASS setting measured: the sweep's choice as a GLASS file carries it, or the options."""

    lam: float
    warmup: int
    refresh: int
    layer_scale: tuple[float, ...] | None
    prior_kind: str
    prior_source: str
    prior_tokens: int
    origin: str                 # where the setting came from, for the output

    def to_json(self) -> dict:
        return {"lambda": self.lam, "warmup": self.warmup, "refresh": self.refresh,
                "layer_scale": list(self.layer_scale) if self.layer_scale else None, "prior_kind": self.prior_kind,
                "prior_source": self.prior_source, "prior_tokens": self.prior_tokens, "from": self.origin}


@dataclass(frozen=True)
class Candidate:
    family: str
    label: str
    base: str                   # key of the model file in the run's files
    method: str                 # dense | griffin | glass | two-level
    density: float = 1.0        # two-level: the rows a decoded token reads
    token_fraction: float = 1.0

    @property
    def with_prior(self) -> bool:
        """GLASS's setting (prior, lambda, schedule, layer scale) applies: glass and two-level."""
        return self.method in ("glass", "two-level")

    @property
    def selection_density(self) -> float:
        """The density the runtime selects at (two-level: the superset whose per-token share reads `density`)."""
        from . import method

        if self.method != "two-level":
            return self.density
        return min(1.0, method.superset_density(self.density, self.token_fraction))


@dataclass
class FrontierConfig:
    model: Path
    out_dir: Path                                   # the work folder: rungs, prior, caches
    source: Path | None = None
    ladder: tuple[str, ...] = ()
    densities: tuple[float, ...] = DEFAULT_DENSITIES
    rung_densities: tuple[float, ...] = DEFAULT_RUNG_DENSITIES
    n_prompts: int = 24
    gen_tokens: int = 256
    repeats: int = 1                                # speed rounds per prompt
    threads: int = 2
    prior: Path | None = None                       # a prior file, sidecar or GLASS GGUF
    prior_tokens: int = 8192
    lam: float | None = None                        # None: the file's
    warmup: int | None = None
    refresh: int | None = None
    imatrix: Path | None = None
    progress: bool = True
    time_limit_s: float | None = None
    rss: bool = True
    prompts: list[str] | None = None                # None: the MT-Bench eval split, evenly spaced
    griffin: bool = True
    glass_on_rungs: bool = True
    token_fractions: tuple[float, ...] = DEFAULT_TOKEN_FRACTIONS   # two-level on the model at every density that fits


class TimeLimit(Exception):
    """The run stopped at its time limit; the finished model files are cached."""


def log(cfg: FrontierConfig, msg: str) -> None:
    if cfg.progress:
        print(f"[frontier] {msg}", file=sys.stderr, flush=True)


def _digest(path: Path) -> str:
    from .results import model_digest

    return model_digest(path)


def prepare_model(cfg: FrontierConfig) -> tuple[Path, object]:
    """(the stock model file, the prior record with the file's setting if it carries one). A GLASS GGUF is stripped
    into the work folder, so every candidate runs on stock files with the prior set explicitly."""
    from .fingerprint import gguf_model_info
    from .glass_file import sidecar_path, strip
    from .prior_file import read_prior
    from .validate import checked_records

    gguf_model_info(cfg.model)          # one line for a model without a supported FFN, before any work
    records = checked_records(cfg.model)
    embedded = None
    stock = cfg.model
    if records.form is not None:
        embedded = read_prior(cfg.model)
        stock = cfg.out_dir / cfg.model.name.replace(".gguf", ".stock.gguf")
        if not stock.exists():
            strip(cfg.model, stock)
    elif sidecar_path(cfg.model).exists():
        # the runtime would load the sidecar into every context of the model, GRIFFIN's and dense ones too: take
        # its setting, and run the model through a link in the work folder, where no sidecar sits
        embedded = read_prior(sidecar_path(cfg.model))
        stock = cfg.out_dir / cfg.model.name
        if not stock.exists():      # a hard link (a symlink might be resolved back beside the sidecar), else a copy
            try:
                os.link(cfg.model, stock)
            except OSError:
                shutil.copy2(cfg.model, stock)
    return stock, embedded


def resolve_prior(cfg: FrontierConfig, stock: Path, embedded):
    """The prior (from --prior, the file itself, or computed by llama.cpp on the model like `glass-gguf prior`)."""
    from .gguf_prior import compute_gguf_prior
    from .prior_file import read_prior, validate_prior, write_prior
    from .fingerprint import gguf_model_info

    if cfg.prior is not None:
        prior = read_prior(cfg.prior)
        validate_prior(prior, gguf_model_info(stock), stock.name)
        return prior, f"--prior {cfg.prior.name}"
    if embedded is not None:
        return embedded, f"the glass.* keys of {cfg.model.name} (or its sidecar)"
    path = cfg.out_dir / f"prior-activation-{cfg.prior_tokens}.gguf"
    if not path.exists():
        log(cfg, f"computing the activation prior from {cfg.prior_tokens} self-generated tokens (llama.cpp)")
        write_prior(path, compute_gguf_prior(stock, "activation", tokens=cfg.prior_tokens,
                                             seq_len=min(128, cfg.prior_tokens), threads=cfg.threads,
                                             progress=cfg.progress))
    return read_prior(path), "computed from the model (activation prior), defaults for the rest"


def glass_setting(cfg: FrontierConfig, prior, origin: str) -> GlassSetting:
    from .settings import DEFAULT_LAMBDA_WITH_PRIOR, check_lambda

    lam = cfg.lam if cfg.lam is not None else prior.lam if prior.lam is not None else DEFAULT_LAMBDA_WITH_PRIOR
    warmup = cfg.warmup if cfg.warmup is not None else prior.warmup or 0
    refresh = cfg.refresh if cfg.refresh is not None else prior.refresh or 0
    if any(v is not None for v in (cfg.lam, cfg.warmup, cfg.refresh)):
        origin += "; options override " + ", ".join(n for n, v in (("lambda", cfg.lam), ("warm-up", cfg.warmup),
                                                                    ("refresh", cfg.refresh)) if v is not None)
    if warmup < 0 or refresh < 0 or refresh == 1:
        raise SettingError(f"warm-up must be >= 0 and refresh 0 (off) or >= 2, got {warmup} and {refresh}")
    scale = tuple(prior.layer_scale) if prior.layer_scale else None
    return GlassSetting(check_lambda(lam), int(warmup), int(refresh), scale, prior.kind, prior.source,
                        int(prior.tokens), origin)


def make_ladder(cfg: FrontierConfig, source: Path, imatrix, imatrix_tag: str = "") -> dict[str, Path]:
    """{type: rung file}, made from `source` into the work folder (existing rungs reused); the disk checked first.
    A rung made with the importance matrix carries its digest in the name."""
    from tqdm import tqdm

    from .quantize import (
        NEEDS_IMATRIX, WANTS_IMATRIX, QuantizeError, check_disk_space, estimated_bytes, quant_type, quantize,
    )

    stem = source.name.removesuffix(".gguf")
    rungs = {q: cfg.out_dir / (f"{stem}.{q}.imatrix-{imatrix_tag}.gguf" if imatrix and q in WANTS_IMATRIX
                               else f"{stem}.{q}.gguf") for q in cfg.ladder}
    todo = [q for q, p in rungs.items() if not p.exists()]
    for q in todo:        # every type checked before anything is written
        if quant_type(q).name in NEEDS_IMATRIX and not imatrix:
            raise QuantizeError(f"{quant_type(q).name} cannot be made without an importance matrix (llama.cpp's rule): pass "
                                "--imatrix FILE (from llama-imatrix) or leave it out of --ladder")
    if todo:
        check_disk_space(cfg.out_dir, sum(estimated_bytes(source, quant_type(q)) for q in todo),
                         f"the ladder ({', '.join(todo)})")
    for q in tqdm(todo, desc="quantizing the ladder", disable=not cfg.progress):
        quantize(source, rungs[q], q, imatrix=imatrix, threads=cfg.threads)
    return rungs


def default_prompts(n: int) -> list[str]:
    from .datasets import mtbench_prompts
    from .results import spread

    return spread(mtbench_prompts("eval"), n)


# -- scoring helpers ------------------------------------------------------------------------------------------------


def log_softmax(rows: np.ndarray) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def kl_and_nll(ref_logits: np.ndarray, cand_logits: np.ndarray, targets: np.ndarray, chunk: int = 32):
    """(sum over rows of KL(softmax(ref) || softmax(cand)), sum of -log p_cand(target)) in float64, a few rows at a
    time (a row of Qwen's vocabulary is 1.2 MB in float64)."""
    kl = nll = 0.0
    for i in range(0, len(ref_logits), chunk):
        lr, lc = log_softmax(ref_logits[i:i + chunk]), log_softmax(cand_logits[i:i + chunk])
        kl += float((np.exp(lr) * (lr - lc)).sum())
        nll -= float(lc[np.arange(len(lc)), targets[i:i + chunk]].sum())
    return kl, nll


def teacher_forced(backend, prompt_ids: list[int], cont: list[int], cand: Candidate, setting: GlassSetting,
                   lam: float) -> np.ndarray:
    """The candidate's logit rows predicting c_0 .. c_{N-1} (float32 [N, vocab]) with the answer teacher-forced, GLASS
    in auto mode under the setting's schedule as it generates (the runtime's background swap included)."""
    from . import method

    llm, glass = backend.llm, backend.glass
    P, N = len(prompt_ids), len(cont)
    glass.disable()
    llm.reset()
    warmup = refresh = 0
    glass.set_token_fraction(cand.token_fraction)
    if cand.method != "dense":
        if cand.with_prior:
            warmup, refresh = setting.warmup, setting.refresh
        glass.set_layer_scale(list(setting.layer_scale) if (cand.with_prior and setting.layer_scale) else None)
        glass.enable(cand.selection_density, lam, "auto")
        glass.set_schedule(warmup, refresh)
        llm.reset()
        glass.set_prompt_end(P)
    llm.eval(prompt_ids)
    for start, end, _ in method.schedule_segments(N - 1, warmup, refresh):
        llm.eval(cont[start:end])
    rows = np.array(llm.scores[P - 1:P + N - 1], dtype=np.float32)
    glass.disable()
    return rows


# -- answers and speed -----------------------------------------------------------------------------------------------


class Speaker:
    """One context decoding greedy answers token by token (no logits_all), GLASS set up for one candidate."""

    def __init__(self, path: Path, cand: Candidate, setting: GlassSetting, priors, n_ctx: int, threads: int):
        from .glass_llama import load

        kwargs = dict(n_ctx=n_ctx, n_batch=max(512, n_ctx), n_threads=threads, n_threads_batch=threads)
        if cand.method == "dense":
            self.llm, self.glass = load(path, dense=True, **kwargs)
            self.glass = None
        elif cand.method == "griffin":
            self.llm, self.glass = load(path, density=cand.density, lam=0.0, **kwargs)
        else:
            self.llm, self.glass = load(path, density=cand.selection_density, lam=setting.lam, prior=priors,
                                        **kwargs)
            self.glass.set_schedule(setting.warmup, setting.refresh)
            self.glass.set_layer_scale(list(setting.layer_scale) if setting.layer_scale else None)
            self.glass.set_token_fraction(cand.token_fraction)
        if self.glass is not None and self.glass.state == "off":
            raise RuntimeError("GLASS stayed off for a sparse candidate (GLASS_GGUF=off in the environment?)")

    def warm(self, prompt_ids: list[int], n: int) -> None:
        """Page the weights in, build the graphs and compact once, before anything is timed."""
        self.answer(prompt_ids, n)

    def answer(self, prompt_ids: list[int], n: int) -> tuple[list[int], float, float]:
        """(n greedy tokens, seconds to decode them, time to first token: prefill + the first token)."""
        from .bench import last_logits

        llm = self.llm
        llm.reset()
        if self.glass is not None:
            self.glass.set_prompt_end(len(prompt_ids))
        t0 = time.perf_counter()
        llm.eval(prompt_ids)
        ttft = None
        t1 = time.perf_counter()
        for i in range(n):
            llm.eval([int(np.argmax(last_logits(llm)))])
            if i == 0:
                ttft = time.perf_counter() - t0
        seconds = time.perf_counter() - t1
        start = len(prompt_ids)
        return [int(t) for t in llm.input_ids[start:start + n]], seconds, ttft

    def close(self) -> None:
        self.llm.close()


def until_end(ids: list[int], eog: set[int]) -> list[int]:
    """An answer up to and including its first end-of-generation token."""
    for i, t in enumerate(ids):
        if t in eog:
            return ids[:i + 1]
    return ids


def rss_probe(path: str, method: str, density: float, lam: float, priors_file: str | None, warmup: int,
              refresh: int, layer_scale: list | None, n_prompt: int, n_gen: int, threads: int,
              token_fraction: float = 1.0) -> float:
    """Peak RSS (MB) of a process that loads one candidate, reads a prompt and decodes past the swap."""
    from .bench import Sequence, peak_rss_mb, prompt_tokens
    from .glass_llama import load

    kwargs = dict(n_ctx=n_prompt + n_gen + 8, n_batch=max(512, n_prompt), n_threads=threads,
                  n_threads_batch=threads)
    if method == "dense":
        llm, glass = load(path, dense=True, **kwargs)
    else:
        llm, glass = load(path, density=density, lam=lam, prior=priors_file, **kwargs)
        glass.set_schedule(warmup, refresh)
        glass.set_layer_scale(layer_scale)
        glass.set_token_fraction(token_fraction)
    seq = Sequence(llm)
    seq.prefill(prompt_tokens(llm, n_prompt))
    seq.decode(n_gen)
    return peak_rss_mb()


def measure_rss(path: Path, cand: Candidate, setting: GlassSetting, prior_file: Path | None, threads: int,
                n_gen: int) -> float | None:
    glass = cand.with_prior
    args = [str(path), cand.method, cand.selection_density, setting.lam if glass else 0.0,
            str(prior_file) if (glass and prior_file) else None,
            setting.warmup if glass else 0, setting.refresh if glass else 0,
            list(setting.layer_scale) if (glass and setting.layer_scale) else None,
            256, n_gen, threads, cand.token_fraction]
    code = ("import json, sys; from glass_gguf.frontier import rss_probe; "
            f"print(json.dumps(rss_probe(*json.loads(sys.argv[1]))))")
    try:
        out = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                             timeout=600)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    return float(out.stdout.strip().splitlines()[-1])


# -- the run ---------------------------------------------------------------------------------------------------------


def _median_iqr(values) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(med), float(q1), float(q3)


def candidates_for(cfg: FrontierConfig, files: dict[str, dict]) -> dict[str, list[Candidate]]:
    """Per model file, its candidates: the model dense, GRIFFIN and GLASS at cfg.densities, two-level at every
    density and token fraction whose selection fits in the model; every rung dense, and GLASS at cfg.rung_densities
    on the rungs smaller than the model."""
    from . import method

    out: dict[str, list[Candidate]] = {}
    model_bpw = files["model"]["bpw"]
    for key, f in files.items():
        cands = [Candidate("quant", f["label"], key, "dense")]
        if key == "model":
            if cfg.griffin:
                cands += [Candidate("griffin", f"GRIFFIN @{d:g}", key, "griffin", d) for d in cfg.densities]
            cands += [Candidate("glass", f"GLASS @{d:g}", key, "glass", d) for d in cfg.densities]
            cands += [Candidate("two-level", f"two-level @{d:g} (f {f:g})", key, "two-level", d, f)
                      for d in cfg.densities for f in cfg.token_fractions if method.superset_density(d, f) <= 1.0]
        elif key != "source" and cfg.glass_on_rungs and f["bpw"] < model_bpw:
            cands += [Candidate(f"glass+{key}", f"GLASS @{d:g} on {key}", key, "glass", d)
                      for d in cfg.rung_densities]
        out[key] = cands
    return out


def runtime_build_key() -> str:
    """The installed patched build's key (sdist and patches): cached measurements of another runtime are not reused."""
    from .doctor import BUILD_INFO

    return json.loads(BUILD_INFO.read_text()).get("key", "") if BUILD_INFO.exists() else ""


def run_key(cfg: FrontierConfig, setting: GlassSetting, ref_digest: str, model_digest: str, prompts) -> str:
    # the candidates too: a cached file's rows are reused only for the same set of candidates
    text = json.dumps([ref_digest, model_digest, prompts, cfg.gen_tokens, cfg.repeats, cfg.threads,
                       setting.to_json(), runtime_build_key(), list(cfg.densities), list(cfg.rung_densities),
                       list(cfg.token_fractions), cfg.griffin, cfg.glass_on_rungs, "v2"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_frontier(cfg: FrontierConfig) -> dict:
    """The whole measurement (module docstring); returns the frontier record (JSON-ready)."""
    from .atomic import write_text
    from .evaluate import LlamaBackend, dense_continuations
    from .quantize import WANTS_IMATRIX, bits_per_weight, file_type_name, imatrix_data

    started = time.monotonic()
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    stock, embedded = prepare_model(cfg)
    if cfg.source is not None:
        from .fingerprint import fingerprints_match, gguf_model_info

        if not fingerprints_match(gguf_model_info(cfg.source).fingerprint, gguf_model_info(stock).fingerprint):
            raise SettingError(f"--source {cfg.source.name} is not the same model as {cfg.model.name} "
                               "(architecture, shapes, vocabulary or norm weights differ)")
    imatrix = imatrix_data(cfg.imatrix) if cfg.imatrix else None
    imatrix_tag = _digest(cfg.imatrix)[:8] if cfg.imatrix else ""
    source = cfg.source or stock
    rungs = make_ladder(cfg, source, imatrix, imatrix_tag)
    prior, origin = resolve_prior(cfg, stock, embedded)
    setting = glass_setting(cfg, prior, origin)
    priors = [np.asarray(s, dtype=np.float32) for s in prior.scores]
    tag = hashlib.sha256(f"{prior.kind}|{prior.source}|{prior.tokens}|{prior.fingerprint}".encode()).hexdigest()[:12]
    prior_file = cfg.out_dir / f"frontier-prior-{tag}.gguf"     # the rss probes load it as a sidecar
    if not prior_file.exists():
        from .prior_file import write_prior
        write_prior(prior_file, prior, with_sums=prior.sums is not None)

    model_type = file_type_name(stock)
    files = {"model": {"path": stock, "label": f"{model_type} (model)"}}
    if cfg.source is not None:
        files["source"] = {"path": cfg.source, "label": f"{file_type_name(cfg.source)} (source)"}
    for q, p in rungs.items():
        files[q] = {"path": p, "label": q}
    for f in files.values():
        f["bpw"] = bits_per_weight(f["path"])
        f["file_mb"] = f["path"].stat().st_size / 1e6
    cands = candidates_for(cfg, files)

    prompts = cfg.prompts or default_prompts(cfg.n_prompts)
    ref_path = cfg.source or stock
    log(cfg, f"reference: {ref_path.name}; {len(prompts)} prompts x {cfg.gen_tokens} tokens")
    ref = LlamaBackend(ref_path, n_ctx=2048, threads=cfg.threads)
    pairs = dense_continuations(ref, prompts, cfg.gen_tokens,
                                cache=cfg.out_dir / f"continuations-{_digest(ref_path)}.json", progress=cfg.progress)
    pairs = [(i, c) for i, c in pairs if len(c) >= 2]
    n_ctx = max(len(i) for i, _ in pairs) + cfg.gen_tokens + 8
    from .gguf_prior import end_of_generation

    eog = set(np.flatnonzero(end_of_generation(ref.llm)).tolist())
    key = run_key(cfg, setting, _digest(ref_path), _digest(stock), prompts + [imatrix_tag])
    cache_path = cfg.out_dir / f"frontier-cache-{key}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    # the model's dense context times every round, next to each file's candidates
    dense_model = Candidate("quant", files["model"]["label"], "model", "dense")
    ref_speaker = None
    for name, group in cands.items():
        if name in cache:
            log(cfg, f"{files[name]['label']}: cached")
            continue
        if cfg.time_limit_s is not None and time.monotonic() - started > cfg.time_limit_s:
            raise TimeLimit(f"stopped at the time limit; {len(cache)} of {len(cands)} model files done "
                            f"(cached in {cache_path}): run the same command again to continue")
        if ref_speaker is None:
            ref_speaker = Speaker(stock, dense_model, setting, None, n_ctx, cfg.threads)
            ref_speaker.warm(pairs[0][0], min(cfg.gen_tokens, 64))
        t_file = time.monotonic()
        rows = measure_file(cfg, files[name], group, ref, pairs, setting, priors, prior_file, eog, n_ctx,
                            ref_speaker, quality_ref=files[name]["path"] == ref_path, is_model=name == "model")
        cache[name] = {"rows": rows["rows"], "dense": rows["dense"], "elapsed_s": time.monotonic() - t_file}
        write_text(cache_path, json.dumps(cache))

    all_rows = [Row.from_json(r) for g in cands for r in cache[g]["rows"]]
    dense_stats = cache["model"]["dense"]
    head = headline(all_rows, dense_stats["repeated"])
    return {
        "model": str(cfg.model), "model_type": model_type, "model_digest": _digest(stock),
        "source": {"path": str(source), "type": file_type_name(source),
                   "kind": (f"a higher-precision GGUF ({file_type_name(source)}, --source)" if cfg.source else
                            f"the model itself ({model_type}), requantized: no higher-precision weights were given")},
        "reference": (f"{cfg.source.name} (--source)" if cfg.source else "the model itself (dense)"),
        "imatrix": (f"{cfg.imatrix.name} (sha256 {imatrix_tag}...), for {', '.join(q for q in cfg.ladder if q in WANTS_IMATRIX)}"
                    if cfg.imatrix else None),
        "setting": setting.to_json(),
        "prior_file": str(prior_file),
        "protocol": {"n_prompts": len(pairs), "prompts": "MT-Bench eval split, evenly spaced" if cfg.prompts is None
                     else "given", "gen_tokens": cfg.gen_tokens, "threads": cfg.threads,
                     "rounds": len(pairs) * cfg.repeats, "repeats": cfg.repeats,
                     "densities": list(cfg.densities), "rung_densities": list(cfg.rung_densities),
                     "token_fractions": list(cfg.token_fractions),
                     "ladder": list(cfg.ladder),
                     "kl": "KL(reference || candidate) over the full vocabulary, float64, per answer token c_0..c_{N-1}"
                           " of the reference's greedy answers, teacher-forced, token-weighted over prompts",
                     "repeated": "share of 8-grams already seen earlier in the candidate's own greedy answer, up to "
                                 "its first end-of-generation token, mean over prompts",
                     "speed": "gen_tokens greedy tokens per prompt, one per eval, warm-up and background compaction "
                              "inside; speed-up = median over rounds of the model's dense seconds / candidate seconds "
                              "(dense decoded in the same round); TTFT = prefill + first token"},
        "dense": dense_stats,
        "candidates": [r.to_json() for r in all_rows],
        "pareto": [r.label for r in pareto(all_rows)],
        "headline": head,
        "verdict": verdict(head),
        # the measuring time of every file, summed (a run resumed from its cache, or re-rendered, keeps it)
        "elapsed_s": sum(cache[g].get("elapsed_s", 0.0) for g in cands) or time.monotonic() - started,
    }


def measure_file(cfg: FrontierConfig, f: dict, group: list[Candidate], ref, pairs, setting: GlassSetting, priors,
                 prior_file: Path, eog: set[int], n_ctx: int, dense_speaker: Speaker, quality_ref: bool,
                 is_model: bool) -> dict:
    """Quality, answers, speed and memory of one model file's candidates (rows as JSON) and the model's dense
    statistics measured alongside. quality_ref: the file is the quality reference (its dense rows are the
    reference's); is_model: the file is the model (its dense candidate is dense_speaker itself: speed-up 1)."""
    from tqdm import tqdm

    from .demo import repeated_share
    from .evaluate import LlamaBackend

    path = f["path"]
    log(cfg, f"{f['label']}: {', '.join(c.label for c in group)}")
    # quality: the candidate file's contexts with logits for every row; GRIFFIN's has no prior, GLASS's has it
    plain = ref if quality_ref else LlamaBackend(path, n_ctx=n_ctx, threads=cfg.threads)
    plain.glass.clear_priors()   # GRIFFIN is prompt-only, whatever prior the file carries (GLASS has `primed`)
    primed = None
    if any(c.with_prior for c in group):
        primed = LlamaBackend(path, n_ctx=n_ctx, threads=cfg.threads)
        primed.glass.set_priors(priors)
    kl = {c.label: 0.0 for c in group}
    nll = {c.label: 0.0 for c in group}
    tokens = 0
    for prompt_ids, cont in tqdm(pairs, desc=f"quality {f['label']}", disable=not cfg.progress):
        ref_rows = teacher_forced(ref, prompt_ids, cont, Candidate("quant", "ref", "ref", "dense"), setting, 0.0)
        targets = np.asarray(cont)
        tokens += len(cont)
        for c in group:
            backend = primed if c.with_prior else plain
            lam = setting.lam if c.with_prior else 0.0
            rows = ref_rows if (quality_ref and c.method == "dense") else teacher_forced(
                backend, prompt_ids, cont, c, setting, lam)
            k, n = kl_and_nll(ref_rows, rows, targets)
            kl[c.label] += k
            nll[c.label] += n
    for b in (plain, primed):
        if b is not None and b is not ref:
            b.llm.close()

    # answers and speed: the model's dense context and every candidate of this file, rotating per round
    speakers = {}
    for c in group:
        if not (is_model and c.method == "dense"):
            speakers[c.label] = Speaker(path, c, setting, priors, n_ctx, cfg.threads)
            speakers[c.label].warm(pairs[0][0], min(cfg.gen_tokens, 64))
    names = ["__dense__"] + list(speakers)
    seconds = {n: [] for n in names}
    ttft = {n: [] for n in names}
    answers = {n: [] for n in names}
    rounds = [(r, p) for r in range(cfg.repeats) for p in range(len(pairs))]
    for i, (r, p) in enumerate(tqdm(rounds, desc=f"answers {f['label']}", disable=not cfg.progress)):
        order = names[i % len(names):] + names[:i % len(names)]
        for n in order:
            sp = dense_speaker if n == "__dense__" else speakers[n]
            ids, s, t = sp.answer(pairs[p][0], cfg.gen_tokens)
            seconds[n].append(s)
            ttft[n].append(t)
            if r == 0:
                answers[n].append(until_end(ids, eog))
    dense_s = np.asarray(seconds["__dense__"])
    dense_t = np.asarray(ttft["__dense__"])
    rows = []
    for c in group:
        n = c.label if c.label in speakers else "__dense__"
        sp_s, sp_t = np.asarray(seconds[n]), np.asarray(ttft[n])
        med, q1, q3 = _median_iqr(dense_s / sp_s)
        rss = None
        if cfg.rss:
            rss = measure_rss(path, c, setting, prior_file, cfg.threads, min(cfg.gen_tokens, 64))
        rows.append(Row(
            family=c.family, label=c.label, base=f["label"], method=c.method, density=c.density,
            kl=kl[c.label] / tokens, ppl=math.exp(nll[c.label] / tokens), scored_tokens=tokens,
            repeated=float(np.mean([repeated_share(a) for a in answers[n]])),
            speedup=med, speedup_q1=q1, speedup_q3=q3,
            tok_s=cfg.gen_tokens / float(np.median(sp_s)), ttft_ms=1000 * float(np.median(sp_t)),
            ttft_ratio=float(np.median(sp_t / dense_t)), file_mb=f["file_mb"], bpw=f["bpw"], rss_mb=rss,
            token_fraction=c.token_fraction,
        ).to_json())
    for sp in speakers.values():
        sp.close()
    dense = {"tok_s": cfg.gen_tokens / float(np.median(dense_s)), "ttft_ms": 1000 * float(np.median(dense_t)),
             "repeated": float(np.mean([repeated_share(a) for a in answers["__dense__"]]))}
    return {"rows": rows, "dense": dense}


def write_result(result: dict, out: Path, plot: Path | None) -> None:
    from .atomic import write_text

    if plot is not None:
        result["plot"] = str(plot_frontier(result, plot))
    write_text(out, json.dumps(result, indent=2) + "\n")


def update_doc(doc: Path, key: str, result: dict) -> Path:
    """Replace the block between `<!-- frontier:KEY begin -->` and `<!-- frontier:KEY end -->` in `doc` with
    render_markdown(result) (the doc's tables are never typed by hand)."""
    from .atomic import write_text
    from .doc_blocks import replace_block

    try:
        text = replace_block(Path(doc).read_text(), f"frontier:{key}", render_markdown(result))
    except ValueError as e:
        raise SettingError(f"{doc}: {e}") from None
    return write_text(doc, text)


if __name__ == "__main__":      # python -m glass_gguf.frontier RESULT.json DOC.md KEY: render the JSON into the doc
    update_doc(Path(sys.argv[2]), sys.argv[3], json.loads(Path(sys.argv[1]).read_text()))
