"""GLASS on a llama_cpp.Llama: the user-facing layer over runtime.GlassSession.

A GLASS GGUF (made by `glass-gguf convert`) needs none of this: the patched llama-cpp-python switches GLASS on for
such a file when a Llama is made (llama_cpp/glass_policy.py), with its glass.density and glass.lambda, under plain
llama_cpp.Llama and under `python -m llama_cpp.server`. Environment variables change that without code:

    GLASS_GGUF=off                    dense, even for a GLASS GGUF
    GLASS_GGUF=on                     GLASS for a stock GGUF too (GRIFFIN, lambda 0, unless a prior is set)
    GLASS_GGUF_DENSITY=0.6            override glass.density
    GLASS_GGUF_LAMBDA=0.25            override glass.lambda

This module adds what a file cannot carry: a prior from a sidecar file or numpy arrays, and explicit settings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .runtime import GlassSession


def priors_from(source) -> list[np.ndarray]:
    """Per-layer prior arrays from a sidecar / prior GGUF path, or a sequence of arrays."""
    if isinstance(source, (str, Path)):
        from .prior_file import read_prior

        return [np.asarray(s, dtype=np.float32) for s in read_prior(source).scores]
    return [None if s is None else np.asarray(s, dtype=np.float32) for s in source]


def check_prior_matches_model(model_path: str | Path, prior_path: str | Path) -> None:
    """Refuse a sidecar computed for another model (fingerprint, layer count, lengths), as convert does."""
    from .fingerprint import gguf_model_info
    from .prior_file import read_prior, validate_prior

    validate_prior(read_prior(prior_path), gguf_model_info(model_path), Path(model_path).name)


def load(
    model_path: str | Path,
    *,
    density: float | None = None,
    lam: float | None = None,
    mode: str = "auto",
    prior: str | Path | Sequence[np.ndarray | None] | None = None,
    dense: bool = False,
    **llama_kwargs,
):
    """A llama_cpp.Llama with GLASS set up; returns (llm, session).

    Settings are decided by the runtime, as for a plain Llama (GlassSession.resolve_params): the sidecar's or the
    GGUF's glass.density / glass.lambda, else density 0.5 and lambda 0.5 with a prior, 0 (GRIFFIN) without; then
    GLASS_GGUF_DENSITY / GLASS_GGUF_LAMBDA; explicit density/lam arguments win over all of them. GLASS_GGUF=off
    means off here too. dense=True gives the same model with GLASS off, for comparisons.
    """
    import llama_cpp

    from .validate import check_glass_file, check_prior_file

    # one clear line for a bad file before llama.cpp sees it (its reasons are hidden under verbose=False)
    check_glass_file(model_path)
    if isinstance(prior, (str, Path)):
        check_prior_file(prior, model_path)
    llama_kwargs.setdefault("verbose", False)
    llm = llama_cpp.Llama(model_path=str(model_path), **llama_kwargs)
    session = GlassSession(llm)
    file_density = file_lam = None
    if prior is not None:
        if isinstance(prior, (str, Path)):
            check_prior_matches_model(model_path, prior)
            from .prior_file import read_prior

            sidecar = read_prior(prior)
            file_density, file_lam = sidecar.density, sidecar.lam
        session.set_priors(priors_from(prior))
    settings = session.resolve_params(file_density, file_lam)
    if dense or settings["switch"] == "off":
        session.disable()
        return llm, session
    session.enable(settings["density"] if density is None else density,
                   settings["lambda"] if lam is None else lam, mode)
    return llm, session
