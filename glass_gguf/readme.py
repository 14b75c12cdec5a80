"""The numbers on the README's first screen, rendered from the measured results (docs/results/*.json), never typed.

The README holds the rendering between two markers; tests/test_readme.py checks that it equals what this module
renders from the JSON in the repository, and `python -m glass_gguf.readme` writes it after a new measurement:

    <!-- first-screen results: begin ... -->
    ...
    <!-- first-screen results: end -->

Per default model and density: the speed-up of whole answers over dense (`glass-gguf results`, speed stage:
warm-up and compaction included) and the mean KL(dense || setting) on the evaluation prompts (eval stage), for
GRIFFIN (the prompt alone), plain GLASS (the swept prior kind and lambda) and the swept setting (what the model's
GLASS GGUF carries: also the warm-up W and the per-layer split). Then, per model with a frontier measurement
(docs/results/NAME-frontier.json, `glass-gguf frontier`), the iso-quality speed-up against a smaller quantization.
"""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results"
README = REPO / "README.md"
BEGIN = "<!-- first-screen results: begin (rendered from docs/results/*.json by python -m glass_gguf.readme) -->"
END = "<!-- first-screen results: end -->"
MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b", "gemma-3-270m")   # the packaged models, in README order
DEMO_MODEL, DEMO_DENSITY = "smollm2-135m", 0.9   # what `make demo` runs, and the density it typically picks


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _kl(records: list[dict], method: str, density: float, prior=None, lam=None, warmup=0, split=0.0) -> float | None:
    for r in records:
        if (r["method"] == method and r["density"] == density and r.get("split", "all") == "all"
                and r.get("warmup", 0) == warmup and (r.get("layer_split") or 0.0) == split
                and (prior is None or r["prior"] == prior) and (lam is None or r["lambda"] == lam)):
            return r["kl"]
    return None


def _setting(sw: dict) -> str:
    parts = [f"{sw['prior']} prior", f"lambda {sw['lambda']:g}"]
    if sw.get("warmup"):
        parts.append(f"W={sw['warmup']}")
    if sw.get("refresh"):
        parts.append(f"R={sw['refresh']}")
    if sw.get("layer_split"):
        parts.append(f"split {sw['layer_split']:g}")
    return ", ".join(parts)


def _x(speedup: float) -> str:
    text = f"{speedup:.2f}x"
    return f"**{text}**" if text > "1.00x" else text


def model_rows(name: str, results: Path = RESULTS) -> list[str]:
    """The table rows of one model: one per measured density, or none when its speed or eval JSON is missing."""
    speed, ev = _load(results / f"{name}-speed.json"), _load(results / f"{name}-eval.json")
    if speed is None or ev is None:
        return []
    sw, records = speed["swept"], ev["results"]
    title = f"{speed['model'].removesuffix('.gguf')} ({_setting(sw)})"
    rows = []
    for i, row in enumerate(sorted(speed["results"], key=lambda r: r["density"])):
        d = row["density"]
        swept = row.get("swept", row["glass"])
        kls = [_kl(records, "griffin", d),
               _kl(records, "glass", d, sw["prior"], sw["lambda"]),
               _kl(records, "glass", d, sw["prior"], sw["lambda"], sw["warmup"], sw["layer_split"] or 0.0)]
        kl_text = " / ".join("-" if k is None else f"{k:.3f}" for k in kls)
        rows.append(f"| {title if i == 0 else ''} | {d:g} | {_x(row['glass']['speedup'])} / "
                    f"{_x(swept['speedup'])} | {kl_text} |")
    return rows


def _best(entry: dict | None) -> str:
    return "none" if entry is None else f"{entry['label']} {entry['speedup']:.2f}x"


def frontier_rows(name: str, results: Path = RESULTS) -> list[str]:
    """One row per quality budget of a model's frontier: the fastest candidate of each family within it."""
    fr = _load(results / f"{name}-frontier.json")
    if fr is None:
        return []
    title = Path(fr["model"]).name.removesuffix(".gguf")
    rows = []
    for i, h in enumerate(fr["headline"]):
        best = h["best"]
        overall = h["overall"]
        two_level = _best(best["two-level"]) if "two-level" in best else "not measured"
        rows.append(f"| {title if i == 0 else ''} | {h['budget']} | {_best(best['quantization'])} | "
                    f"{_best(best['GLASS'])} | {_best(best['GLASS + quantization'])} | {two_level} | "
                    f"{'none' if overall is None else overall['label']} |")
    return rows


def render_frontier(results: Path = RESULTS) -> list[str]:
    rows = [r for name in MODELS for r in frontier_rows(name, results)]
    if not rows:
        return []
    measured = [name for name in MODELS if (results / f"{name}-frontier.json").exists()]
    missing = [name for name in MODELS if name not in measured]
    intro = ("Against what a user would do instead (docs/frontier.md, `glass-gguf frontier`): the fastest candidate of "
             "each family whose KL(model || candidate) or repeated 8-grams stay within the budget, speed-up over the "
             "dense model; a smaller quantization of the same model is the first column."
             + (f" Not measured yet: {', '.join(missing)}." if missing else ""))
    verdicts = [frontier_verdict(name, results) for name in measured]
    return ["", *textwrap.wrap(intro, 116), "",
            "| model | budget | quantization | GLASS | GLASS + quantization | two-level | fastest |",
            "|---|---|---|---|---|---|---|", *rows, "", *textwrap.wrap(" ".join(verdicts), 116)]


def frontier_verdict(name: str, results: Path = RESULTS) -> str:
    """One sentence per model: at which budgets GLASS (alone or on a quantization) is the fastest candidate, or
    that a smaller quantization beats it at every budget."""
    fr = _load(results / f"{name}-frontier.json")
    title = Path(fr["model"]).name.removesuffix(".gguf")
    winners = [(h["budget"], (h["overall"] or {}).get("family", "")) for h in fr["headline"]]
    glassy = lambda family: family.startswith("glass") or family == "two-level"   # noqa: E731  glass+Q3_K_M ...
    wins = [budget for budget, family in winners if glassy(family)]
    others = {family for _, family in winners if not glassy(family)}
    other = "a smaller quantization of the same model" if others == {"quant"} else "another candidate"
    if not wins:
        return f"On {title} GLASS loses: within every budget measured, the fastest candidate is {other}."
    rest = f"; within every other budget {other} is" if others else ""
    return f"On {title} GLASS, alone or on a quantization, is the fastest within {'; '.join(wins)}{rest}."


def render(results: Path = RESULTS) -> str:
    """The block between the markers (without them)."""
    rows = [r for name in MODELS for r in model_rows(name, results)]
    demo = _load(results / f"{DEMO_MODEL}-speed.json")
    demo_row = next((r for r in (demo or {}).get("results", []) if r["density"] == DEMO_DENSITY), None)
    ev = _load(results / f"{MODELS[0]}-eval.json") or {}
    intro = (
        f"Whole answers of {demo['gen_tokens'] if demo else '?'} tokens, {demo_row['threads'] if demo_row else '?'} "
        f"threads, speed-up over dense (bold: faster than dense); mean KL(dense || setting) over "
        f"{ev.get('n_prompts', '?')} MT-Bench prompts (0: the dense answer exactly; lower is closer). Plain GLASS / "
        "the swept setting the model's GLASS GGUF carries; GRIFFIN (prompt only, no prior) for reference:")
    lines = [
        *textwrap.wrap(intro, 116),
        "",
        "| model (swept setting) | density | speed-up GLASS / swept | KL GRIFFIN / GLASS / swept |",
        "|---|---:|---:|---:|",
        *rows,
    ]
    if demo_row:
        lines += ["", *textwrap.wrap(
            f"`make demo` (SmolLM2-135M) shows the lowest density whose answer stays as coherent as the dense one, "
            f"typically {DEMO_DENSITY:g}: expect about {demo_row['glass']['speedup']:.2f}x there.", 116)]
    lines += render_frontier(results)
    return "\n".join(lines)


def block(results: Path = RESULTS) -> str:
    return f"{BEGIN}\n{render(results)}\n{END}"


def current_block(text: str) -> str | None:
    """The block as it stands in README text, markers included, or None without markers."""
    start, end = text.find(BEGIN), text.find(END)
    return text[start:end + len(END)] if start >= 0 and end > start else None


def update(readme: Path = README, results: Path = RESULTS) -> bool:
    """Write the rendering into the README between its markers; True if it changed."""
    text = readme.read_text()
    old = current_block(text)
    if old is None:
        raise SystemExit(f"{readme}: no {BEGIN!r} ... {END!r} markers")
    new = block(results)
    if old == new:
        return False
    readme.write_text(text.replace(old, new))
    return True


if __name__ == "__main__":
    changed = update()
    print(f"{README}: {'updated' if changed else 'already up to date'}", file=sys.stderr)
