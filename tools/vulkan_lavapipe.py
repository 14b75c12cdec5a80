"""GLASS on a GPU backend: llama-completion built with GGML_VULKAN, run on Mesa's software Vulkan driver (lavapipe).

    .venv/bin/python tools/vulkan_lavapipe.py --bin ~/vk-build/bin -o docs/results/vulkan-lavapipe.json
    .venv/bin/python tools/vulkan_lavapipe.py --render docs/results/vulkan-lavapipe.json   # the table in runtime.md

Patch 0019 reads the statistic through the scheduler's eval callback and sets compacted weights in a device's memory
from the context's own thread, so GLASS needs no CPU-only op. This run checks that on a real Vulkan device: the same
binary decodes the same prompt four ways, greedy, with the whole model on the CPU (`-dev none`) or offloaded to the
Vulkan device (`-ngl 99`), dense and with GLASS (`--glass on`). It reports what each did (tokens decoded sparse, the
text, decode speed) and how far the Vulkan selection is from the CPU's (the statistic is summed from h as each
backend computed it, so the last bits of h may differ and move neurons at the selection's edge).

Building the binary (Debian bookworm; the Vulkan headers must be newer than bookworm's 1.3.239):

    apt-get install libvulkan-dev glslc spirv-headers mesa-vulkan-drivers
    apt-get download -t trixie libvulkan-dev && dpkg-deb -x libvulkan-dev_*.deb ~/vk-headers
    .venv/bin/python tools/build_llama_cpp_python.py --dev-tree ~/glass-llama.cpp
    cmake -S ~/glass-llama.cpp -B ~/vk-build -DGGML_VULKAN=ON -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON \\
          -DGGML_F16C=ON -DLLAMA_OPENSSL=OFF -DVulkan_INCLUDE_DIR=$HOME/vk-headers/usr/include
    cmake --build ~/vk-build --target llama-completion -j2
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from glass_gguf import assets  # noqa: E402
from glass_gguf.atomic import write_text  # noqa: E402
from glass_gguf.doc_blocks import replace_block  # noqa: E402
from glass_gguf.native import read_selection_dump  # noqa: E402

DOC = REPO / "docs" / "runtime.md"

PROMPT = "The three most useful things to know about the water cycle are"
RUNS = {   # name: (device arguments, GLASS arguments)
    "cpu dense": (["-dev", "none"], ["--glass", "off"]),
    "cpu glass": (["-dev", "none"], ["--glass", "on"]),
    "vulkan dense": (["-ngl", "99"], ["--glass", "off"]),
    "vulkan glass": (["-ngl", "99"], ["--glass", "on"]),
}


def run(binary: Path, model: Path, n: int, device: list[str], glass: list[str], density: float, dump: Path) -> dict:
    """One greedy completion: its text, the log's GLASS lines, sparse tokens and decode speed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLASS_GGUF")}
    env["GLASS_GGUF_DUMP_SELECTION"] = str(dump)
    env.setdefault("GGML_VK_VISIBLE_DEVICES", "0")   # ggml-vulkan skips CPU-type devices (lavapipe) unless named
    cmd = [str(binary), "-m", str(model), "-p", PROMPT, "-n", str(n), "-no-cnv", "--temp", "0", "--seed", "0",
           "-t", "2", "-c", "512", "-fa", "off", "--no-display-prompt", "-lv", "4", "-fit", "off",
           "--glass-density", str(density), *device, *glass]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    log = out.stderr
    sparse = re.findall(r"glass: (\d+) tokens decoded sparse", log)
    speed = re.search(r"eval time =\s*([\d.]+) ms /\s*(\d+) runs", log.split("prompt eval time")[-1])
    devices = sorted(set(re.findall(r"using device (\S+) \((.*)\) \(", log)))   # NAME (DESCRIPTION) (ID) - FREE
    return {
        "text": out.stdout.replace("[end of text]", "").strip(),
        "sparse_tokens": int(sparse[-1]) if sparse else 0,
        "glass_lines": [line for line in log.splitlines() if line.startswith("glass:")],
        "decode_ms_per_token": float(speed.group(1)) / int(speed.group(2)) if speed else None,
        "devices": [f"{name} ({desc})" for name, desc in devices],
        "selection": read_selection_dump(dump) if dump.exists() else {},   # frozensets: not written to the results
    }


def overlap(a: dict, b: dict) -> dict:
    """Per layer, the share of the CPU's kept neurons the Vulkan selection keeps too."""
    shares = [len(set(a[il]) & set(b[il])) / len(a[il]) for il in sorted(a) if a[il] and b.get(il)]
    return {"layers": len(shares), "mean": sum(shares) / len(shares) if shares else None,
            "min": min(shares) if shares else None, "identical_layers": sum(s == 1.0 for s in shares)}


def render(result: dict) -> str:
    """The table of docs/runtime.md's `vulkan` block."""
    o = result["selection_overlap_vulkan_vs_cpu"]
    rows = ["| run | device | tokens decoded sparse | decode ms/token | same text as on the CPU |", "|---|---|---:|---:|---|"]
    for name, r in result["runs"].items():
        backend, kind = name.split()
        same = "" if backend == "cpu" else ("yes" if result["same_text"][f"vulkan {kind} vs cpu {kind}"] else "no")
        device = ", ".join(r["devices"]) or "CPU"
        ms = "" if r["decode_ms_per_token"] is None else f"{r['decode_ms_per_token']:.1f}"
        rows.append(f"| {name} | {device} | {r['sparse_tokens']} | {ms} | {same} |")
    rows.append("")
    rows.append(f"{result['model']}, {result['tokens']} tokens, density {result['density']}, one run each (decode "
                "ms/token over every generated token: the first 16 decode dense while the compaction runs): the "
                f"Vulkan selection keeps {o['mean']:.1%} of the CPU's neurons on average (lowest layer "
                f"{o['min']:.1%}); {o['identical_layers']} of {o['layers']} layers identical.")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", type=Path, help="directory of a llama-completion built with GGML_VULKAN")
    ap.add_argument("--render", type=Path, help="only render this results file into docs/runtime.md")
    ap.add_argument("--model", default="smollm2-135m", help="a packaged model (glass-gguf fetch) or a GGUF path")
    ap.add_argument("-n", type=int, default=40, help="tokens generated per run (the swap is at the 16th)")
    ap.add_argument("--density", type=float, default=0.5)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    if args.render:
        DOC.write_text(replace_block(DOC.read_text(), "vulkan", render(json.loads(args.render.read_text()))))
        return
    if not args.bin or not args.output:
        ap.error("--bin and -o are needed for a run")

    model = Path(args.model) if args.model.endswith(".gguf") else assets.model_path(assets.MODELS[args.model])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (device, glass)) in enumerate(RUNS.items()):
            print(f"[{i + 1}/{len(RUNS)}] {name}", file=sys.stderr, flush=True)
            results[name] = run(args.bin / "llama-completion", model, args.n, device, glass, args.density,
                                Path(tmp) / f"{i}.txt")
    cpu, vk = results["cpu glass"], results["vulkan glass"]
    summary = {
        "model": model.name, "prompt": PROMPT, "tokens": args.n, "density": args.density,
        "vulkan_devices": results["vulkan glass"]["devices"],
        "sparse_tokens": {name: r["sparse_tokens"] for name, r in results.items()},
        "selection_overlap_vulkan_vs_cpu": overlap(cpu["selection"], vk["selection"]),
        "same_text": {"vulkan glass vs cpu glass": vk["text"] == cpu["text"],
                      "vulkan dense vs cpu dense": results["vulkan dense"]["text"] == results["cpu dense"]["text"]},
        "decode_ms_per_token": {name: r["decode_ms_per_token"] for name, r in results.items()},
        "runs": {name: {k: v for k, v in r.items() if k != "selection"} for name, r in results.items()},
    }
    write_text(args.output, json.dumps(summary, indent=2) + "\n")
    DOC.write_text(replace_block(DOC.read_text(), "vulkan", render(summary)))
    print(json.dumps({k: summary[k] for k in ("sparse_tokens", "selection_overlap_vulkan_vs_cpu", "same_text",
                                              "decode_ms_per_token")}, indent=2))


if __name__ == "__main__":
    main()
