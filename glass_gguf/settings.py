"""The user's settings and their defaults, checked in one place: density, lambda and thread count.

The defaults apply wherever a GGUF or sidecar stores none (glass.density, glass.lambda). Without a prior, GLASS
has only the prompt's statistic and lambda 0 is GRIFFIN; with one, 0.5 was the best of {0.25, 0.5, 0.75} on the
models measured (docs/results.md).

density and lambda are read the way the runtime reads GLASS_GGUF_DENSITY / GLASS_GGUF_LAMBDA (glass_parse_float in
the runtime patch): text must be a plain decimal number (digits, '.', an exponent, signs; no hex floats, inf, nan,
spaces or underscores), and the range is checked on the float32 value the C API receives.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from .errors import SettingError
from .schema import MAX_LAYER_SCALE

DEFAULT_DENSITY = 0.5           # fraction of FFN neurons kept
DEFAULT_LAMBDA_WITH_PRIOR = 0.5
DEFAULT_LAMBDA_WITHOUT_PRIOR = 0.0   # GRIFFIN: the prompt's statistic alone


_PLAIN_NUMBER = re.compile(r"[0-9.eE+-]+")


def _number(value, name: str) -> float:
    """A finite float from a number or from text the runtime would accept (module docstring)."""
    if isinstance(value, str):
        if not _PLAIN_NUMBER.fullmatch(value):
            raise SettingError(f"{name} must be a plain decimal number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise SettingError(f"{name} must be a plain decimal number, got {value!r}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SettingError(f"{name} must be a number, got {value!r}")
    else:
        number = float(value)
    if not math.isfinite(number):
        raise SettingError(f"{name} must be a finite number, got {value}")
    return number


def _in_range(value, name: str, lo_open: bool) -> float:
    number = _number(value, name)
    as_f32 = float(np.float32(number)) if abs(number) < 1e38 else number
    if not ((as_f32 > 0.0 if lo_open else as_f32 >= 0.0) and as_f32 <= 1.0):
        raise SettingError(f"{name} must be in {'(' if lo_open else '['}0, 1], got {value}")
    return min(max(number, 0.0), 1.0)   # a double a hair outside that float32 rounds into range: its bound


def check_density(density) -> float:
    """density as a float in (0, 1]; a SettingError (a ValueError) names the bad value."""
    return _in_range(density, "density", lo_open=True)


def check_lambda(lam) -> float:
    """lambda (the weight of the global rank) as a float in [0, 1]."""
    return _in_range(lam, "lambda", lo_open=False)


def default_lambda(has_prior: bool) -> float:
    """The lambda to use when neither the user nor the file gives one."""
    return DEFAULT_LAMBDA_WITH_PRIOR if has_prior else DEFAULT_LAMBDA_WITHOUT_PRIOR


def physical_cores(cpuinfo: str | None = None) -> int:
    """Physical cores this process may use: one thread per core is fastest for memory-bound decoding and torch.

    Counted from /proc/cpuinfo (distinct physical id / core id pairs, so SMT siblings count once), capped by the
    CPUs this process may run on; os.cpu_count() where /proc/cpuinfo says nothing.
    """
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    cores, physical = set(), "0"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "physical id":
            physical = value.strip()
        elif key.strip() == "core id":
            cores.add((physical, value.strip()))
    return max(1, min(len(cores), allowed) if cores else allowed)


def check_layer_scale(scale, n_layer: int) -> list[float] | None:
    """Per-layer density factors (glass.layer_scale) as the runtime accepts them: one per layer, each a float32 in
    (0, 16]; None stays None (every layer at the density)."""
    if scale is None:
        return None
    values = np.asarray(scale, dtype=np.float32)
    if values.shape != (n_layer,):
        raise SettingError(f"per-layer density factors: got {values.size}, the model has {n_layer} layers")
    bad = ~(np.isfinite(values) & (values > 0) & (values <= MAX_LAYER_SCALE))
    if bad.any():
        raise SettingError(f"per-layer density factor of layer {int(np.argmax(bad))} is {values[bad][0]:g}, "
                           f"expected a number in (0, {MAX_LAYER_SCALE:g}]")
    return [float(x) for x in values]
