"""Every figure glass-gguf draws: the prior per layer (inspect --plot), quality against density (eval, results)
and the demo's speed and quality. matplotlib is imported only here, inside the functions (the `eval` extra)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")   # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Write the figure as a PNG atomically and free it."""
    with atomic_output(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
    _pyplot().close(fig)
    return Path(path)


def plot_prior(prior, png: str | os.PathLike, title: str = "") -> Path:
    """Per layer: the scores sorted in decreasing order, relative to the layer's mean (log colour scale), next to
    the share of the score held by the top 10% neurons."""
    from matplotlib.colors import LogNorm

    from .inspect_gguf import top_share

    plt = _pyplot()
    width = max(len(s) for s in prior.scores)
    img = np.full((prior.n_layer, width), np.nan)
    for i, s in enumerate(prior.scores):
        s = np.sort(np.asarray(s, dtype=np.float64))[::-1]
        mean = s.mean() if s.mean() > 0 else 1.0
        img[i, : len(s)] = np.maximum(s / mean, 1e-3)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    lo, hi = np.nanpercentile(img, [0.5, 99.5])
    im = ax.imshow(img, aspect="auto", cmap="viridis", norm=LogNorm(vmin=max(lo, 1e-3), vmax=max(hi, lo * 10)),
                   interpolation="nearest")
    ax.set_xlabel("neurons, sorted by prior score")
    ax.set_ylabel("layer")
    ax.set_title(title or f"{prior.kind} prior ({prior.source}, {prior.tokens} tokens)", fontsize=9)
    fig.colorbar(im, ax=ax, label="score / layer mean")
    ax2.barh(range(prior.n_layer), [top_share(s) for s in prior.scores], color="tab:orange")
    ax2.set_ylim(prior.n_layer - 0.5, -0.5)
    ax2.set_xlabel("score share of the top 10% neurons")
    ax2.set_yticks([])
    fig.tight_layout()
    return _save(fig, png, dpi=100)


def plot_quality(records, path: str | os.PathLike, title: str = "", split: str = "all",
                 skip=("random",)) -> Path:
    """PPL and KL against density, one line per setting (method, prior, lambda); dense PPL as a horizontal line.

    records are evaluate.Record. Random selection (orders of magnitude worse) is left out by default so that the
    others stay readable.
    """
    plt = _pyplot()
    rows = [r for r in records if r.split == split]
    lines: dict[str, list] = {}
    for r in rows:
        if r.method != "dense" and r.method not in skip:
            lines.setdefault(r.setting, []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.2))
    for name, rs in lines.items():
        rs = sorted(rs, key=lambda r: r.density)
        kw = {"griffin": dict(color="black", lw=2.2, ls="--"), "random": dict(color="grey", ls=":"),
              "static": dict(ls="-.")}.get(rs[0].method, {})
        for ax, key in zip(axes, ("ppl", "kl")):
            ax.plot([r.density for r in rs], [getattr(r, key) for r in rs], marker="o", ms=4, label=name, **kw)
    dense = [r for r in rows if r.method == "dense"]
    if dense:
        axes[0].axhline(dense[0].ppl, color="black", lw=0.8)
        x0 = min(r.density for r in rows if r.method != "dense")
        axes[0].annotate("dense", (x0, dense[0].ppl), fontsize=8, va="bottom")
    for ax, key in zip(axes, ("perplexity of the dense continuation", "mean KL(dense || method) per token")):
        ax.set_xlabel("density (fraction of FFN neurons kept)")
        ax.set_ylabel(key)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi=110)


def plot_demo(rows: list[dict], png: str | os.PathLike) -> Path:
    """The demo's density sweep: the measured speed-up (median of bench's per-round ratios, with its quartiles), the
    measured ceiling (a statically compacted model of the same shapes and types), the bytes model, and the KL of
    GLASS and GRIFFIN. The title says which prompt and generation lengths the speed was measured with."""
    plt = _pyplot()
    d = [r["density"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    speedup = np.array([r["speedup"] for r in rows])
    spread = np.array([[r["speedup"] - r["speedup_q1"] for r in rows], [r["speedup_q3"] - r["speedup"] for r in rows]])
    ax1.errorbar(d, speedup, yerr=spread, fmt="o-", capsize=3, label="GLASS (median, quartiles)")
    ax1.plot(d, [r["ceiling_speedup"] for r in rows], "ks--", label="ceiling (static model, same shapes)")
    ax1.plot(d, [r["ideal_speedup"] for r in rows], ":", color="grey", label="bytes read (a model, not a bound)")
    ax1.axhline(1.0, color="grey", lw=0.5)
    ax1.set(xlabel="density (fraction of FFN neurons kept)", ylabel="decode speed-up over dense",
            title=f"speed ({rows[0]['prompt_tokens']}-token prompt, {rows[0]['gen_tokens']} tokens decoded)")
    ax1.legend(fontsize=8)
    ax2.plot(d, [r["kl_glass"] for r in rows], "o-", label="GLASS (with its warm-up)")
    if "kl_glass_no_warmup" in rows[0]:
        ax2.plot(d, [r["kl_glass_no_warmup"] for r in rows], "^:", label="GLASS, prompt and prior only")
    ax2.plot(d, [r["kl_griffin"] for r in rows], "s--", label="GRIFFIN (prompt only)")
    ax2.set(xlabel="density", ylabel="mean KL(dense || method)", title="quality cost", yscale="log")
    ax2.legend()
    fig.suptitle("SmolLM2-135M-Instruct Q4_1: GLASS against dense")
    fig.tight_layout()
    return _save(fig, png, dpi=120)


def plot_schedules(records, gen_tokens: int, path: str | os.PathLike, title: str = "", split: str = "all") -> Path:
    """Per density: KL against the share of the answer decoded dense, one point per (warm-up, refresh) schedule,
    GRIFFIN and GLASS apart, with plain GRIFFIN and the oracle as horizontal lines (the gap a schedule can close)."""
    from .evaluate import dense_share

    plt = _pyplot()
    rows = [r for r in records if r.split == split]
    densities = sorted({r.density for r in rows if r.method != "dense"})
    fig, axes = plt.subplots(1, len(densities), figsize=(max(7.5, 5.5 * len(densities)), 4.6), squeeze=False)
    for ax, d in zip(axes[0], densities):
        at = [r for r in rows if r.density == d]
        for method, colour in (("griffin", "tab:blue"), ("glass", "tab:green")):
            pts = sorted((dense_share(r.warmup, r.refresh, gen_tokens), r.kl, r) for r in at if r.method == method)
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=colour, label=method, zorder=3)
            for x, y, r in pts:
                ax.annotate(f"W{r.warmup} R{r.refresh}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        for method, style in (("griffin", "--"), ("oracle", ":")):
            ref = [r for r in at if r.method == method and not (r.warmup or r.refresh)]
            if ref:
                ax.axhline(ref[0].kl, color="grey", linestyle=style, label=f"{method} (prompt only)" if method ==
                           "griffin" else "oracle (the answer's own mask)")
        ax.set_xlabel(f"share of a {gen_tokens}-token answer decoded dense")
        ax.set_ylabel("KL(dense || setting)")
        ax.set_title(f"density {d:g}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi=100)


def plot_soak(results: list[dict], png: str | os.PathLike) -> Path:
    """Each soak's server RSS after every request, and how far into the context each request went: RSS steps where a
    conversation goes further than any before (buffers sized by position fill), and is flat between them if
    nothing leaks. The dotted line marks the end of the warm-up, the cross the furthest position's request."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for r in results:
        n = np.arange(1, len(r["rss_mb_by_request"]) + 1)
        line, = ax1.plot(n, r["rss_mb_by_request"], label=r["server"])
        at = r["furthest_position_request"]
        ax1.plot([at], [r["rss_mb_by_request"][at - 1]], "x", color=line.get_color(), ms=9)
        ax2.plot(n, np.maximum.accumulate(r["positions_by_request"]), color=line.get_color(), label=r["server"])
        ax2.plot(n, r["positions_by_request"], ".", ms=2, color=line.get_color())
    ax1.axvline(results[0]["warmup_requests"], ls=":", color="grey")
    ax1.set(ylabel="server RSS (MB)", title=f"soak: {Path(results[0]['model']).name}, "
                                            f"{results[0]['requests']} chat requests over loopback")
    ax1.legend(fontsize=8)
    ax2.set(xlabel="request", ylabel="context positions", title="each request's (dots) and the furthest so far (line)")
    fig.tight_layout()
    return _save(fig, png, dpi=110)
