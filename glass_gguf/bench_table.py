"""The decode-speed table of docs/runtime.md, rendered from docs/results/*-bench.json (tools/bench_matrix.py).

    python -m glass_gguf.bench_table [docs/runtime.md]

replaces the block between `<!-- bench-matrix begin -->` and `<!-- bench-matrix end -->`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
DOC = RESULTS.parent / "runtime.md"
BEGIN, END = "<!-- bench-matrix begin -->", "<!-- bench-matrix end -->"

HEADER = ("| model | type | threads | density | dense tok/s | GLASS tok/s | speed-up (IQR) | bytes model | "
          "share of bytes model | ceiling | share of ceiling | compaction ms | decode RSS dense / GLASS MB | "
          "pruned FFN MB |\n" + "|---" * 14 + "|")


def row(model: str, r: dict) -> str:
    ceiling = "none" if r["ceiling_speedup"] is None else f"{r['ceiling_speedup']:.2f}"
    share = "" if r["share_of_ceiling"] is None else f"{r['share_of_ceiling']:.2f}"
    return (f"| {model} | {r['type']} | {r['threads']} | {r['density']:g} | {r['dense_tok_s']:.1f} | "
            f"{r['glass_tok_s']:.1f} | {r['speedup']:.2f} ({r['speedup_q1']:.2f}-{r['speedup_q3']:.2f}) | "
            f"{r['ideal_speedup']:.2f} | {r['speedup'] / r['ideal_speedup']:.2f} | {ceiling} | {share} | "
            f"{r['finalize_ms']:.0f} | {r['decode_rss_dense_mb']:.0f} / {r['decode_rss_glass_mb']:.0f} | "
            f"{r['pruned_ffn_mb']:.0f} |")


def render(results: Path = RESULTS) -> str:
    lines = [HEADER]
    for path in sorted(results.glob("*-bench.json")):
        data = json.loads(path.read_text())
        for r in sorted(data["rows"], key=lambda r: (r["type"], r["threads"], r["density"])):
            lines.append(row(data["model"], r))
    return "\n".join(lines)


def update(doc: Path = DOC, results: Path = RESULTS) -> bool:
    """Rewrite the block in doc; True when it changed."""
    text = doc.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{doc}: no {BEGIN!r} ... {END!r} markers")
    new = text[: start + len(BEGIN)] + "\n" + render(results) + "\n" + text[end:]
    if new != text:
        doc.write_text(new)
    return new != text


if __name__ == "__main__":
    update(Path(sys.argv[1]) if len(sys.argv) > 1 else DOC)
