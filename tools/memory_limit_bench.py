"""Decode speed under a memory limit smaller than the model: dense against GLASS, each in a fresh process inside a
cgroup (v1 memory.limit_in_bytes, or v2 memory.max) limited to a fraction of the model file's size.

    sudo .venv/bin/python tools/memory_limit_bench.py MODEL.gguf --fraction 0.7 --densities 0.5,0.75 \
        -o docs/results/NAME-memlimit.json

Dense decoding reads every weight for every token: when the file does not fit beside the process, its pages are
evicted and read again each token. GLASS, after its swap, reads its compacted copies and the non-FFN weights only,
and hands the dense FFN pages back, so it should decode from memory. The file's pages are dropped from the page cache
before every run (posix_fadvise), so that each run charges its own reads to its own cgroup. Needs root.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from glass_gguf.atomic import write_text

CHILD = r"""
import json, sys, time
import llama_cpp
from glass_gguf.glass_llama import load
path, density, n_gen = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
kw = dict(n_ctx=256, n_batch=32, n_ubatch=32, n_threads=2, n_threads_batch=2)
if density >= 1:
    llm, glass = load(path, dense=True, **kw)
else:
    llm, glass = load(path, density=density, **kw)
prompt = llm.tokenize(b"Write a short story about a lighthouse keeper who finds a message in a bottle.", special=True)
t0 = time.perf_counter()
llm.eval(prompt)
times = []
for i in range(n_gen):
    tok = llm.sample(temp=0.0)
    t = time.perf_counter()
    llm.eval([tok])
    times.append(time.perf_counter() - t)
steady = times[24:] if len(times) > 32 else times  # past GLASS's swap (17th token) and its first faults
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS:")][0].split()[1]
print(json.dumps({"tok_s": len(steady) / sum(steady), "first_token_s": times[0], "rss_mb": int(rss) / 1024,
                  "sparse_tokens": glass.sparse_tokens if glass is not None and glass.state != "off" else 0}))
"""


class MemoryCgroup:
    """A fresh memory cgroup with a byte limit (v1 or v2), removed on exit."""

    def __init__(self, limit: int):
        self.limit = limit
        v1, v2 = Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")
        if (v1 / "memory.limit_in_bytes").exists():
            self.path, self.limit_file = v1 / f"glass-bench-{os.getpid()}", "memory.limit_in_bytes"
        elif (v2 / "cgroup.controllers").exists() and "memory" in (v2 / "cgroup.controllers").read_text():
            self.path, self.limit_file = v2 / f"glass-bench-{os.getpid()}", "memory.max"
        else:
            raise SystemExit("no memory cgroup controller (cgroup v1 memory or v2 memory.max) on this machine")

    def __enter__(self):
        self.path.mkdir()
        (self.path / self.limit_file).write_text(str(self.limit))
        return self

    def add_self(self):  # runs in the child before exec
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

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


def run(model: Path, density: float, n_gen: int, limit: int | None) -> dict:
    drop_from_page_cache(model)
    cmd = [sys.executable, "-c", CHILD, str(model), str(density), str(n_gen)]
    if limit is None:
        out = subprocess.run(cmd, capture_output=True, text=True)
    else:
        with MemoryCgroup(limit) as cg:
            out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=cg.add_self)
    if out.returncode != 0:
        return {"error": f"exit {out.returncode}: " + (out.stderr.strip().splitlines() or [""])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--fraction", type=float, default=0.7, help="the limit as a fraction of the file size")
    ap.add_argument("--densities", default="0.5,0.75")
    ap.add_argument("--gen-tokens", type=int, default=96)
    args = ap.parse_args(argv)

    size = args.model.stat().st_size
    limit = int(args.fraction * size)
    rows = []
    for density in [1.0] + [float(d) for d in args.densities.split(",")]:
        for limited in (False, True):
            r = run(args.model, density, args.gen_tokens, limit if limited else None)
            r.update(density=density, limit_mb=limit / 2**20 if limited else None)
            print(json.dumps(r), file=sys.stderr)
            rows.append(r)
    write_text(args.output, json.dumps({"model": args.model.name, "file_mb": size / 2**20,
                                        "fraction": args.fraction, "gen_tokens": args.gen_tokens, "rows": rows},
                                       indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
