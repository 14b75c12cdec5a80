"""GLASS on a llama_cpp.Llama: the user-facing layer over runtime.GlassSession.

A GLASS GGUF (made by `glass-gguf convert`) needs none of this: the patched library enables GLASS on every context
it creates for such a file, with its glass.density and glass.lambda, under plain llama_cpp.Llama and under
`python -m llama_cpp.server`. Environment variables change that without code:

    GLASS_GGUF=off                    dense, even for a GLASS GGUF
    GLASS_GGUF=on                     GLASS for a stock GGUF too (GRIFFIN unless a prior is set)
    GLASS_GGUF_DENSITY=0.6            override glass.density
    GLASS_GGUF_LAMBDA=0.25            override glass.lambda

This module adds what a file cannot carry: a prior from a sidecar file or numpy arrays, and explicit settings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .runtime import LAYER_HAS_PRIOR, GlassSession


def priors_from(source) -> list[np.ndarray]:
    """Per-layer prior arrays from a sidecar / prior GGUF path, or a sequence of arrays."""
    if isinstance(source, (str, Path)):
        from .gguf_io import read_prior

        return [np.asarray(s, dtype=np.float32) for s in read_prior(source).scores]
    return [None if s is None else np.asarray(s, dtype=np.float32) for s in source]


def check_prior_matches_model(model_path: str | Path, prior_path: str | Path) -> None:
    """Refuse a sidecar computed for another model (fingerprint, layer count, lengths), as convert does."""
    from .gguf_io import gguf_model_info, read_prior, validate_prior

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

    density/lam default to what the GGUF or sidecar stores (glass.density, glass.lambda), else 0.5 and, without
    any prior, lambda 0 (GRIFFIN). dense=True gives the same model with GLASS off, for comparisons.
    """
    import llama_cpp

    llama_kwargs.setdefault("verbose", False)
    llm = llama_cpp.Llama(model_path=str(model_path), **llama_kwargs)
    session = GlassSession(llm)
    if dense:
        session.disable()
        return llm, session

    stored = session.params if session.state != "off" else {}
    if prior is not None:
        if isinstance(prior, (str, Path)):
            check_prior_matches_model(model_path, prior)
            from .gguf_io import read_prior

            sidecar = read_prior(prior)
            stored = {"density": sidecar.density, "lambda": sidecar.lam}
        session.set_priors(priors_from(prior))
    has_prior = any(session.layer_info(il)[1] & LAYER_HAS_PRIOR for il in range(session.n_layer))
    density = density if density is not None else (stored.get("density") or 0.5)
    if lam is None:
        lam = stored.get("lambda") if stored.get("lambda") is not None else (0.5 if has_prior else 0.0)
    session.enable(density, lam, mode)
    return llm, session
