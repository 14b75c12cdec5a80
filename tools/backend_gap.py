"""Why GLASS gains less over GRIFFIN on the llama backend than on the torch reference: one factor at a time.

    .venv/bin/python tools/backend_gap.py --model qwen2.5-coder-0.5b -o docs/results/qwen2.5-coder-0.5b-gap.json

From the torch reference as docs/results.md measured it to a user's llama-backend run, each step changes one thing
and scores GRIFFIN and GLASS (lambda 0.5, both prior kinds) at one density on the same continuations:

    torch, previous rule      the reference before the last-layer fix (it collected the last layer's prompt rows)
    torch                     the runtime's last-layer rule
    llama                     the patched llama.cpp on the Q4 GGUF, HF-export priors (8192 tokens)
    llama, GGUF prior 8192    priors computed by llama.cpp from the GGUF itself (`glass-gguf prior MODEL.gguf`)
    llama, GGUF prior 2048    ... from 2048 tokens, as a user's first try
    llama, short prompts      one-sentence questions (ARC-Easy) instead of MT-Bench prompts

The continuations are the torch model's greedy answers (the llama backend scores the same tokens), except for the
last step, whose prompts are new. Writes the JSON that docs/results.md renders (results.render).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from glass_gguf import assets, datasets, evaluate, tasks  # noqa: E402
from glass_gguf.atomic import write_text  # noqa: E402
from glass_gguf.reference import Config  # noqa: E402
from glass_gguf.results import (LAST_LAYER_RULE, hf_dir_for, prior_files_for, read_priors,  # noqa: E402
                                spread)


def gguf_priors(model_path: Path, tokens: int, threads: int) -> dict:
    """Both prior kinds computed by llama.cpp from the GGUF (glass-gguf prior MODEL.gguf), cached. One calibration
    pass: the impact prior is the activation prior times each neuron's down-column norm."""
    import dataclasses

    from glass_gguf.gguf_prior import compute_gguf_prior, down_column_norms
    from glass_gguf.prior_file import write_prior
    from glass_gguf.results import model_digest

    paths = {k: assets.cache_dir() / "priors" / f"{model_digest(model_path)}.gguf.{k}.{tokens}.gguf"
             for k in ("activation", "impact")}
    if not all(p.exists() for p in paths.values()):
        act = compute_gguf_prior(model_path, "activation", tokens=tokens, threads=threads)
        impact = dataclasses.replace(act, kind="impact", sums=None, scores=[
            (s * down_column_norms(model_path, il)).astype(s.dtype) for il, s in enumerate(act.scores)])
        for p, prior in ((paths["activation"], act), (paths["impact"], impact)):
            p.parent.mkdir(parents=True, exist_ok=True)
            write_prior(p, prior)
    return read_priors(paths.values())


def score(backend, pairs, priors, density: float) -> dict:
    configs = [Config("dense"), Config("griffin", density)] + [
        Config("glass", density, 0.5, kind) for kind in sorted(priors)]
    records = evaluate.summarize(evaluate.run(backend, pairs, configs, priors), configs, backend.name)
    kl = {r.label: r.kl for r in records if r.split == "all" and r.method != "dense"}
    griffin = kl[Config("griffin", density).label]
    return {"kl": kl, "gain_pct": {label: 100 * (griffin - v) / griffin for label, v in kl.items()
                                   if label != Config("griffin", density).label}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", choices=sorted(assets.MODELS))
    ap.add_argument("--n-prompts", type=int, default=8)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--density", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()

    model_path = assets.model_path(assets.MODELS[args.model])
    hf_dir = hf_dir_for(model_path)
    hf_priors = read_priors(prior_files_for(model_path, hf_dir, threads=args.threads))
    torch_backend = evaluate.load_torch_backend(hf_dir, args.threads)
    prompts = spread(datasets.mtbench_prompts("eval"), args.n_prompts)
    pairs = evaluate.dense_continuations(torch_backend, prompts, args.gen_tokens)
    steps = []

    def step(name, backend, pairs, priors):
        print(f"--- {name}", file=sys.stderr)
        steps.append({"step": name, **score(backend, pairs, priors, args.density)})
        print(json.dumps(steps[-1]["gain_pct"]), file=sys.stderr)

    torch_backend.sparsifier.collects_last_layer = True
    step("torch, previous last-layer rule, HF-export priors 8192", torch_backend, pairs, hf_priors)
    torch_backend.sparsifier.collects_last_layer = False
    step("torch, the runtime's last-layer rule, HF-export priors 8192", torch_backend, pairs, hf_priors)
    llama = evaluate.LlamaBackend(model_path, threads=args.threads)
    step("llama, HF-export priors 8192", llama, pairs, hf_priors)
    step("llama, GGUF priors 8192", llama, pairs, gguf_priors(model_path, 8192, args.threads))
    small = gguf_priors(model_path, 2048, args.threads)
    step("llama, GGUF priors 2048", llama, pairs, small)
    short = [item.context.removeprefix("Question: ").removesuffix("\nAnswer:")
             for item in tasks.task_items("arc_easy", args.n_prompts)]
    step("llama, GGUF priors 2048, short prompts (ARC-Easy questions)", llama,
         evaluate.dense_continuations(llama, short, args.gen_tokens), small)
    out = {"model": model_path.name, "density": args.density, "n_prompts": args.n_prompts,
           "gen_tokens": args.gen_tokens, "last_layer_rule": LAST_LAYER_RULE, "steps": steps}
    write_text(args.output, json.dumps(out, indent=1))
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
