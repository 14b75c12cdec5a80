"""Decode speed of GLASS across quantization types, densities and thread counts: `glass-gguf bench` per cell.

    .venv/bin/python tools/bench_matrix.py MODEL.gguf -o docs/results/NAME-bench.json \
        --types Q4_K_M,Q6_K,Q8_0 --densities 0.5,0.75,0.9 --threads 2 --repeats 3

Each type other than the model's own is made from MODEL by llama.cpp's quantizer (cached under
~/.cache/glass-gguf/bench-matrix/; speed does not depend on the weights' values). Every cell runs in a process of its
own (resident memory is per process). Cells already in the output file are skipped, so an interrupted run continues
where it stopped; the file is rewritten atomically after every cell.
Render the table into docs/runtime.md with `python -m glass_gguf.bench_table`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from glass_gguf.assets import cache_dir
from glass_gguf.atomic import write_text
from glass_gguf.quantize import file_type_name, quantize


def model_file(model: Path, qtype: str) -> Path:
    if file_type_name(model) == qtype:
        return model
    out = cache_dir() / "bench-matrix" / f"{model.name.removesuffix('.gguf')}.{qtype}.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"quantizing {model.name} to {qtype}", file=sys.stderr)
        quantize(model, out, qtype, threads=2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--name", help="the model's name in the table [default: the file's stem]")
    ap.add_argument("--types", default="", help="file types, comma-separated [default: the model's own]")
    ap.add_argument("--densities", default="0.5,0.75,0.9")
    ap.add_argument("--threads", default="2", help="thread counts, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    types = [t.strip() for t in args.types.split(",") if t.strip()] or [file_type_name(args.model)]
    result = json.loads(args.output.read_text()) if args.output.exists() else {"rows": []}
    result["model"] = args.name or args.model.name.removesuffix(".gguf")
    done = {(r["type"], r["density"], r["threads"]) for r in result["rows"]}
    for qtype in types:
        path = model_file(args.model, qtype)
        for threads in (int(t) for t in args.threads.split(",")):
            for density in (float(d) for d in args.densities.split(",")):
                if (qtype, density, threads) in done:
                    continue
                print(f"{qtype} density {density} threads {threads}", file=sys.stderr)
                run = subprocess.run([sys.executable, "-m", "glass_gguf.cli", "bench", str(path), "--density",
                                      str(density), "--threads", str(threads), "--repeats", str(args.repeats),
                                      "--json"], capture_output=True, text=True)
                if run.returncode != 0:
                    raise SystemExit(f"bench failed on {path.name}: {run.stderr.strip().splitlines()[-1:]}")
                r = json.loads(run.stdout)
                result["rows"].append({"type": qtype, **r})
                write_text(args.output, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
