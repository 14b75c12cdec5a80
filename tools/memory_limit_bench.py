"""Decode speed under a memory limit smaller than the model: dense against GLASS, each a fresh llama-completion (the
patched build of `glass-gguf build-native`) inside a memory cgroup (v1 memory.limit_in_bytes, or v2 memory.max)
limited to a fraction of the model file's size.

    sudo .venv/bin/python tools/memory_limit_bench.py MODEL.gguf --fraction 0.7 --densities 0.5,0.75 \
        -o docs/results/NAME-memlimit.json

Dense decoding reads every weight for every token: when the file does not fit beside the process, its pages are
evicted and read again each token. GLASS, after its swap, reads its compacted copies and the non-FFN weights only,
and hands the dense FFN pages back, so it should decode from memory. The file's pages are dropped from the page cache
before every run (posix_fadvise), so that each run charges its own reads to its own cgroup. Weights are not repacked
(`--no-repack`): repacked copies are anonymous memory, which no limit can evict and GLASS cannot release. Needs root.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from glass_gguf.atomic import write_text
from glass_gguf.native import native_binaries

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
_EVAL = re.compile(r"eval time =\s*([\d.]+) ms /\s*(\d+) runs")
_SPARSE = re.compile(r"glass: (\d+) tokens decoded sparse")


class MemoryCgroup:
    """A fresh memory cgroup (v1 or v2) with an optional byte limit and its peak usage, removed on exit."""

    def __init__(self, limit: int | None):
        self.limit = limit
        v1, v2 = Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")
        name = f"glass-bench-{os.getpid()}-{time.monotonic_ns()}"
        if (v1 / "memory.limit_in_bytes").exists():
            self.path, self.limit_file, self.peak_file = v1 / name, "memory.limit_in_bytes", "memory.max_usage_in_bytes"
        elif (v2 / "cgroup.controllers").exists() and "memory" in (v2 / "cgroup.controllers").read_text():
            self.path, self.limit_file, self.peak_file = v2 / name, "memory.max", "memory.peak"
        else:
            raise SystemExit("no memory cgroup controller (cgroup v1 memory or v2 memory.max) on this machine")

    def __enter__(self):
        self.path.mkdir()
        if self.limit is not None:
            (self.path / self.limit_file).write_text(str(self.limit))
        return self

    def add_self(self):  # runs in the child before exec
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak_mb(self) -> float:
        return int((self.path / self.peak_file).read_text()) / 2**20

    def __exit__(self, *exc):
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run(binary: Path, model: Path, density: float, n_gen: int, limit: int | None) -> dict:
    """One answer of n_gen tokens: decode tok/s (llama.cpp's own eval timing), peak memory of the cgroup (page
    cache included), tokens decoded sparse."""
    drop_from_page_cache(model)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLASS_GGUF")}
    env.update({"GLASS_GGUF": "off"} if density >= 1 else {"GLASS_GGUF": "on", "GLASS_GGUF_DENSITY": str(density)})
    cmd = [str(binary), "-m", str(model), "-p", PROMPT, "-n", str(n_gen), "-no-cnv", "--temp", "0", "-t", "2",
           "-c", "512", "-fa", "off", "-fit", "off", "--no-repack", "-lv", "4", "--no-display-prompt"]
    with MemoryCgroup(limit) as cg:
        start = time.monotonic()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=cg.add_self, timeout=3600)
        wall = time.monotonic() - start
        peak = cg.peak_mb()
    if out.returncode != 0:
        return {"error": f"exit {out.returncode}" + (" (killed: out of memory)" if out.returncode == -9 else "")}
    evals = _EVAL.findall(out.stderr)
    ms, runs = float(evals[-1][0]), int(evals[-1][1])  # the last "eval time" line: the generated tokens
    sparse = _SPARSE.findall(out.stderr)
    return {"tok_s": 1000 * runs / ms, "wall_s": wall, "peak_mb": peak, "sparse_tokens": int(sparse[-1]) if sparse else 0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--fraction", type=float, default=0.7, help="the limit as a fraction of the file size")
    ap.add_argument("--densities", default="0.5,0.75")
    ap.add_argument("--gen-tokens", type=int, default=96)
    args = ap.parse_args(argv)

    binary = native_binaries() / "llama-completion"
    size = args.model.stat().st_size
    limit = int(args.fraction * size)
    rows = []
    for density in [1.0] + [float(d) for d in args.densities.split(",")]:
        for limited in (False, True):
            r = run(binary, args.model, density, args.gen_tokens, limit if limited else None)
            r.update(density=density, limit_mb=limit / 2**20 if limited else None)
            print(json.dumps(r), file=sys.stderr)
            rows.append(r)
    write_text(args.output, json.dumps({"model": args.model.name, "file_mb": size / 2**20, "fraction": args.fraction,
                                        "gen_tokens": args.gen_tokens, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
