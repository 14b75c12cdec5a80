"""GLASS neuron selection in numpy: the project's specification (docs/design.md, "The method").

For one layer with intermediate activations h_t (row t of an array [tokens, n_ff]):

    local   s_loc[j]  = sqrt( sum_t (h_t[j] / ||h_t||)^2 )          (GRIFFIN, from the prompt)
    global  s_glob[j] = mean_t |h_t[j]|                              (A-GLASS, from calibration text)
            s_glob[j] = mean_t |h_t[j]| * ||W_down[:, j]||           (I-GLASS)
    rank    r(j) = 0 for the largest score; ties go to the smaller neuron index
    GLASS   a[j] = lam * r_glob(j) + (1 - lam) * r_loc(j)   (float64); keep the k smallest a[j],
            ties to the smaller index

The C++ runtime (patches/llama.cpp) must choose exactly the same neurons from the same statistics.
"""
from __future__ import annotations

import math

import numpy as np

from .schema import MAX_LAYER_SCALE

K_MULTIPLE = 32  # k is rounded to whole quant blocks of the compacted down projection


def local_sum_squares(h: np.ndarray) -> np.ndarray:
    """sum_t (h_t / ||h_t||)^2: the additive part of the local statistic (streams over batches of tokens)."""
    h = np.asarray(h, dtype=np.float64)
    norms = np.linalg.norm(h, axis=1, keepdims=True)
    norms[norms == 0] = 1.0  # an all-zero row contributes nothing
    return ((h / norms) ** 2).sum(axis=0)


def local_statistic(h: np.ndarray) -> np.ndarray:
    """GRIFFIN's s_loc over the prompt tokens of one layer."""
    return np.sqrt(local_sum_squares(h))


def activation_prior(h: np.ndarray) -> np.ndarray:
    """A-GLASS: mean |h_t[j]| over calibration tokens."""
    return np.abs(np.asarray(h, dtype=np.float64)).mean(axis=0)


def impact_prior(h: np.ndarray, w_down: np.ndarray) -> np.ndarray:
    """I-GLASS: mean |h_t[j]| scaled by the norm of neuron j's output column; w_down is [n_embd, n_ff]."""
    return activation_prior(h) * np.linalg.norm(np.asarray(w_down, dtype=np.float64), axis=0)


def ranks(scores: np.ndarray) -> np.ndarray:
    """r(j) = 0 for the largest score, n-1 for the smallest; equal scores rank by neuron index."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    r = np.empty(len(scores), dtype=np.int64)
    r[order] = np.arange(len(scores))
    return r


def as_float32(x: float) -> float:
    """A setting as the runtime holds it: the C API, the GGUF keys and the environment all give float32."""
    return float(np.float32(x))


def aggregate(r_glob: np.ndarray, r_loc: np.ndarray, lam: float) -> np.ndarray:
    """Weighted mean rank, lam (as float32) on the global rank, computed in float64 exactly as the C++ does."""
    lam = as_float32(lam)
    return lam * np.asarray(r_glob, dtype=np.float64) + (1.0 - lam) * np.asarray(r_loc, dtype=np.float64)


def top_k(a: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest aggregated ranks, ties to the smaller index, returned in ascending order."""
    keep = np.argsort(np.asarray(a, dtype=np.float64), kind="stable")[:k]
    return np.sort(keep)


def neurons_to_keep(n_ff: int, density: float) -> int:
    """k = density * n_ff rounded to the nearest multiple of 32 (half up), at least 32, at most n_ff.

    density is taken as float32, the type the C API receives, so both sides round the same product.
    """
    if not (0.0 < density <= 1.0):
        raise ValueError(f"density must be in (0, 1], got {density}")
    if density == 1.0:
        return n_ff
    exact = as_float32(density) * n_ff
    k = K_MULTIPLE * math.floor(exact / K_MULTIPLE + 0.5)
    return int(min(n_ff, max(K_MULTIPLE, k)))


def layer_density(density: float, scale: float | None) -> float:
    """The density of one layer under per-layer factors: min(1, density * scale), the product in float32 as the
    runtime computes it (glass.layer_scale, llama_glass_params::layer_scale). No factor: the density itself."""
    if scale is None:
        return density
    return min(1.0, float(np.float32(density) * np.float32(scale)))


def missing_prior_mass(prior: np.ndarray, density: float) -> float:
    """The share of a layer's prior mass outside its k highest-scoring neurons: how much a layer loses at this
    density when its scores are flat, and how little when a few neurons carry them."""
    p = np.sort(np.asarray(prior, dtype=np.float64))[::-1]
    total = p.sum()
    return float(1.0 - p[: neurons_to_keep(len(p), density)].sum() / total) if total > 0 else 0.0


def layer_scale(priors: list[np.ndarray | None], density: float, strength: float) -> list[float]:
    """Per-layer density factors from the prior's concentration: a layer's density grows with its missing prior
    mass to the power `strength` (0: uniform; negative: the concentrated layers get more), then all factors are
    scaled so that the layers keep as many neurons in total as the uniform density (a factor is capped where a
    layer would go past density 1). A layer without a prior gets the mean. Rounded to 4 decimals (stored as f32 in
    glass.layer_scale)."""
    n_ff = np.array([len(p) if p is not None else 0 for p in priors], dtype=np.float64)
    if strength == 0 or not n_ff.any():
        return [1.0] * len(priors)
    missing = np.array([missing_prior_mass(p, density) if p is not None else np.nan for p in priors])
    known = ~np.isnan(missing)
    mean = np.average(missing[known], weights=n_ff[known])
    missing[~known] = mean
    raw = (np.maximum(missing, 1e-6) / max(mean, 1e-6)) ** strength
    target = density * n_ff[known].sum()
    lo, hi = 0.0, 1.0 / density / raw.min()     # c: sum n_ff * min(1, density * c * raw) = target
    for _ in range(60):
        c = (lo + hi) / 2
        kept = (n_ff[known] * np.minimum(1.0, density * c * raw[known])).sum()
        lo, hi = (c, hi) if kept < target else (lo, c)
    return [float(min(MAX_LAYER_SCALE, max(1e-4, round(x, 4)))) for x in (lo + hi) / 2 * raw]


def select(s_loc: np.ndarray | None, s_glob: np.ndarray | None, lam: float, k: int) -> np.ndarray:
    """The GLASS neuron set of one layer. lam=0 is GRIFFIN, lam=1 is static pruning by the prior.

    A missing signal means its weight is forced: no prior gives GRIFFIN, no local statistic gives the prior.
    """
    if not (0.0 <= lam <= 1.0):
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    if s_glob is None and s_loc is None:
        raise ValueError("select needs a local statistic, a prior, or both")
    if s_glob is None:
        return top_k(ranks(s_loc), k)
    if s_loc is None:
        return top_k(ranks(s_glob), k)
    return top_k(aggregate(ranks(s_glob), ranks(s_loc), lam), k)


def select_layers(
    sum_squares: list[np.ndarray],
    rows: list[int],
    priors: list[np.ndarray | None],
    lam: float,
    density: float,
    scale: list[float] | None = None,
) -> list[np.ndarray | None]:
    """Neuron sets for every layer from the statistics the runtime collects (scale: per-layer density factors).

    sum_squares[i] is sum_t (h_t/||h_t||)^2 of layer i and rows[i] how many tokens it saw. A layer that saw fewer
    rows than the fullest layer (the last one, whose FFN runs only on the rows that need logits) selects from its
    prior alone. A layer with neither usable rows nor a prior stays dense (None).
    """
    full = max(rows) if rows else 0
    chosen: list[np.ndarray | None] = []
    scale = scale or [None] * len(sum_squares)
    for ss, n, prior, s in zip(sum_squares, rows, priors, scale):
        k = neurons_to_keep(len(ss), layer_density(density, s))
        usable_local = n > 0 and n == full
        if not usable_local and prior is None:
            chosen.append(None)
            continue
        s_loc = np.sqrt(np.asarray(ss, dtype=np.float64)) if usable_local else None
        chosen.append(select(s_loc, prior, lam, k))
    return chosen


# -- the generation schedule (docs/runtime.md, "Warm-up and refresh") -----------------------------------------------

def collected_positions(n: int, warmup: int, refresh: int) -> np.ndarray:
    """Which of the first n generated positions decode dense and join the local statistic: the first `warmup`,
    then every `refresh`-th one (0: none). Every other position decodes under the selection made from all rows
    collected before it."""
    d = np.arange(n)
    collected = d < warmup
    if refresh:
        collected |= (d >= warmup) & ((d - warmup) % refresh == refresh - 1)
    return collected


def schedule_segments(n: int, warmup: int, refresh: int) -> list[tuple[int, int, bool]]:
    """(start, end, collected) runs of equal kind over the first n generated positions: what a client may feed as
    one batch each."""
    collected = collected_positions(n, warmup, refresh)
    out, start = [], 0
    for d in range(1, n + 1):
        if d == n or collected[d] != collected[start]:
            out.append((start, d, bool(collected[start])))
            start = d
    return out


def refreshed(previous: np.ndarray | None, new: np.ndarray | None, k: int, min_change: float) -> np.ndarray | None:
    """A refresh keeps a layer's previous set unless more than min_change * k of the new set's neurons are not in it
    (compacting a layer again costs about as much as decoding a token; a small change is not worth it)."""
    if previous is None or new is None:
        return new
    added = np.setdiff1d(new, previous, assume_unique=True).size
    return previous if added <= np.float32(min_change) * np.float64(k) else new


# -- two-level decoding: a per-token choice inside the prompt's selection (docs/two-level.md) ----------------------

def superset_density(density: float, token_fraction: float) -> float:
    """The prompt-level density D whose two-level decode reads `density` of the FFN rows per token on average: a
    token reads every gate row of the D * n_ff selected neurons and the up and down rows of its own share f of them,
    so density = D * (1 + 2 f) / 3."""
    if not (0.0 < token_fraction <= 1.0):
        raise ValueError(f"a token fraction must be in (0, 1], got {token_fraction}")
    return 3.0 * density / (1.0 + 2.0 * token_fraction)


def neurons_per_token(k: int, token_fraction: float) -> int:
    """How many of a layer's k selected neurons each token keeps: f * k (f as float32) rounded half up, at least 1."""
    return int(min(k, max(1, math.floor(as_float32(token_fraction) * k + 0.5))))


def token_select(gate_activation: np.ndarray, keep: int) -> np.ndarray:
    """The neurons one token keeps among its layer's selected ones: the `keep` largest |act(gate)| (gate_activation
    over the selected neurons, in their order), ties to the smaller position; positions in ascending order."""
    order = np.argsort(-np.abs(np.asarray(gate_activation, dtype=np.float64)), kind="stable")[:keep]
    return np.sort(order)
