"""The `frontier` and `tune` commands (frontier.py, tune.py, quantize.py): GLASS against the quantization ladder."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .cli_params import checked, list_of, token_fractions_or_none
from .errors import SettingError
from .quantize import DEFAULT_LADDER
from .settings import check_density, check_lambda, physical_cores
from .tune import DEFAULT_TUNE_DENSITIES, DEFAULT_TUNE_LADDER


def _ladder(ctx, param, value):
    from .quantize import parse_ladder

    if value is None or value.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(q.name for q in parse_ladder(value))
    except SettingError as e:
        raise click.BadParameter(str(e)) from e


def _work_dir(model: Path, work_dir) -> Path:
    from .assets import cache_dir
    from .results import model_digest

    return Path(work_dir) if work_dir else cache_dir() / "frontier" / model_digest(model)


def measurement_options(fn):
    """What frontier and tune share: the model, its reference, the GLASS setting and the work folder."""
    for deco in reversed([
        click.argument("model", type=click.Path(exists=True, dir_okay=False)),
        click.option("--source", type=click.Path(exists=True, dir_okay=False),
                     help="a higher-precision GGUF of the same model: the ladder is made from it and it is the "
                          "quality reference [default: the model itself, requantized]"),
        click.option("--prior", "prior_path", type=click.Path(exists=True, dir_okay=False),
                     help="prior file, sidecar or GLASS GGUF [default: the model's own, else computed like "
                          "`glass-gguf prior MODEL`]"),
        click.option("--lambda", "lam", default=None, callback=checked(check_lambda),
                     help="GLASS's lambda [default: the file's glass.lambda, else 0.5]"),
        click.option("--warmup", type=click.IntRange(0), default=None,
                     help="warm-up tokens [default: the file's glass.warmup, else 0]"),
        click.option("--refresh", type=click.IntRange(0), default=None,
                     help="refresh period [default: the file's glass.refresh, else 0]"),
        click.option("--imatrix", type=click.Path(exists=True, dir_okay=False),
                     help="importance matrix (llama-imatrix) for the low-bit rungs (needed by IQ2/IQ1/IQ3_XXS)"),
        click.option("--work-dir", type=click.Path(file_okay=False),
                     help="rungs, prior and the resumable cache [default: the glass-gguf cache]"),
        click.option("--threads", type=click.IntRange(1), default=physical_cores(),
                     help="threads (default: one per physical core)"),
        click.option("--json", "as_json", is_flag=True, help="print one JSON object to stdout"),
    ]):
        fn = deco(fn)
    return fn


def _config(model, source, prior_path, lam, warmup, refresh, imatrix, work_dir, threads, **kw):
    from .frontier import FrontierConfig

    model = Path(model)
    return FrontierConfig(model=model, out_dir=_work_dir(model, work_dir), source=Path(source) if source else None,
                          prior=Path(prior_path) if prior_path else None, lam=lam, warmup=warmup, refresh=refresh,
                          imatrix=Path(imatrix) if imatrix else None, threads=threads, **kw)


@click.command("frontier")
@measurement_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="the frontier JSON")
@click.option("--plot", type=click.Path(dir_okay=False), help="PNG of speed-up against KL")
@click.option("--markdown", type=click.Path(dir_okay=False), help="also write the tables as markdown")
@click.option("--ladder", default=",".join(DEFAULT_LADDER),
              callback=_ladder, help="quantization types to make and measure ('none': no ladder)")
@click.option("--densities", default="0.3,0.5,0.6,0.75,0.9", callback=list_of(check_density, tuple),
              help="GRIFFIN and GLASS densities on the model")
@click.option("--rung-densities", default="0.5,0.75,0.9", callback=list_of(check_density, tuple),
              help="GLASS densities on the rungs smaller than the model")
@click.option("--n-prompts", type=click.IntRange(1), default=24, help="MT-Bench prompts (eval split, evenly spaced)")
@click.option("--gen-tokens", type=click.IntRange(8), default=256, help="tokens per answer")
@click.option("--repeats", type=click.IntRange(1), default=1, help="speed rounds per prompt")
@click.option("--prior-tokens", type=click.IntRange(64), default=8192, help="calibration tokens of a computed prior")
@click.option("--token-fractions", default="0.5", callback=token_fractions_or_none,
              help="two-level decoding on the model at every density whose selection fits: the shares of the "
                   "selection a decoded token keeps ('none': no two-level; docs/two-level.md)")
@click.option("--no-griffin", is_flag=True, help="leave GRIFFIN out")
@click.option("--no-rss", is_flag=True, help="skip the peak-RSS probes (one process per candidate)")
@click.option("--time-limit", type=click.FloatRange(min=0.1), default=None,
              help="stop after this many minutes, between model files (finished ones are cached: run again to go on)")
def frontier(model, source, prior_path, lam, warmup, refresh, imatrix, work_dir, threads, as_json, output, plot,
             markdown, ladder, densities, rung_densities, n_prompts, gen_tokens, repeats, prior_tokens,
             token_fractions, no_griffin, no_rss, time_limit):
    """GLASS against the quantization ladder of MODEL: quality (KL, repeated 8-grams) and whole-answer speed of
    every rung, of GRIFFIN and GLASS on the model, and of GLASS on the smaller rungs; Pareto frontier and the
    iso-quality speed-up."""
    from .atomic import write_text
    from .frontier import TimeLimit, render_markdown, run_frontier, write_result
    from .paths import check_outputs

    check_outputs([output, plot, markdown], [model, source, prior_path, imatrix])
    cfg = _config(model, source, prior_path, lam, warmup, refresh, imatrix, work_dir, threads, ladder=ladder,
                  densities=densities, rung_densities=rung_densities, n_prompts=n_prompts, gen_tokens=gen_tokens,
                  repeats=repeats, prior_tokens=prior_tokens, token_fractions=token_fractions,
                  griffin=not no_griffin, rss=not no_rss,
                  time_limit_s=None if time_limit is None else 60 * time_limit, progress=True)
    try:
        result = run_frontier(cfg)
    except TimeLimit as e:
        raise click.ClickException(str(e)) from e
    write_result(result, Path(output), Path(plot) if plot else None)
    if markdown:
        write_text(markdown, render_markdown(result))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(render_markdown(result))
    click.echo(f"wrote {output}" + (f" and {plot}" if plot else ""))


@click.command("tune")
@measurement_options
@click.option("--max-kl", type=click.FloatRange(min=0, min_open=True), default=None,
              help="the fastest GLASS density with KL(model || GLASS) at most this")
@click.option("--min-speedup", type=click.FloatRange(min=0, min_open=True), default=None,
              help="the GLASS density closest to the model among those at least this much faster")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="write MODEL with the prior and the chosen setting (a GLASS GGUF)")
@click.option("--sidecar", is_flag=True, help="write the setting into a sidecar beside the untouched MODEL instead")
@click.option("--ladder", default=",".join(DEFAULT_TUNE_LADDER), callback=_ladder,
              help="dense quantizations to compare with ('none': no comparison)")
@click.option("--densities", default=",".join(map(str, DEFAULT_TUNE_DENSITIES)), callback=list_of(check_density, tuple),
              help="GLASS densities tried")
@click.option("--n-prompts", type=click.IntRange(1), default=4, help="MT-Bench prompts (eval split, evenly spaced)")
@click.option("--gen-tokens", type=click.IntRange(8), default=128, help="tokens per answer")
@click.option("--repeats", type=click.IntRange(1), default=2, help="speed rounds per prompt")
@click.option("--prior-tokens", type=click.IntRange(64), default=2048, help="calibration tokens of a computed prior")
@click.option("--token-fractions", default="0.5", callback=token_fractions_or_none,
              help="two-level decoding compared at every density whose selection fits ('none': not measured)")
def tune(model, source, prior_path, lam, warmup, refresh, imatrix, work_dir, threads, as_json, max_kl, min_speedup,
         output, sidecar, ladder, densities, n_prompts, gen_tokens, repeats, prior_tokens, token_fractions):
    """Measure GLASS at a few densities and a few dense quantizations on this device (minutes), pick the GLASS
    setting that serves the budget best, say whether a quantization serves it better, and write the setting."""
    from .frontier import Row, run_frontier
    from .glass_file import embed_prior, sidecar_path, write_sidecar
    from .paths import check_outputs
    from .prior_file import read_prior
    from .tune import choose

    if (max_kl is None) == (min_speedup is None):
        raise click.UsageError("give exactly one budget: --max-kl B or --min-speedup S")
    if output and sidecar:
        raise click.UsageError("-o and --sidecar exclude each other")
    target = Path(output) if output else sidecar_path(model) if sidecar else None
    check_outputs([target], [model, source, prior_path, imatrix])
    if sidecar and target.exists():
        raise click.ClickException(f"{target} exists: the runtime already loads it beside the model; remove it or "
                                   "write a GLASS GGUF with -o")
    cfg = _config(model, source, prior_path, lam, warmup, refresh, imatrix, work_dir, threads, ladder=ladder,
                  densities=densities, rung_densities=(), n_prompts=n_prompts, gen_tokens=gen_tokens,
                  repeats=repeats, prior_tokens=prior_tokens, token_fractions=token_fractions, griffin=False,
                  glass_on_rungs=False, rss=False,
                  progress=True)
    result = run_frontier(cfg)
    rows = [Row.from_json(r) for r in result["candidates"]]
    choice = choose(rows, max_kl=max_kl, min_speedup=min_speedup)
    out = {"model": str(model), "choice": choice.to_json(), "setting": result["setting"],
           "protocol": result["protocol"], "candidates": result["candidates"]}
    if target is not None:
        s = result["setting"]
        prior = read_prior(result["prior_file"])
        write = write_sidecar if sidecar else embed_prior
        out["output"] = str(write(model, prior, target, density=choice.glass.density, lam=s["lambda"],
                                  warmup=s["warmup"], refresh=s["refresh"], layer_scale=s["layer_scale"]))
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for r in sorted(rows, key=lambda r: (r.family != "glass", -r.speedup)):
        click.echo(f"{r.label:24} KL {r.kl:8.4f}  repeated {r.repeated:6.1%}  speed-up {r.speedup:5.2f}x")
    click.echo(choice.advice)
    if target is not None:
        click.echo(f"wrote {out['output']}: glass.density {choice.glass.density:g}, glass.lambda "
                   f"{result['setting']['lambda']:g}, warm-up {result['setting']['warmup']}")


def register(group: click.Group) -> None:
    """Add frontier and tune to the glass-gguf command group (cli.py)."""
    group.add_command(frontier)
    group.add_command(tune)
