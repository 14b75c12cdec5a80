"""The full quality measurement behind docs/results.md, and the files it needs (HF checkpoint, priors).

`glass-gguf results` runs, per model, each stage once (its JSON under docs/results/ is reused unless --force):
    prior    A and I priors from self-generated calibration (glass_gguf.prior), cached as prior files
    sweep    lambda and prior kind chosen on the MT-Bench "sweep" prompts (disjoint from the eval prompts)
    eval     the short-prompt long-generation protocol on the MT-Bench "eval" prompts at densities 0.5 .. 0.9
    tasks    GRIFFIN-rule accuracy on the classification sets
    cross    the llama.cpp runtime against the torch reference on 6 prompts (masks' Jaccard, KL)
then renders docs/results.md (tables, GLASS vs GRIFFIN, plots) from the JSON files alone.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from . import assets, datasets, evaluate, tasks
from .assets import cache_dir
from .atomic import write_text
from .evaluate import Gain, Record
from .reference import METHODS, Config
from .prior import DEFAULT_TOKENS
from .settings import DEFAULT_DENSITY, DEFAULT_LAMBDA_WITH_PRIOR

DENSITIES = (0.5, 0.6, 0.75, 0.9)
SWEEP_DENSITIES = (0.5, 0.75)
LAMBDAS = (0.25, 0.5, 0.75)
# (warm-up, refresh) candidates of the sweep; at 256 generated tokens each decodes at most ~10% of them dense
SCHEDULES = ((0, 0), (16, 0), (24, 0), (8, 16), (16, 32), (0, 12))
MAX_DENSE_SHARE = 0.1
# strengths of the per-layer density split the sweep tries beside uniform (method.layer_scale): on SmolLM2 the
# positive ones (more neurons to layers with flat priors) lost, the negative ones won a little (docs/refresh.md)
LAYER_SPLITS = (-1.0, -0.5, 0.5, 1.0)
KINDS = ("activation", "impact")
STAGES = ("sweep", "eval", "speed", "tasks", "cross")
# How every selection treats the last layer, recorded in each JSON this module writes: the runtime's rule (its last
# FFN runs only on the rows that need logits, so it never collects; reference module docstring). Files without
# the key were measured when the torch reference still selected that layer from the prompt's statistic.
LAST_LAYER_RULE = "never collects: the prior's selection, dense without a prior"


# -- the files a measurement needs ----------------------------------------------------------------------------------

def model_digest(model_path: Path) -> str:
    """First 16 hex digits of the GGUF's sha256 (known for the packaged models, else computed)."""
    for m in assets.MODELS.values():
        if Path(model_path).name == m.filename:
            return m.sha256[:16]
    return assets.file_sha256(Path(model_path))[:16]


def hf_dir_for(model_path: Path) -> Path:
    """The dense HF checkpoint of a GGUF, exported once into the cache (the folder the test fixture uses)."""
    from .hf_export import hf_export

    out = cache_dir() / "hf" / model_digest(model_path)
    if not (out / "config.json").exists():
        hf_export(model_path, out, overwrite=True)
    return out


def read_priors(files) -> dict[str, list[np.ndarray]]:
    """{kind: per-layer scores} from prior files, sidecars or GLASS GGUFs (prior_file.read_prior)."""
    from .prior_file import read_prior

    out = {}
    for f in files:
        p = read_prior(f)
        out[p.kind] = [np.asarray(s, dtype=np.float64) for s in p.scores]
    return out


def model_priors(model_path: Path) -> dict[str, list[np.ndarray]]:
    """The prior a GLASS GGUF carries ({} for a stock GGUF)."""
    from .errors import NoPrior

    try:
        return read_priors([model_path])
    except NoPrior:
        return {}


def prior_files_for(model_path: Path, hf_dir: Path, kinds=KINDS, threads: int | None = None,
                    tokens: int = DEFAULT_TOKENS) -> list[Path]:
    """Prior files of the given kinds, computed once (`tokens` self-generated tokens, seed 0) and cached."""
    from .prior import compute_priors
    from .prior_file import write_prior

    suffix = "" if tokens == DEFAULT_TOKENS else f".{tokens}"
    paths = {k: cache_dir() / "priors" / f"{model_digest(model_path)}.{k}{suffix}.gguf" for k in kinds}
    if missing := [k for k, path in paths.items() if not path.exists()]:
        computed, _ = compute_priors(hf_dir, missing, tokens=tokens, threads=threads)  # one pass for all kinds
        for k in missing:
            paths[k].parent.mkdir(parents=True, exist_ok=True)
            write_prior(paths[k], computed[k])
    return list(paths.values())


def write_swept_model(model_path: Path, prior_files, kind: str, lam: float, density: float = DEFAULT_DENSITY,
                      warmup: int = 0, refresh: int = 0, layer_split: float = 0.0) -> Path:
    """The GLASS GGUF of a packaged model with the swept prior kind, glass.lambda, schedule and per-layer density
    (convert's embed_prior), under the cache's glass/ folder; rewritten only when the stored choice differs."""
    from .glass_file import embed_prior
    from .prior_file import read_prior

    out = cache_dir() / "glass" / Path(model_path).name.replace(".gguf", ".glass.gguf")
    prior = prior_of_kind(prior_files, kind)
    scale = swept_layer_scale(prior, density, layer_split)
    if out.exists():
        stored = read_prior(out)
        if stored.kind == kind and stored.lam is not None and abs(stored.lam - lam) < 1e-6 and \
                (stored.warmup or 0, stored.refresh or 0) == (warmup, refresh) and stored.layer_scale == scale:
            return out
    out.parent.mkdir(parents=True, exist_ok=True)
    return embed_prior(model_path, prior, out, density=density, lam=lam, warmup=warmup, refresh=refresh,
                       layer_scale=scale)


def prior_of_kind(prior_files, kind: str):
    """The Prior of that kind among the files (each read once)."""
    from .prior_file import read_prior

    return next(p for p in map(read_prior, prior_files) if p.kind == kind)


def swept_layer_scale(prior, density: float, layer_split: float) -> list[float] | None:
    """glass.layer_scale for a swept split: the factors at the file's density (None: uniform). Other densities
    reuse them (the runtime multiplies the density by each factor)."""
    if not layer_split:
        return None
    from . import method

    return [float(x) for x in np.float32(method.layer_scale(prior.scores, density, layer_split))]


def continuation_cache(model_path: Path, backend: str) -> Path:
    return cache_dir() / "continuations" / f"{backend}-{model_digest(model_path)}.json"


def spread(items: list, n: int | None) -> list:
    """n items evenly spaced over the list (all if n is None or too large): every category of MT-Bench."""
    if not n or n >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


# -- one model ------------------------------------------------------------------------------------------------------

def sweep(backend, model_path: Path, priors, n: int, gen_tokens: int, densities=SWEEP_DENSITIES, lambdas=LAMBDAS,
          prompts: list[str] | None = None, schedules=SCHEDULES, max_dense_share: float = MAX_DENSE_SHARE,
          layer_splits=LAYER_SPLITS, token_fractions=()) -> dict:
    """Choose (prior kind, lambda), then the (warm-up, refresh) schedule for them, then the per-layer density
    split under that schedule, by the lowest mean KL on prompts disjoint from the evaluation prompts; then, given
    token fractions, two-level decoding of that setting against it (choice["two_level"]; off by default in the
    runtime, so it is reported, not written)."""
    prompts = spread(prompts or datasets.mtbench_prompts("sweep"), n)
    pairs = evaluate.dense_continuations(backend, prompts, gen_tokens, continuation_cache(model_path, backend.name))
    configs = evaluate.configs_for(["griffin", "static", "glass"], densities, lambdas, sorted(priors))
    records = evaluate.summarize(evaluate.run(backend, pairs, configs, priors), configs, backend.name)
    choice = evaluate.choose_lambda(records)
    kind, lam = choice["prior"], choice["lambda"]
    if kind is not None and lam not in (0.0, 1.0) and len(schedules) > 1:
        scheduled = [Config("glass", d, lam, kind, w, r) for d in densities for w, r in schedules if (w, r) != (0, 0)]
        more = evaluate.summarize(evaluate.run(backend, pairs, scheduled, priors), scheduled, backend.name)
        plain = [r for r in records if r.method == "glass" and r.prior == kind and r.lam == lam]
        choice["schedule"] = evaluate.choose_schedule(plain + more, gen_tokens, max_dense_share)
        records += more
    if kind is not None and lam not in (0.0, 1.0) and layer_splits:
        w, r = (choice.get("schedule") or {}).get("warmup", 0), (choice.get("schedule") or {}).get("refresh", 0)
        split = [Config("glass", d, lam, kind, w, r, layer_split=s) for d in densities for s in layer_splits]
        more = evaluate.summarize(evaluate.run(backend, pairs, split, priors), split, backend.name)
        uniform = [x for x in records if x.method == "glass" and x.prior == kind and x.lam == lam and
                   (x.warmup, x.refresh) == (w, r)]
        choice["layer_split"] = evaluate.choose_layer_split(uniform + more)
        records += more
    if token_fractions:
        choice["two_level"] = _sweep_two_level(backend, pairs, priors, records, choice, densities, token_fractions)
    return {"model": Path(model_path).name, "backend": backend.name, "prompts": "mt-bench sweep split",
            "n_prompts": len(pairs), "gen_tokens": gen_tokens, "choice": choice,
            "results": [r.to_json() for r in records]}


def _sweep_two_level(backend, pairs, priors, records: list, choice: dict, densities, token_fractions) -> dict:
    """Two-level decoding of the sweep's best GLASS setting (0 < lambda < 1; its schedule and split when the sweep
    chose it) at every token fraction, against that setting single-level; the records join `records`."""
    glass = [c for c in choice["candidates"] if c["prior"] is not None and 0.0 < c["lambda"] < 1.0]
    best = min(glass, key=lambda c: c["mean_kl"])
    kind, lam = best["prior"], best["lambda"]
    chosen = (kind, lam) == (choice["prior"], choice["lambda"])
    w = (choice.get("schedule") or {}).get("warmup", 0) if chosen else 0
    r = (choice.get("schedule") or {}).get("refresh", 0) if chosen else 0
    s = (choice.get("layer_split") or {}).get("layer_split", 0.0) if chosen else 0.0
    two = [Config("two-level", d, lam, kind, w, r, layer_split=s, token_fraction=f)
           for d in densities for f in token_fractions]
    more = evaluate.summarize(evaluate.run(backend, pairs, two, priors), two, backend.name)
    single = [x for x in records if x.method == "glass" and x.prior == kind and x.lam == lam and
              (x.warmup, x.refresh, x.layer_split) == (w, r, s)]
    records += more
    return {**evaluate.choose_token_fraction(single + more), "setting": single[0].setting}


def eval_protocol(backend, model_path: Path, priors, n: int | None, gen_tokens: int, densities=DENSITIES,
                  lambdas=LAMBDAS, methods=("dense", "griffin", "static", "glass", "random"),
                  prompts: list[str] | None = None, schedules=((0, 0),), extra: list[Config] = (),
                  layer_splits=(0.0,), token_fractions=(0.5,)) -> dict:
    """The quality protocol on `n` prompts (MT-Bench eval split by default): the eval JSON. extra: settings
    scored besides those of methods x densities x lambdas x schedules (the sweep's chosen schedule)."""
    prompts = spread(prompts or datasets.mtbench_prompts("eval"), n)
    pairs = evaluate.dense_continuations(backend, prompts, gen_tokens, continuation_cache(model_path, backend.name))
    configs = evaluate.configs_for(list(methods), densities, lambdas, sorted(priors), schedules, layer_splits,
                                   token_fractions)
    configs += [c for c in extra if c not in configs]
    t0 = time.time()
    records = evaluate.summarize(evaluate.run(backend, pairs, configs, priors), configs, backend.name)
    return {"model": Path(model_path).name, "backend": backend.name, "prompts": "mt-bench eval split",
            "n_prompts": len(pairs), "gen_tokens": gen_tokens,
            "mean_generated": float(np.mean([len(c) for _, c in pairs])), "seconds": time.time() - t0,
            "results": [r.to_json() for r in records],
            "improvements": [g.to_json() for g in evaluate.improvements(records)]}


def run_model(name: str, out_dir: Path, *, n_eval: int, n_sweep: int, gen_tokens: int, task_limit: int,
              densities=DENSITIES, threads: int | None = None, force: bool = False,
              stages=STAGES, prior_tokens: int = DEFAULT_TOKENS, eval_lambdas: str = "all",
              eval_methods=METHODS) -> list[Path]:
    """Every stage for one packaged model; each writes out_dir/<name>-<stage>.json. Returns the JSON files.
    eval_lambdas: "all" scores GLASS at every lambda of the sweep's grid in eval, "swept" only at the sweep's
    choice (both prior kinds either way): a third of the GLASS settings, for models where eval takes hours.
    eval_methods: the methods scored at every density in eval (the sweep's choices are scored besides)."""
    from .prior_file import read_prior
    from .reference import Config

    model_path = assets.model_path(assets.MODELS[name])
    hf_dir = hf_dir_for(model_path)
    files = prior_files_for(model_path, hf_dir, threads=threads, tokens=prior_tokens)
    priors = read_priors(files)
    prior_info = {p.kind: {"source": p.source, "tokens": p.tokens} for p in map(read_prior, files)}
    backend = evaluate.load_torch_backend(hf_dir, threads)
    out_dir.mkdir(parents=True, exist_ok=True)

    def stage(key, fn):
        path = out_dir / f"{name}-{key}.json"
        if key in stages and (force or not path.exists()):
            write_text(path, json.dumps({**fn(), "priors": prior_info, "last_layer_rule": LAST_LAYER_RULE}, indent=1))
        return json.loads(path.read_text()) if path.exists() else None

    chosen = stage("sweep", lambda: sweep(backend, model_path, priors, n_sweep, gen_tokens))
    schedule = (chosen or {}).get("choice", {}).get("schedule") or {"warmup": 0, "refresh": 0}
    w, r = schedule["warmup"], schedule["refresh"]
    split = ((chosen or {}).get("choice", {}).get("layer_split") or {}).get("layer_split", 0.0)
    extra = []
    if chosen and chosen["choice"]["prior"]:    # the sweep's choices, each alone and together, at every density
        kind, lam = chosen["choice"]["prior"], chosen["choice"]["lambda"]
        for d in densities:
            if (w, r) != (0, 0):
                extra += [Config("griffin", d, warmup=w, refresh=r), Config("glass", d, lam, kind, w, r)]
            if split:
                extra.append(Config("glass", d, lam, kind, layer_split=split))
                if (w, r) != (0, 0):
                    extra.append(Config("glass", d, lam, kind, w, r, layer_split=split))
    lambdas = LAMBDAS
    if eval_lambdas == "swept" and chosen and chosen["choice"]["prior"]:
        lambdas = (chosen["choice"]["lambda"],)
    stage("eval", lambda: eval_protocol(backend, model_path, priors, n_eval, gen_tokens, densities, lambdas,
                                        methods=tuple(eval_methods), extra=extra))
    if chosen:
        kind, lam = chosen["choice"]["prior"] or "activation", chosen["choice"]["lambda"]
        glass_gguf = write_swept_model(model_path, files, kind, lam, warmup=schedule["warmup"],
                                       refresh=schedule["refresh"], layer_split=split)
        print(f"{name}: sweep chose the {kind} prior, lambda {lam:g}; wrote {glass_gguf}", file=sys.stderr)
    else:
        kind, lam = "activation", DEFAULT_LAMBDA_WITH_PRIOR

    def run_speed():
        from . import method
        from .answer_speed import AnswerSetting, answer_speed

        prior = prior_of_kind(files, kind)
        rows = []
        for d in densities:
            settings = {"glass": AnswerSetting()}
            if (w, r) != (0, 0) or split:
                scale = method.layer_scale(prior.scores, d, split) if split else None
                settings["swept"] = AnswerSetting(w, r, scale)
            rows.append(answer_speed(glass_gguf, d, lam, settings, threads or 2, n_gen=gen_tokens))
            print(f"{name}: answer speed at density {d:g} measured", file=sys.stderr)
        return {"model": model_path.name, "gen_tokens": gen_tokens, "results": rows,
                "swept": {"warmup": w, "refresh": r, "layer_split": split, "prior": kind, "lambda": lam}}

    if chosen:
        stage("speed", run_speed)

    def run_tasks():
        configs = [Config("dense")]
        for d in (0.5, 0.75):
            glass_lam = lam if lam not in (0.0, 1.0) else DEFAULT_LAMBDA_WITH_PRIOR   # GLASS, not its end points
            configs += [Config("griffin", d), Config("glass", d, glass_lam, kind)]
        records = tasks.run_tasks(backend, tasks.TASKS, configs, priors, task_limit)
        return {"model": model_path.name, "limit": task_limit, "results": records}

    stage("tasks", run_tasks)

    def run_cross():
        llama = evaluate.LlamaBackend(model_path, n_ctx=1024, threads=threads, tokenizer=backend.tokenizer)
        prompts = spread(datasets.mtbench_prompts("eval"), 6)
        pairs = evaluate.dense_continuations(backend, prompts, 64, continuation_cache(model_path, "torch"))
        configs = [Config("dense")]
        for d in (0.5, 0.75):
            configs += [Config("griffin", d), Config("static", d, prior=kind), Config("glass", d, lam, kind)]
        return evaluate.cross_backend(backend, llama, pairs, configs, priors, progress=True)

    from .runtime import GlassUnavailableError

    try:
        stage("cross", run_cross)
    except GlassUnavailableError as e:     # a stock llama-cpp-python: the torch results stand on their own
        print(f"skipping the cross-backend check: {e}", file=sys.stderr)
    return [p for s in STAGES if (p := out_dir / f"{name}-{s}.json").exists()]


# -- docs/results.md ------------------------------------------------------------------------------------------------

def _eval_table(records: list[Record], split: str = "all") -> list[str]:
    rows = [r for r in records if r.split == split]
    densities = sorted({r.density for r in rows if r.method != "dense"})
    names = list(dict.fromkeys(r.setting for r in rows if r.method != "dense"))
    dense = next((r for r in rows if r.method == "dense"), None)
    out = ["| setting | " + " | ".join(f"d={d:g} PPL | d={d:g} KL" for d in densities) + " |",
           "|---|" + "---:|---:|" * len(densities)]
    if dense:
        out.append("| dense | " + " | ".join(f"{dense.ppl:.3f} | 0" for _ in densities) + " |")
    for name in names:
        cells = []
        for d in densities:
            r = next((r for r in rows if r.setting == name and r.density == d), None)
            cells.append("- | -" if r is None else f"{r.ppl:.3f} | {r.kl:.4f}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def _changes(previous: dict, records: list[Record]) -> list[str]:
    """KL of each setting scored in both the previous eval (another last-layer rule) and this one, at every density
    both have: what the rule change moved."""
    old = {(r.setting, r.density): r for r in map(Record.from_json, previous["results"]) if r.split == "all"}
    new = [r for r in records if r.split == "all" and r.method != "dense" and (r.setting, r.density) in old]
    if not new:
        return []
    out = ["What changed against the previous tables (same prompts and continuations; the last layer was then "
           "selected from the prompt's statistic for every method, now the runtime's rule: GRIFFIN and the oracle "
           "keep it dense, GLASS and static select it by the prior alone), KL before -> after:", "",
           "| setting | density | KL before | KL after | change |", "|---|---:|---:|---:|---:|"]
    for r in sorted(new, key=lambda r: (r.density, r.setting)):
        before = old[(r.setting, r.density)].kl
        out.append(f"| {r.setting} | {r.density:g} | {before:.4f} | {r.kl:.4f} | {100 * (r.kl - before) / before:+.1f}% |")
    return out


def _gap_table(gap: dict) -> list[str]:
    """tools/backend_gap.py: GLASS's KL gain over GRIFFIN as one factor at a time moves from the torch reference to
    a user's llama-backend run."""
    labels = list(gap["steps"][0]["gain_pct"])
    out = [f"### From the torch reference to a user's llama-backend run, one factor at a time", "",
           f"`tools/backend_gap.py`: {gap['n_prompts']} prompts, {gap['gen_tokens']} tokens, density "
           f"{gap['density']:g}; each row changes one thing against the row above. KL gain of GLASS over GRIFFIN "
           "(positive: GLASS closer to dense) and GRIFFIN's own KL:", "",
           "| step | GRIFFIN KL | " + " | ".join(f"{x} gain" for x in labels) + " |",
           "|---|---:|" + "---:|" * len(labels)]
    for st in gap["steps"]:
        griffin = next(v for k, v in st["kl"].items() if k.startswith("griffin"))
        out.append(f"| {st['step']} | {griffin:.4f} | " + " | ".join(
            f"{st['gain_pct'][x]:+.1f}%" for x in labels) + " |")
    return out + [""]


def _eval_scope(records: list[Record]) -> str:
    """The methods (and GLASS's lambdas) an eval scored: a run may leave some out (`results --eval-methods`)."""
    methods = list(dict.fromkeys(r.method for r in records))
    lambdas = sorted({r.lam for r in records if r.method == "glass" and r.lam is not None})
    names = [f"glass at lambda {', '.join(f'{x:g}' for x in lambdas)}" if m == "glass" and lambdas else m
             for m in methods]
    left_out = [m for m in ("static", "random") if m not in methods]
    return ", ".join(names) + (f" (not run: {', '.join(left_out)})" if left_out else "")


def _is_choice(g: Gain, choice: dict | None) -> bool:
    """The sweep's whole choice: prior kind and lambda, and the schedule and layer split chosen for them."""
    if not choice:
        return False
    r, schedule = g.record, choice.get("schedule") or {"warmup": 0, "refresh": 0}
    split = (choice.get("layer_split") or {}).get("layer_split", 0.0)
    return (r.prior, r.lam, r.warmup, r.refresh, r.layer_split) == (
        choice["prior"], choice["lambda"], schedule["warmup"], schedule["refresh"], split)


def _gain_table(records: list[Record], choice: dict | None, split: str = "all") -> list[str]:
    gains = evaluate.improvements(records, split)
    densities = sorted({g.record.density for g in gains})
    out = ["| density | swept GLASS setting | PPL gain | KL gain | best GLASS setting (by KL) | PPL gain | KL gain |",
           "|---:|---|---:|---:|---|---:|---:|"]
    for d in densities:
        here = [g for g in gains if g.record.density == d and g.record.method == "glass"]
        if not here:
            continue
        best = max(here, key=lambda g: g.kl_gain_pct)
        swept = next((g for g in here if _is_choice(g, choice)), None)
        s = f"{swept.record.setting} | {swept.ppl_gain_pct:+.2f}% | {swept.kl_gain_pct:+.2f}%" if swept else "- | - | -"
        out.append(f"| {d:g} | {s} | {best.record.setting} | {best.ppl_gain_pct:+.2f}% | {best.kl_gain_pct:+.2f}% |")
    return out


def _summary(records: list[Record], choice: dict | None) -> list[str]:
    """Sentences computed from the records: GLASS against GRIFFIN per density, wins and losses."""
    gains = [g for g in evaluate.improvements(records) if g.record.method == "glass"]
    if not gains:
        return []
    out = []
    if choice and choice["prior"]:
        swept = sorted((g for g in gains if _is_choice(g, choice)), key=lambda g: g.record.density)
        if swept:
            per = ", ".join(f"{g.record.density:g}: PPL {g.ppl_gain_pct:+.1f}% / KL {g.kl_gain_pct:+.1f}%"
                            for g in swept)
            out.append(f"**Swept setting ({swept[0].record.setting}) against GRIFFIN**, by density: {per}.")
    best_ppl = max(gains, key=lambda g: g.ppl_gain_pct)
    best_kl = max(gains, key=lambda g: g.kl_gain_pct)
    out.append(f"Largest gains over all GLASS settings: PPL {best_ppl.ppl_gain_pct:+.1f}% "
               f"({best_ppl.record.label}), KL {best_kl.kl_gain_pct:+.1f}% ({best_kl.record.label}); the paper "
               "reports up to 45.10% and 25.73%.")
    losses = [g for g in gains if g.kl_gain_pct < 0]
    if losses:
        out.append("GLASS is worse than GRIFFIN in KL for: " + ", ".join(g.record.label for g in losses) + ".")
    return [" ".join(out)]


def _sweep_choices(choice: dict) -> list[str]:
    """The schedule and layer-split candidates of a sweep and what it chose, as markdown."""
    out = []
    if "schedule" in choice:
        s = choice["schedule"]
        out += [f"Schedules for that setting (at most {s['max_dense_share']:.0%} of an answer decoded dense):", "",
                "| warm-up W | refresh R | share decoded dense | mean KL |", "|---:|---:|---:|---:|"]
        out += [f"| {c['warmup']} | {c['refresh']} | {c['dense_share']:.3f} | {c['mean_kl']:.4f} |"
                for c in s["candidates"]]
        out += ["", f"Chosen: **W = {s['warmup']}, R = {s['refresh']}** (`glass.warmup`, `glass.refresh`).", ""]
    if "layer_split" in choice:
        s = choice["layer_split"]
        out += ["Per-layer density under that schedule (strength of the split by prior concentration, 0 = uniform; "
                "every split keeps the same number of neurons):", "", "| split | mean KL |", "|---:|---:|"]
        out += [f"| {c['layer_split']:g} | {c['mean_kl']:.4f} |" for c in s["candidates"]]
        what = "uniform density, no `glass.layer_scale`" if not s["layer_split"] else "written as `glass.layer_scale`"
        out += ["", f"Chosen: **split {s['layer_split']:g}** ({what}).", ""]
    return out


def _speed_table(speed: dict, records: list[Record]) -> list[str]:
    """Answer speed beside KL per density: plain GLASS and the sweep's schedule/split, against GRIFFIN and the
    oracle, and the issue's goal at density 0.5 (KL at most halfway from GRIFFIN to the oracle, at >= 90% of plain
    GLASS's speed-up)."""
    sw = speed["swept"]
    plain = Config("glass", 0.5, sw["lambda"], sw["prior"])
    gains = {g.record.config: g for g in evaluate.improvements(records)}
    kl = {r.config: r.kl for r in records if r.split == "all"}
    label = Config("glass", 0.5, sw["lambda"], sw["prior"], sw["warmup"], sw["refresh"],
                   layer_split=sw["layer_split"]).name
    out = [f"Whole {speed['gen_tokens']}-token answers after a 256-token prompt, greedy, one context per setting on "
           f"the GLASS GGUF (`glass_gguf.answer_speed`, {speed['results'][0]['threads']} threads, medians of "
           f"{speed['results'][0]['repeats']}): the warm-up's and refreshes' dense tokens and recompaction are in "
           f"the time. Swept setting: {label}.", "",
           "| density | dense tok/s | GLASS tok/s | swept tok/s | swept / GLASS speed-up | KL GRIFFIN | KL oracle | "
           "KL GLASS (gap closed) | KL swept (gap closed) |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    goal = None
    for row in speed["results"]:
        d = row["density"]
        base = Config("glass", d, plain.lam, plain.prior)
        swept = Config("glass", d, plain.lam, plain.prior, sw["warmup"], sw["refresh"], layer_split=sw["layer_split"])
        s_row = row.get("swept", row["glass"])
        g_kl, o_kl = kl.get(Config("griffin", d)), kl.get(Config("oracle", d))
        cells = []
        for c in (base, swept):
            gap = gains[c].gap_closed_pct if c in gains else None
            cells.append(f"{kl[c]:.4f} ({gap:.0f}%)" if c in kl and gap is not None else
                         f"{kl[c]:.4f}" if c in kl else "-")
        kept = s_row["speedup"] / row["glass"]["speedup"]
        out.append(f"| {d:g} | {row['dense']['answer_tok_s']:.1f} | {row['glass']['answer_tok_s']:.1f} "
                   f"({row['glass']['speedup']:.2f}x) | {s_row['answer_tok_s']:.1f} ({s_row['speedup']:.2f}x) | "
                   f"{100 * kept:.0f}% | {g_kl if g_kl is None else f'{g_kl:.4f}'} | "
                   f"{o_kl if o_kl is None else f'{o_kl:.4f}'} | {cells[0]} | {cells[1]} |")
        if d == 0.5 and g_kl is not None and o_kl is not None and swept in kl:
            gain = (s_row["speedup"] - 1) / (row["glass"]["speedup"] - 1) if row["glass"]["speedup"] > 1 else None
            goal = (kl[swept] <= (g_kl + o_kl) / 2, kept >= 0.9, kl[swept], (g_kl + o_kl) / 2, kept, gain)
    out.append("")
    if goal:
        gain = "" if goal[5] is None else f", {100 * goal[5]:.0f}% of its gain over dense"
        out += [f"Goal at density 0.5: KL {goal[2]:.4f} against the halfway mark {goal[3]:.4f} "
                f"({'met' if goal[0] else 'not met'}); {100 * goal[4]:.0f}% of plain GLASS's speed-up "
                f"({'met' if goal[1] else 'not met'}, 90% asked{gain}). Answer times are medians of 3 answers "
                "per setting: a few percent of noise.", ""]
    return out


def _two_level_section(name: str, data: dict) -> list[str]:
    """Two-level decoding (docs/two-level.md) beside GRIFFIN, GLASS and the oracle, from its own eval run."""
    from .two_level_table import render as render_two_level

    return ["### Two-level decoding beside GRIFFIN, GLASS and the oracle", "",
            "Each decoded token keeps the share f (per token) of the prompt's selection with the largest gate "
            "activations; its density is the share of FFN rows a token reads, so the rows compare at equal bytes. "
            "GLASS here: the activation prior at lambda 0.5 without warm-up. Off by default in the runtime "
            "(GLASS_GGUF_TOKEN_FRACTION): on this CPU it decodes no faster than GLASS at the same density "
            "(docs/two-level.md, measured speed). Reproduce: `glass-gguf eval MODEL --prior PRIOR --methods "
            "dense,griffin,glass,two-level,oracle --densities 0.5,0.75 --lambdas 0.5 --token-fractions F "
            f"-o docs/results/{name}-two-level.json`.", "", render_two_level(data), ""]


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def render(out_dir: Path, md_path: Path) -> Path:
    """docs/results.md and its plots from the JSON files in out_dir (no model is run)."""
    from .plots import plot_quality

    out_dir, md_path = Path(out_dir), Path(md_path)
    lines = ["# Quality: GLASS against GRIFFIN (short prompt, long generation)", "",
             "Generated by `glass-gguf results` from the JSON files in `docs/results/` (do not edit by hand).", "",
             "Protocol (docs/design.md, quality protocol): for every MT-Bench first-turn prompt (chat template applied;",
             "a base model without one, Gemma 3 270M, gets the plain prompt and a blank line) the dense",
             "model generates a greedy continuation; every setting selects its FFN neurons from the dense prompt",
             "prefill and scores that continuation teacher-forced under the fixed mask. PPL is the perplexity of the",
             "continuation, KL the mean per-token KL(p_dense || p_setting). The first continuation token comes from",
             "the dense prefill and is not scored. GRIFFIN = lambda 0 (prompt only), static = lambda 1 (prior only),",
             "glass-A / glass-I = rank aggregation with the activation / impact prior; random keeps k random",
             "neurons; oracle selects from the dense continuation's own statistic (what no runtime can know: the",
             "yardstick). W / R: the runtime's warm-up and refresh (the first W generated tokens, then every R-th,",
             "decode dense and join the statistic; docs/refresh.md), scored exactly as the runtime decodes them;",
             "split: per-layer density from the prior's concentration, the same total neurons. Priors:",
             "self-generated calibration text (`glass-gguf prior`, seed 0). The prior kind and lambda, then the",
             "schedule, then the split are chosen by `glass-gguf sweep` on MT-Bench prompts (every 4th question;",
             "how many per model: its Sweep heading) that the evaluation never sees. Gains are relative to GRIFFIN at the same density:",
             "100 * (GRIFFIN - GLASS) / GRIFFIN, positive = GLASS better; gap closed = the share of the distance",
             "from GRIFFIN's KL to the oracle's a setting covers. The paper reports up to 45.10% lower PPL and",
             "25.73% lower KL.", "",
             "Reproduce: the sweeps with `glass-gguf results --models NAME --stages sweep --force` (20 sweep",
             "prompts for SmolLM2, `--n-sweep-prompts 10` for the larger models); then, as measured here after the",
             "last-layer fix, `glass-gguf results --models smollm2-135m --n-prompts 24 --stages eval,tasks,cross",
             "--force --eval-lambdas swept` and `glass-gguf results --models qwen2.5-coder-0.5b --n-prompts 24",
             "--stages eval,cross --force --eval-lambdas swept --eval-methods dense,griffin,glass,oracle --densities",
             "0.5,0.75` (GLASS at the sweep's lambda only); `--eval-lambdas all` scores every lambda of the grid. The",
             "answer speed: `--stages speed`. A section marked as measured under the previous last-layer rule has",
             "not been rerun since the fix.", ""]
    for name in assets.MODELS:
        ev, sw, tk = (_load(out_dir / f"{name}-{s}.json") for s in ("eval", "sweep", "tasks"))
        cross = _load(out_dir / f"{name}-cross.json")
        if not (ev or sw or tk or cross):
            continue
        lines += [f"## {name}", ""]
        info = next((x["priors"] for x in (ev, sw, tk, cross) if x and "priors" in x), None)
        if info:
            lines += ["Priors: " + "; ".join(f"{k}: {v['tokens']} tokens ({v['source']})" for k, v in info.items())
                      + ".", ""]
        choice = sw["choice"] if sw else None
        if sw:
            lines += [f"### Sweep ({sw['n_prompts']} prompts, {sw['gen_tokens']} generated tokens, "
                      f"densities {sorted({r['density'] for r in sw['results']})})", "",
                      "| prior | lambda | mean KL over the swept densities |", "|---|---:|---:|"]
            for c in sorted(sw["choice"]["candidates"], key=lambda c: c["mean_kl"]):
                lines.append(f"| {c['prior'] or '- (GRIFFIN)'} | {c['lambda']:g} | {c['mean_kl']:.4f} |")
            lines += ["", f"Chosen: **{choice['prior'] or 'none'} prior, lambda {choice['lambda']:g}**, written into "
                      "`glass.lambda` of the model's GLASS GGUF (`glass-gguf results` writes it under the cache's "
                      "`glass/` folder; `glass-gguf sweep MODEL --prior ... -o GLASS.gguf` does the same for any "
                      "model).", ""]
            lines += _sweep_choices(choice)
            if sw.get("last_layer_rule") != LAST_LAYER_RULE:
                lines += ["This sweep ran under the previous last-layer rule (GRIFFIN's last layer from the prompt's "
                          "statistic, GLASS's from both signals); rerun now, each candidate would change only in "
                          "that layer's selection. Its choice is kept.", ""]
        if ev:
            png = out_dir / f"{name}-eval.png"
            records = [Record.from_json(r) for r in ev["results"]]
            plot_quality(records, png, f"{name}: {ev['n_prompts']} MT-Bench prompts, "
                         f"{ev['gen_tokens']} generated tokens ({ev['backend']})")
            lines += [f"### Evaluation ({ev['backend']} backend, {ev['n_prompts']} prompts, up to "
                      f"{ev['gen_tokens']} generated tokens, {ev['mean_generated']:.0f} on average)", "",
                      f"Scored: {_eval_scope(records)}.", "",
                      f"![PPL and KL against density]({png.relative_to(md_path.parent)})", ""]
            if ev.get("last_layer_rule") != LAST_LAYER_RULE:
                lines += ["**Measured under the previous last-layer rule** (the torch reference selected the last "
                          "layer of GRIFFIN and the oracle from the prompt's or the answer's statistic, which the "
                          "runtime never collects): these rows describe a method the runtime does not run; rerun "
                          f"with `glass-gguf results --models {name} --stages eval --force`.", ""]
            lines += _summary(records, choice) + [""]
            previous = _load(out_dir / f"{name}-eval-previous.json")
            if previous and ev.get("last_layer_rule") == LAST_LAYER_RULE:
                lines += _changes(previous, records) + [""]
            lines += _eval_table(records) + [""]
            lines += ["GLASS against GRIFFIN, all prompts:", ""] + _gain_table(records, choice) + [""]
            speed = _load(out_dir / f"{name}-speed.json")
            if speed:
                lines += ["#### Speed beside quality", ""] + _speed_table(speed, records)
            median = records[0].median_prompt_tokens
            for split, what in (("short", f"prompts of at most {median:.0f} tokens"),
                                ("long", f"prompts longer than {median:.0f} tokens")):
                if any(r.split == split for r in records):
                    lines += [f"GLASS against GRIFFIN, {what} (chat template included):", ""]
                    lines += _gain_table(records, choice, split) + [""]
        if cross:
            lines += ["### Cross-backend check (llama.cpp runtime against the PyTorch reference)", "",
                      f"{cross['n_prompts']} prompts, {cross['gen_tokens']} tokens, the same prompt and "
                      "continuation tokens on both backends (the llama backend: the patched llama.cpp on the Q4 "
                      "GGUF in manual mode; torch: the dequantized float32 checkpoint). Each KL is against the "
                      "backend's own dense model. tests/test_evaluate.py guards, on a stock GGUF and on a GLASS "
                      "GGUF, a mean Jaccard of at least 0.93, at least 0.8 in every layer, the same dense layers "
                      "on both sides and a KL ratio within [2/3, 3/2].", "",
                      "| setting | mean Jaccard | worst layer (mean over prompts) | worst prompt and layer | "
                      "KL torch | KL llama |", "|---|---:|---:|---:|---:|---:|"]
            for r in cross["settings"]:
                worst = (f"{r['jaccard_layer_min']:.4f} (layer {r['worst_layer']})" if "jaccard_layer_min" in r
                         else "-")
                lines.append(f"| {r['label']} | {r['jaccard_mean']:.4f} | {worst} | {r['jaccard_min']:.4f} | "
                             f"{r['kl_torch']:.4f} | {r['kl_llama']:.4f} |")
            lines.append("")
        gap = _load(out_dir / f"{name}-gap.json")
        if gap:
            lines += _gap_table(gap)
        two_level = _load(out_dir / f"{name}-two-level.json")
        if two_level:
            lines += _two_level_section(name, two_level)
        if tk:
            lines += [f"### Classification (GRIFFIN's rule, first {tk['limit']} validation items per task)", "",
                      "acc / acc_norm (log-likelihood per answer character, as lm-eval-harness). With "
                      f"{tk['limit']} items an accuracy near 0.5 has a standard error of about "
                      f"{100 * (0.25 / tk['limit']) ** 0.5:.0f} points: smaller differences are noise.", ""]
            names = list(dict.fromkeys(r["label"] for r in tk["results"]))
            task_names = list(dict.fromkeys(r["task"] for r in tk["results"]))
            lines += ["| setting | " + " | ".join(task_names) + " |", "|---|" + "---:|" * len(task_names)]
            for n in names:
                cells = [next(f"{r['acc']:.3f} / {r['acc_norm']:.3f}" for r in tk["results"]
                              if r["label"] == n and r["task"] == t) for t in task_names]
                lines.append(f"| {n} | " + " | ".join(cells) + " |")
            lines.append("")
    return write_text(md_path, "\n".join(lines) + "\n")
