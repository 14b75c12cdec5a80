"""The quality tables of docs/two-level.md, rendered from docs/results/*-two-level.json (the JSON of `glass-gguf eval
--methods dense,griffin,glass,two-level,oracle`).

    python -m glass_gguf.two_level_table [docs/two-level.md]

replaces, for every docs/results/NAME-two-level.json, the block between `<!-- two-level:NAME begin -->` and
`<!-- two-level:NAME end -->`, the `runtime-NAME` block from docs/results/NAME-two-level-runtime.json (bench results
of the runtime's two-level decoding beside single-level GLASS), and the `kernel` block from
docs/results/two-level-kernel.json
(tools/two_level_kernel_bench.cpp).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .doc_blocks import replace_block
from .evaluate import Record

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
DOC = RESULTS.parent / "two-level.md"
ORDER = {"griffin": 0, "glass": 1, "two-level": 2, "oracle": 3}


def _ratio(a: float, b: float | None) -> str:
    return "" if b is None or b <= 0 else f"{a / b:.2f}"


def render(data: dict) -> str:
    """One table per file: every setting at every density, with its KL against the oracle's and GLASS's at the
    same density (the share of FFN rows a decoded token reads)."""
    records = [Record.from_json(r) for r in data["results"]]
    rows = [r for r in records if r.split == "all" and r.method != "dense"]
    oracle = {r.density: r.kl for r in rows if r.method == "oracle"}
    glass = {r.density: r.kl for r in rows if r.method == "glass"}
    out = [f"{data['model']}, {data['n_prompts']} prompts, {data['gen_tokens']} tokens, {data['backend']} backend "
           f"(mean answer {data['mean_generated']:.0f} tokens).",
           "",
           "| density (rows a token reads) | setting | selection density | per token | KL | PPL | KL / oracle's | "
           "KL / GLASS's |",
           "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r.density, ORDER.get(r.method, 9), -r.token_fraction)):
        c = r.config
        per_token = f"{r.token_fraction:g}" if r.method == "two-level" else ""
        out.append(f"| {r.density:g} | {r.setting} | {c.superset_density:.3f} | {per_token} | {r.kl:.4f} | "
                   f"{r.ppl:.3f} | {_ratio(r.kl, oracle.get(r.density))} | {_ratio(r.kl, glass.get(r.density))} |")
    return "\n".join(out)


def render_kernel(data: dict) -> str:
    """The prototype kernels' time per token against GLASS's compacted matrices at the same bytes."""
    g, t = data["glass"], data["two_level"]
    return "\n".join([
        f"{data['model_shape']}, {data['threads']} thread, median of {data['repeats']} tokens (random weights).",
        "",
        "| layout | ms per token | MB per token | gate ms | selection ms | up ms | down ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| GLASS @{g['density']:g} (compacted, k = {g['k']}) | {g['ms_per_token']:.2f} | {g['mb_per_token']:.1f} "
        "| | | | |",
        f"| two-level @{t['density']:g} (selection {t['selection_density']:g}, k = {t['k']}; "
        f"{t['kept_per_token']} per token) | {t['ms_per_token']:.2f} | {t['mb_per_token']:.1f} | {t['gate_ms']:.2f} | "
        f"{t['select_ms']:.2f} | {t['up_ms']:.2f} | {t['down_ms']:.2f} |",
        "",
        f"Two-level takes {t['ms_per_token'] / g['ms_per_token']:.2f}x GLASS's time for the same bytes."])


def render_runtime(data: dict) -> str:
    """The runtime's two-level decoding (patch 0012) against single-level GLASS: `glass-gguf bench` results, each
    against dense in its own run."""
    out = [f"{data['model']}, {data['threads']} threads, `glass-gguf bench` ({data['prompt_tokens']}-token prompt, "
           f"{data['gen_tokens']} tokens, {data['repeats']} repeats; medians over rounds of 16 tokens).", "",
           "| setting | rows a token reads | selection density | token fraction | dense tok/s | tok/s | speed-up (IQR) "
           "| bytes model |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["runs"]:
        name = "two-level" if r["token_fraction"] < 1 else "GLASS"
        out.append(f"| {name} | {r['density']:g} | {r['selection_density']:.3f} | {r['token_fraction']:g} | "
                   f"{r['dense_tok_s']:.1f} | {r['glass_tok_s']:.1f} | {r['speedup']:.2f} "
                   f"({r['speedup_q1']:.2f}-{r['speedup_q3']:.2f}) | {r['ideal_speedup']:.2f} |")
    return "\n".join(out)


def quality_files(results: Path = RESULTS) -> list[Path]:
    """The eval results NAME-two-level.json (not the frontier runs NAME-frontier-two-level.json, docs/frontier.md)."""
    return sorted(p for p in results.glob("*-two-level.json") if not p.name.endswith("-frontier-two-level.json"))


def render_doc(doc: Path = DOC, results: Path = RESULTS) -> str:
    text = doc.read_text()
    for path in quality_files(results):
        name = path.name.removesuffix("-two-level.json")
        text = replace_block(text, f"two-level:{name}", render(json.loads(path.read_text())))
    for path in sorted(results.glob("*-two-level-runtime.json")):
        name = path.name.removesuffix("-two-level-runtime.json")
        text = replace_block(text, f"two-level:runtime-{name}", render_runtime(json.loads(path.read_text())))
    kernel = results / "two-level-kernel.json"
    if kernel.exists():
        text = replace_block(text, "two-level:kernel", render_kernel(json.loads(kernel.read_text())))
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    doc = Path(argv[0]) if argv else DOC
    doc.write_text(render_doc(doc))
    print(f"rendered {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
