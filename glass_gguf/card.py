"""A Hugging Face model card for a GLASS GGUF (`glass-gguf card`), so the file can be published as GGUFs are.

Everything in the card comes from the file itself: the model (general.* keys, architecture and shapes), GLASS's
settings (glass.density, glass.lambda, glass.warmup, glass.refresh, glass.layer_scale), the prior's provenance
(kind, calibration source and tokens, the fingerprint of the model it was computed for) and the form it is stored
in. When the model is one of the packaged ones (its fingerprint matches a GGUF in the cache), the card adds what
this repository measured on it: the frontier table (docs/results/*frontier*.json) when there is one, else the
speed-up and KL by density of `glass-gguf results` (glass_gguf/readme.py renders the same rows).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from gguf import LlamaFileType

from . import __version__, schema
from .errors import GlassFormatError
from .gguf_reader import field_value, open_gguf
from .validate import checked_records

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
TAGS = ("gguf", "glass", "sparsity", "llama.cpp", "llama-cpp-python")


@dataclass
class CardFacts:
    """What the card says, read from the file."""

    file: str
    name: str
    arch: str
    quantization: str | None
    base_model: str | None
    license: str | None
    glass: dict                 # the glass.* keys (without per-layer scores)
    form: str
    n_layer: int
    n_ff: list[int]
    packaged: str | None        # the packaged model (assets.MODELS name) whose fingerprint the prior carries


def read_facts(path: str | os.PathLike, base_model: str | None = None) -> CardFacts:
    """The facts of a GLASS GGUF; a stock GGUF, a prior file or a sidecar is refused in one line."""
    path = Path(path)
    records = checked_records(path)
    if not records.has_model:
        raise GlassFormatError(f"{path.name} is a prior file or sidecar, not a model: a card describes a GLASS GGUF "
                               "(glass-gguf convert MODEL.gguf --prior PRIOR -o MODEL.glass.gguf)")
    if records.form is None:
        raise GlassFormatError(f"{path.name} carries no GLASS prior: a stock GGUF gets no GLASS card; make a GLASS "
                               f"GGUF first (glass-gguf convert {path.name} --prior PRIOR -o "
                               f"{path.name.removesuffix('.gguf')}.glass.gguf)")
    reader = open_gguf(path)
    general = {k: field_value(reader, k) for k in reader.fields if k.startswith("general.")}
    packaged = packaged_model(records.keys[schema.KEY_MODEL_FINGERPRINT])
    if base_model is None:
        base_model = general.get("general.base_model.0.repo_url") or None
        if base_model and "huggingface.co/" in base_model:
            base_model = base_model.split("huggingface.co/", 1)[1].strip("/")
        if base_model is None and packaged:
            from .assets import MODELS

            base_model = MODELS[packaged].base_model
    file_type = general.get("general.file_type")
    try:
        quantization = LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None
    except ValueError:
        quantization = None
    return CardFacts(
        file=path.name, name=general.get("general.name") or path.name.removesuffix(".gguf"),
        arch=general.get("general.architecture", "?"), quantization=quantization, base_model=base_model,
        license=general.get("general.license"), glass=records.keys, form=records.form, n_layer=len(records.scores),
        n_ff=[len(s) for s in records.scores], packaged=packaged)


def packaged_model(fingerprint: str) -> str | None:
    """The packaged model (assets.MODELS) the prior was computed for, among those already in the cache (none is
    downloaded to find out)."""
    from .assets import MODELS, cache_dir
    from .fingerprint import fingerprints_match, gguf_model_info

    for name, model in MODELS.items():
        path = cache_dir() / "models" / model.filename
        if path.exists() and fingerprints_match(fingerprint, gguf_model_info(path).fingerprint):
            return name
    return None


# --- the card --------------------------------------------------------------------------------------------------------


def front_matter(f: CardFacts) -> list[str]:
    lines = ["---"]
    if f.base_model:
        lines.append(f"base_model: {f.base_model}")
    if f.license:
        lines.append(f"license: {f.license}")
    lines += ["library_name: gguf", "pipeline_tag: text-generation", "tags:", *(f"- {t}" for t in TAGS), "---"]
    return lines


def settings_table(f: CardFacts) -> list[str]:
    g = f.glass
    scale = g.get(schema.KEY_LAYER_SCALE)
    rows = [
        ("density", g.get(schema.KEY_DENSITY), "share of FFN neurons kept per layer while decoding"),
        ("lambda", g.get(schema.KEY_LAMBDA), "weight of the prior's rank against the prompt's (0: GRIFFIN, 1: static)"),
        ("warm-up", g.get(schema.KEY_WARMUP, 0), "generated tokens decoded dense and collected before the selection"),
        ("refresh", g.get(schema.KEY_REFRESH, 0), "every R-th generated token decoded dense and the selection redone "
                                                   "(0: never)"),
        ("per-layer density", "uniform" if scale is None else
         f"factors {min(scale):.3g} .. {max(scale):.3g} over {len(scale)} layers", "glass.layer_scale"),
        ("prior", g[schema.KEY_PRIOR_KIND], "activation: mean abs h; impact: times the down projection's column norm"),
        ("calibration", f"{g[schema.KEY_PRIOR_SOURCE]}, {g[schema.KEY_PRIOR_TOKENS]} tokens",
         "the text the prior was computed from"),
        ("stored as", f.form, "tensors: needs the GLASS build; metadata: stock loaders read the file as a dense model"),
    ]
    out = ["| setting | value | meaning |", "|---|---|---|"]
    out += [f"| {k} | {v:g} | {m} |" if isinstance(v, float) else f"| {k} | {v} | {m} |" for k, v, m in rows]
    return out


def measured(f: CardFacts, results: Path = RESULTS) -> list[str]:
    """What this repository measured on the model: the frontier table, else results' speed-up and KL by density."""
    if f.packaged is None:
        return ["Not measured by glass-gguf: only its packaged models are (`glass-gguf results`). Measure this file "
                "with `glass-gguf bench FILE` (speed) and `glass-gguf eval` (quality).", ""]
    from .assets import MODELS

    frontier = frontier_rows(MODELS[f.packaged].filename, results)
    if frontier:
        return [f"The frontier measured by glass-gguf on {MODELS[f.packaged].filename} "
                "(speed-up over dense and quality by setting):", "", *frontier, ""]
    from .readme import model_rows

    rows = model_rows(f.packaged, results)
    if not rows:
        return [f"{MODELS[f.packaged].filename} has no measurement in this copy of glass-gguf "
                "(docs/results/ is empty).", ""]
    return [f"Measured by glass-gguf (`glass-gguf results`) on {MODELS[f.packaged].filename}: whole answers, speed-up "
            "over dense, and mean KL(dense || setting) on MT-Bench prompts; plain GLASS / the swept setting:", "",
            "| model (swept setting) | density | speed-up GLASS / swept | KL GRIFFIN / GLASS / swept |",
            "|---|---:|---:|---:|", *rows, ""]


def frontier_rows(model_file: str, results: Path = RESULTS) -> list[str]:
    """A markdown table of the frontier measured for `model_file` (any docs/results/*frontier*.json whose `model`
    names it): its rows' scalar columns, as they are."""
    for path in sorted(results.glob("*frontier*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("model") != model_file:
            continue
        rows = next((v for k in ("frontier", "results", "rows") if isinstance(v := data.get(k), list) and v), None)
        if not rows or not all(isinstance(r, dict) for r in rows):
            continue
        columns = [k for k, v in rows[0].items() if isinstance(v, (int, float, str)) or v is None]

        def cell(v):
            return f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)
        return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                *("| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows)]
    return []


def how_to_run(f: CardFacts) -> list[str]:
    file = f.file
    stock = ("Stock llama.cpp and every tool built on it (Ollama, LM Studio) load this file as the dense model and "
             "ignore the prior." if f.form == schema.FORM_METADATA else
             "Stock llama.cpp refuses it (it carries tensors stock llama.cpp does not know): use the GLASS build, or "
             "`glass-gguf strip` for the original file.")
    return [
        "GLASS needs llama-cpp-python or llama.cpp built with glass-gguf's patch series (in a clone of glass-gguf: "
        "`make setup-runtime` for llama-cpp-python, `glass-gguf build-native` for llama.cpp's binaries); it then "
        f"switches itself on for this file with the settings above. {stock}",
        "",
        "llama-cpp-python:",
        "",
        "```python",
        "import llama_cpp",
        f'llm = llama_cpp.Llama(model_path="{file}", n_ctx=2048)',
        'out = llm.create_chat_completion([{"role": "user", "content": "Why is the sky blue?"}])',
        'print(out["choices"][0]["message"]["content"])',
        "```",
        "",
        "Its OpenAI-compatible server:",
        "",
        f"    python -m llama_cpp.server --model {file}",
        "",
        "llama.cpp's binaries (`-lv 4` shows GLASS's `glass:` log lines; llama-server serves one slot, as one "
        "selection serves one sequence; `-fit off` until the runtime skips llama.cpp's fitting pass):",
        "",
        f'    llama-completion -m {file} -fit off -no-cnv -p "The history of the printing press" -n 128',
        f"    llama-server -m {file} -fit off --port 8080",
        "",
        "The environment changes the settings without code: `GLASS_GGUF=off` (dense), `GLASS_GGUF_DENSITY=0.6`, "
        "`GLASS_GGUF_LAMBDA=0.25`.",
    ]


def render(f: CardFacts, results: Path = RESULTS) -> str:
    g = f.glass
    quant = f" {f.quantization}" if f.quantization else ""
    density = g.get(schema.KEY_DENSITY)
    lines = [
        *front_matter(f),
        "",
        f"# {f.name}{quant}, GLASS GGUF",
        "",
        f"{f.file} is {'[' + f.base_model + '](https://huggingface.co/' + f.base_model + ')' if f.base_model else 'a'}"
        f"{quant} {f.arch} model with a GLASS prior inside (GLASS: Global-Local Aggregation for inference-time FFN "
        "Sparsification). After the prompt is read, the GLASS runtime keeps only "
        + (f"{density:.0%} of" if density is not None else "a share of")
        + " the FFN neurons of every layer, chosen for this prompt from what the prompt activated and from the prior "
        "(computed once on calibration text), and decodes with those alone: fewer weight bytes per token, so faster "
        "decoding of a quantized model, for a small drift from the dense answer. No training; the weights are the "
        "original ones, byte for byte.",
        "",
        "## GLASS settings in this file",
        "",
        *settings_table(f),
        "",
        f"The prior was computed for the model with fingerprint `{g[schema.KEY_MODEL_FINGERPRINT]}` "
        f"({f.n_layer} layers, {'n_ff ' + str(f.n_ff[0]) if len(set(f.n_ff)) == 1 else 'n_ff per layer varies'}); "
        "the runtime refuses it for any other model.",
        "",
        "## Measured",
        "",
        *measured(f, results),
        "## How to run it",
        "",
        *how_to_run(f),
        "",
        f"Card written by glass-gguf {__version__} (`glass-gguf card {f.file}`).",
    ]
    return "\n".join(lines) + "\n"


def card(path: str | os.PathLike, base_model: str | None = None, results: Path = RESULTS) -> tuple[CardFacts, str]:
    facts = read_facts(path, base_model)
    return facts, render(facts, results)
