"""`glass-gguf tune`: the frontier's measurement, small, on the user's own device, and the GLASS setting it picks.

The same candidates and numbers as frontier.py (KL against the model on its own greedy answers, repeated 8-grams,
whole-answer speed-up against the model's dense speed in the same run), on a few prompts and short answers, with
GLASS at a few densities and a few dense rungs of the quantization ladder to compare with. The choice:

    --max-kl B       the fastest GLASS density whose KL is at most B
    --min-speedup S  the GLASS density with the lowest KL among those at least S times faster than dense

and plainly, whether a dense rung of the ladder, or two-level decoding (docs/two-level.md; measured at every density
and token fraction whose selection fits), serves the same budget better (faster within the KL budget, or closer to
the model at the speed-up asked for). Two-level stays behind its switch (GLASS_GGUF_TOKEN_FRACTION, off by
default): the file written carries the single-level choice, and the advice names the switch when two-level wins.
When no GLASS density meets the budget, nothing is written and the closest one is named.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import SettingError
from .frontier import Row

DEFAULT_TUNE_DENSITIES = (0.4, 0.5, 0.6, 0.75, 0.9)
DEFAULT_TUNE_LADDER = ("Q4_K_M", "Q3_K_M", "IQ4_XS")


class NoCandidate(SettingError):
    """No GLASS setting meets the budget; the message names the closest."""


@dataclass
class Choice:
    glass: Row                      # the GLASS candidate chosen
    quant: Row | None               # the best dense rung within the same budget, if any
    quant_better: bool              # that rung serves the budget better than GLASS
    budget: str
    two_level: Row | None = None    # the best two-level candidate within the same budget, if any
    two_level_better: bool = False  # it serves the budget better than single-level GLASS

    def to_json(self) -> dict:
        return {"budget": self.budget, "glass": self.glass.to_json(),
                "quant": None if self.quant is None else self.quant.to_json(), "quant_better": self.quant_better,
                "two_level": None if self.two_level is None else self.two_level.to_json(),
                "two_level_better": self.two_level_better, "advice": self.advice}

    @property
    def advice(self) -> str:
        g = self.glass
        text = f"GLASS at density {g.density:g}: {g.speedup:.2f}x, KL {g.kl:.4f} ({self.budget})"
        if self.quant_better:
            q = self.quant
            text += (f"; a dense quantization serves this budget better: {q.label} at {q.speedup:.2f}x, "
                     f"KL {q.kl:.4f} (re-quantize the model to {q.label} instead, or measure GLASS on it with "
                     "glass-gguf frontier)")
        if self.two_level_better:
            t = self.two_level
            text += (f"; two-level decoding serves it better: {t.label} at {t.speedup:.2f}x, KL {t.kl:.4f} (off by "
                     f"default: run with GLASS_GGUF_TOKEN_FRACTION={t.token_fraction:g} and GLASS_GGUF_DENSITY="
                     f"{_selection(t):.4g}, docs/two-level.md)")
        return text


def _selection(r: Row) -> float:
    """The selection density of a two-level row (its density is the rows a token reads)."""
    from . import method

    return min(1.0, method.superset_density(r.density, r.token_fraction))


def choose(rows: list[Row], max_kl: float | None = None, min_speedup: float | None = None) -> Choice:
    """The GLASS density (family "glass") that serves the budget best, and the ladder's best dense rung for it.
    Raises NoCandidate (naming the closest GLASS candidate, and a rung that meets the budget) when none does."""
    if (max_kl is None) == (min_speedup is None):
        raise SettingError("give exactly one budget: --max-kl or --min-speedup")
    glass = [r for r in rows if r.family == "glass"]
    rungs = [r for r in rows if r.family == "quant" and "(model)" not in r.base and "(source)" not in r.base]
    two_level = [r for r in rows if r.family == "two-level"]
    if not glass:
        raise SettingError("no GLASS candidate was measured")
    if max_kl is not None:
        budget = f"KL <= {max_kl:g}"
        ok = lambda r: r.kl <= max_kl          # noqa: E731
        better = lambda a, b: a.speedup > b.speedup or (a.speedup == b.speedup and a.kl < b.kl)  # noqa: E731
        closest = min(glass, key=lambda r: r.kl)
    else:
        budget = f"speed-up >= {min_speedup:g}x"
        ok = lambda r: r.speedup >= min_speedup    # noqa: E731
        better = lambda a, b: a.kl < b.kl or (a.kl == b.kl and a.speedup > b.speedup)  # noqa: E731
        closest = max(glass, key=lambda r: r.speedup)

    def best(cands):
        out = None
        for r in cands:
            if ok(r) and (out is None or better(r, out)):
                out = r
        return out

    g, q, t = best(glass), best(rungs), best(two_level)
    if g is None:
        msg = (f"no GLASS density meets {budget} on this device: the closest is density {closest.density:g} "
               f"({closest.speedup:.2f}x, KL {closest.kl:.4f})")
        if q is not None:
            msg += f"; the dense quantization {q.label} meets it ({q.speedup:.2f}x, KL {q.kl:.4f})"
        raise NoCandidate(msg + "; nothing was written")
    return Choice(g, q, q is not None and better(q, g), budget, t, t is not None and better(t, g))
