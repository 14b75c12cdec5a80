"""Rendered blocks in the docs: the text between `<!-- NAME begin -->` and `<!-- NAME end -->` is replaced by what
a results file renders to, so no number in them is typed by hand (bench_table, frontier, two_level_table)."""
from __future__ import annotations


def replace_block(text: str, name: str, body: str) -> str:
    """text with the block NAME holding body (on lines of its own between the markers); ValueError without them."""
    begin, end = f"<!-- {name} begin -->", f"<!-- {name} end -->"
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"no {begin} ... {end} block")
    return text[: start + len(begin)] + "\n" + body.rstrip("\n") + "\n" + text[stop:]
