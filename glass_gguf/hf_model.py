"""Loading Hugging Face checkpoints for GLASS: config, tokenizer, float32 model, and its FFN down projections.

Shared by prior.py (calibration) and reference.py (the PyTorch oracle). torch and transformers are imported here,
inside the functions, so that the runtime commands work without them (`pip install 'glass-gguf[prior]'`).
Every loading failure becomes one line naming the folder; an architecture GLASS cannot serve is refused from
its config, before the weights are read.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import GlassFormatError, UnsupportedModel

# HF model_type -> llama.cpp architecture (the fingerprint's family); convert_hf_to_gguf maps Mistral to llama.
SUPPORTED_MODEL_TYPES = {
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "gemma3_text": "gemma3",
}

# What transformers raises for a folder it cannot read: a missing file, a bad config, an unknown class.
_LOAD_ERRORS = (OSError, ValueError, KeyError)


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def text_config(hf_dir: str | os.PathLike):
    """The text model's config (the language model of a multimodal checkpoint)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(hf_dir))
    except _LOAD_ERRORS as e:
        raise GlassFormatError(f"{hf_dir}: not a Hugging Face checkpoint folder ({_first_line(e)})") from e
    return config.get_text_config()


def architecture(config, name: str) -> str:
    """The llama.cpp architecture of a supported config; refuses every other model type."""
    arch = SUPPORTED_MODEL_TYPES.get(config.model_type)
    if arch is None:
        raise UnsupportedModel(
            f"{name}: model type {config.model_type!r} is not supported: GLASS needs a dense gated FFN "
            f"(supported: {', '.join(sorted(SUPPORTED_MODEL_TYPES))}; MoE and fused gate/up FFNs are not)"
        )
    return arch


def load_tokenizer(hf_dir: str | os.PathLike):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(hf_dir))
    except _LOAD_ERRORS as e:
        raise GlassFormatError(f"{hf_dir}: transformers cannot load the tokenizer ({_first_line(e)})") from e


def load_model(hf_dir: str | os.PathLike, threads: int | None = None):
    """(model, tokenizer) of a checkpoint folder, float32 on the CPU in eval mode, with `threads` torch threads."""
    import torch
    from transformers import AutoModelForCausalLM

    hf_dir = Path(hf_dir)
    architecture(text_config(hf_dir), hf_dir.name)
    if threads:
        torch.set_num_threads(threads)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    except _LOAD_ERRORS as e:
        raise GlassFormatError(f"{hf_dir}: transformers cannot load the model ({_first_line(e)})") from e
    model.eval()
    return model, load_tokenizer(hf_dir)


def decoder_layers(model):
    """The decoder blocks of an HF causal LM."""
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        raise UnsupportedModel(f"{type(model).__name__}: no decoder layers found (only decoder-only models)")
    return layers


def down_projections(model) -> list:
    """mlp.down_proj of every decoder layer, refusing anything but a dense gated FFN (gate_proj, up_proj).

    The input of down_proj is exactly the FFN intermediate h that GLASS scores.
    """
    return [mlp.down_proj for mlp in gated_mlps(model)]


def gated_mlps(model) -> list:
    """The FFN of every decoder layer: down_proj(act_fn(gate_proj(x)) * up_proj(x)); anything else is refused."""
    out = []
    for i, layer in enumerate(decoder_layers(model)):
        mlp = getattr(layer, "mlp", None)
        if mlp is None or not all(hasattr(mlp, p) for p in ("gate_proj", "up_proj", "down_proj", "act_fn")):
            raise UnsupportedModel(
                f"layer {i}: {type(mlp).__name__} is not a dense gated FFN (gate_proj, up_proj, down_proj)"
            )
        out.append(mlp)
    return out
