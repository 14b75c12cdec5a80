"""The soak table of docs/deploying.md, rendered from docs/results/*-soak-*.json (`glass-gguf soak --json`).

    python -m glass_gguf.soak_table [docs/deploying.md]

replaces the block between `<!-- soak begin -->` and `<!-- soak end -->`, and draws docs/soak.png from the runs that
recorded RSS after every request.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .doc_blocks import replace_block

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
DOC = RESULTS.parent / "deploying.md"


def render(results: Path = RESULTS) -> str:
    out = ["| model | server | requests (second turns) | tokens per answer | answers past the swap, sparse | "
           "answers differing from a fresh server's | RSS after warm-up / at the end MB | growth | "
           "the server's prompt cache after warm-up / at the end MB | growth without it | "
           "growth after the furthest position (request) | minutes |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for path in sorted(results.glob("*-soak-*.json")):
        r = json.loads(path.read_text())
        out.append(f"| {Path(r['model']).name} | {r['server']} | {r['requests']} ({r['two_turn_requests']}) | "
                   f"{r['max_tokens']} | {r['sparse_selections']} | {r['answers_differing_from_fresh']} | "
                   f"{r['rss_after_warmup_mb']:.0f} / {r['rss_end_mb']:.0f} | "
                   f"{r['rss_growth_after_warmup_pct']:+.1f}% | "
                   f"{r['prompt_cache_after_warmup_mb']:.0f} / {r['prompt_cache_end_mb']:.0f} | "
                   f"{r['rss_growth_after_warmup_without_prompt_cache_pct']:+.1f}% | {after_furthest(r)} | "
                   f"{r['seconds'] / 60:.0f} |")
    return "\n".join(out)


def after_furthest(r: dict) -> str:
    if "rss_growth_after_furthest_position_pct" not in r:
        return "not recorded"
    return f"{r['rss_growth_after_furthest_position_pct']:+.1f}% ({r['furthest_position_request']})"


def update(doc: Path = DOC, results: Path = RESULTS) -> None:
    doc.write_text(replace_block(doc.read_text(), "soak", render(results)))
    runs = [json.loads(p.read_text()) for p in sorted(results.glob("*-soak-*.json"))]
    runs = [r for r in runs if "rss_mb_by_request" in r]
    if runs:
        from .plots import plot_soak

        plot_soak(runs, doc.parent / "soak.png")


if __name__ == "__main__":
    update(Path(sys.argv[1]) if len(sys.argv) > 1 else DOC)
