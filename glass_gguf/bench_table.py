"""The decode-speed tables of docs/runtime.md, rendered from docs/results/*-bench.json (tools/bench_matrix.py) and
docs/results/*-memlimit.json (tools/memory_limit_bench.py).

    python -m glass_gguf.bench_table [docs/runtime.md]

replaces the blocks between `<!-- bench-matrix begin -->` and `<!-- bench-matrix end -->`, and between
`<!-- memory-limit begin -->` and `<!-- memory-limit end -->`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .doc_blocks import replace_block

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
DOC = RESULTS.parent / "runtime.md"
BLOCKS = {"bench-matrix": "render", "memory-limit": "render_memory_limit"}

HEADER = ("| model | type | threads | density | dense tok/s | GLASS tok/s | speed-up (IQR) | bytes model | "
          "share of bytes model | ceiling | share of ceiling | compaction ms | swap step / dense step ms | "
          "decode RSS dense / GLASS MB | "
          "pruned FFN MB |\n" + "|---" * 15 + "|")


def row(model: str, r: dict) -> str:
    ceiling = "none" if r["ceiling_speedup"] is None else f"{r['ceiling_speedup']:.2f}"
    share = "" if r["share_of_ceiling"] is None else f"{r['share_of_ceiling']:.2f}"
    return (f"| {model} | {r['type']} | {r['threads']} | {r['density']:g} | {r['dense_tok_s']:.1f} | "
            f"{r['glass_tok_s']:.1f} | {r['speedup']:.2f} ({r['speedup_q1']:.2f}-{r['speedup_q3']:.2f}) | "
            f"{r['ideal_speedup']:.2f} | {r['speedup'] / r['ideal_speedup']:.2f} | {ceiling} | {share} | "
            f"{r['finalize_ms']:.0f} | {r['swap_token_ms']:.1f} / {1000 / r['dense_tok_s']:.1f} | "
            f"{r['decode_rss_dense_mb']:.0f} / {r['decode_rss_glass_mb']:.0f} | "
            f"{r['pruned_ffn_mb']:.0f} |")


def render(results: Path = RESULTS) -> str:
    lines = [HEADER]
    for path in sorted(results.glob("*-bench.json")):
        data = json.loads(path.read_text())
        for r in sorted(data["rows"], key=lambda r: (r["type"], r["threads"], r["density"])):
            lines.append(row(data["model"], r))
    return "\n".join(lines)


def render_memory_limit(results: Path = RESULTS) -> str:
    lines = ["| model | file MB | limit MB | setting | tok/s, no limit | tok/s, limited | limited / unlimited | "
             "answer s, limited | peak MB, no limit / limited | tokens decoded sparse |", "|---" * 10 + "|"]
    for path in sorted(results.glob("*-memlimit.json")):
        data = json.loads(path.read_text())
        by_setting: dict[float, dict] = {}
        for r in data["rows"]:
            by_setting.setdefault(r["density"], {})["limited" if r["limit_mb"] else "free"] = r
        for density, runs in by_setting.items():
            free, lim = runs.get("free", {}), runs.get("limited", {})
            setting = "dense" if density >= 1 else f"GLASS @{density:g}"
            limit = next(r["limit_mb"] for r in data["rows"] if r["limit_mb"])
            if "error" in lim or "error" in free:
                lines.append(f"| {data['model']} | {data['file_mb']:.0f} | {limit:.0f} | {setting} | "
                             f"{free.get('error', '')} | {lim.get('error', '')} | | | | |")
                continue
            lines.append(f"| {data['model']} | {data['file_mb']:.0f} | {limit:.0f} | {setting} | "
                         f"{free['tok_s']:.1f} | {lim['tok_s']:.1f} | {lim['tok_s'] / free['tok_s']:.2f} | "
                         f"{lim['wall_s']:.1f} | {free['peak_mb']:.0f} / {lim['peak_mb']:.0f} | {lim['sparse_tokens']} |")
    return "\n".join(lines)


def update(doc: Path = DOC, results: Path = RESULTS) -> bool:
    """Rewrite every block in doc; True when it changed."""
    text = original = doc.read_text()
    for name, renderer in BLOCKS.items():
        try:
            text = replace_block(text, name, globals()[renderer](results))
        except ValueError as e:
            raise SystemExit(f"{doc}: {e}") from None
    if text != original:
        doc.write_text(text)
    return text != original


if __name__ == "__main__":
    update(Path(sys.argv[1]) if len(sys.argv) > 1 else DOC)
