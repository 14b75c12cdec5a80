"""Click callbacks shared by the command modules (cli.py, cli_frontier.py): checked comma-separated lists and
numbers in a range, each refusal one line naming the option."""
from __future__ import annotations

import click

from .errors import SettingError


def checked(check):
    """A callback running one of settings' checks on a value given (None passes): its message becomes the option's
    error."""
    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            return check(value)
        except SettingError as e:
            raise click.BadParameter(str(e)) from e
    return callback


def list_of(check, container=list):
    """A callback for comma-separated values, each checked by check(text) (which raises SettingError)."""
    def callback(ctx, param, value):
        try:
            out = container(check(v.strip()) for v in value.split(",") if v.strip())
        except SettingError as e:
            raise click.BadParameter(str(e)) from e
        if not out:
            raise click.BadParameter("give at least one value")
        return out
    return callback


def number_in(what: str, lo: float, hi: float, open_interval: bool = False):
    """check(text) -> float for a number in [lo, hi] (or (lo, hi)), refusing anything else with `what` in the line."""
    interval = f"({lo:g}, {hi:g})" if open_interval else f"[{lo:g}, {hi:g}]"

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise SettingError(f"{what} must be a number, got {text!r}") from None
        inside = lo < value < hi if open_interval else lo <= value <= hi
        if not inside:
            raise SettingError(f"{what} must be in {interval}, got {text}")
        return value
    return check


def token_fractions_or_none(ctx, param, value):
    """Two-level's token fractions (docs/two-level.md): comma-separated shares in (0, 1), or 'none' (no two-level)."""
    if value is None or value.strip().lower() in ("", "none"):
        return ()
    return list_of(number_in("a token fraction", 0.0, 1.0, open_interval=True), tuple)(ctx, param, value)
