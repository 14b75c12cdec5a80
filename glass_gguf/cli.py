"""The `glass-gguf` command line."""
from __future__ import annotations

import json

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def main() -> None:
    """GLASS: prompt-aware FFN sparsification for llama.cpp GGUF models."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def doctor(as_json: bool) -> None:
    """Report the llama-cpp-python build in use and whether it carries the GLASS API."""
    from .doctor import report

    info = report()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "build_flags":
            for sub, v in value.items():
                click.echo(f"{'build.' + sub:28} {v}")
        else:
            click.echo(f"{key:28} {value}")
    if not info["glass_api"]:
        from .runtime import FIX_HINT

        click.echo(f"\nThis llama-cpp-python has no GLASS API: {FIX_HINT}.")


if __name__ == "__main__":
    main()
