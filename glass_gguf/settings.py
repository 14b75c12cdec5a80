"""The user's settings and their defaults, checked in one place: density, lambda and thread count.

The defaults apply wherever a GGUF or sidecar stores none (glass.density, glass.lambda). Without a prior, GLASS
has only the prompt's statistic and lambda 0 is GRIFFIN; with one, 0.5 was the best of {0.25, 0.5, 0.75} on the
models measured (docs/results.md).
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import SettingError

DEFAULT_DENSITY = 0.5           # fraction of FFN neurons kept
DEFAULT_LAMBDA_WITH_PRIOR = 0.5
DEFAULT_LAMBDA_WITHOUT_PRIOR = 0.0   # GRIFFIN: the prompt's statistic alone


def check_density(density) -> float:
    """density as a float in (0, 1]; a SettingError (a ValueError) names the bad value."""
    value = float(density)
    if not 0.0 < value <= 1.0:
        raise SettingError(f"density must be in (0, 1], got {density}")
    return value


def check_lambda(lam) -> float:
    """lambda (the weight of the global rank) as a float in [0, 1]."""
    value = float(lam)
    if not 0.0 <= value <= 1.0:
        raise SettingError(f"lambda must be in [0, 1], got {lam}")
    return value


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
