"""`glass-gguf build-native`: llama.cpp's command-line tools with the GLASS patch series, for this machine or aarch64.

The recipe lives in tools/build_llama_cpp_python.py (standard library only, it also builds the wheel); this module
loads it from the repository and wraps it in a click command.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import click

BUILD_TOOL = Path(__file__).resolve().parent.parent / "tools" / "build_llama_cpp_python.py"


@lru_cache(maxsize=1)
def build_tool() -> ModuleType:
    """tools/build_llama_cpp_python.py as a module (glass-gguf is installed editable from the repository)."""
    if not BUILD_TOOL.exists():
        raise click.ClickException(
            f"{BUILD_TOOL} not found: build-native runs from a clone of the repository (pip install -e .)"
        )
    spec = importlib.util.spec_from_file_location("build_llama_cpp_python", BUILD_TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def native_binaries(target: str = "host", cpu: str | None = None, only: tuple[str, ...] = ()) -> Path:
    """The directory holding the built tools (built now unless cached); raises click.ClickException on failure."""
    tool = build_tool()
    argv = ["--native", target, "--print-path"]
    if cpu:
        argv += ["--cpu", cpu]
    for name in only:
        argv += ["--only", name]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = tool.main(argv)
    if status != 0:
        raise click.ClickException(f"build-native --target {target} failed (the messages above say why)")
    return Path(out.getvalue().strip().splitlines()[-1])


# The choices come from the recipe (one place); without a repository the command still loads and explains at run time.
NATIVE_TOOLS = build_tool().NATIVE_TOOLS if BUILD_TOOL.exists() else ()
AARCH64_CPUS = build_tool().AARCH64_CPUS if BUILD_TOOL.exists() else ()


@click.command("build-native")
@click.option("--target", type=click.Choice(["host", "aarch64"]), default="host", show_default=True,
              help="host: this machine (the wheel's portable x86-64 flags); aarch64: static cross build for ARM64")
@click.option("--cpu", type=click.Choice(AARCH64_CPUS), default=None,
              help="GGML_CPU_ARM_ARCH for --target aarch64: armv8-a runs on any 64-bit ARM; armv8.2-a+dotprod "
                   "needs the asimddp feature (Cortex-A55/A75 and later)  [default: armv8-a]")
@click.option("--only", multiple=True, type=click.Choice(NATIVE_TOOLS),
              help="build only this tool (repeatable) [default: all five]")
@click.option("--print-path", is_flag=True, help="print only the directory of the binaries")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object to stdout")
def build_native(target: str, cpu: str | None, only: tuple[str, ...], print_path: bool, as_json: bool) -> None:
    """Build llama.cpp's own tools (llama-cli, llama-completion, llama-server, llama-bench, llama-imatrix) with
    the GLASS patches, for this machine or a static ARM64 device (docs/deploying.md).

    Same pinned sdist and patch series as the Python wheel, cached under the same kind of key; with ccache the host
    build reuses the wheel's objects. Checks the prerequisites first and names the fix for each missing one.
    """
    if cpu and target != "aarch64":
        raise click.BadParameter("applies to --target aarch64 only", param_hint="--cpu")
    bin_dir = native_binaries(target, cpu, only)
    tools = only or NATIVE_TOOLS
    if as_json:
        click.echo(json.dumps({"bin_dir": str(bin_dir), "tools": [str(bin_dir / name) for name in tools]}, indent=2))
    elif print_path:
        click.echo(bin_dir)
    else:
        for name in tools:
            click.echo(bin_dir / name)


def read_selection_dump(path: Path) -> dict[int, frozenset[int] | None]:
    """The last selection per layer in a GLASS_GGUF_DUMP_SELECTION file (the runtime appends `layer N: i0 i1 ...
    # fnv1a64 HASH` or `layer N: dense` at every selection); None: the layer stayed dense."""
    chosen: dict[int, frozenset[int] | None] = {}
    for line in Path(path).read_text().splitlines():
        head, _, rest = line.partition(":")
        rest = rest.partition("#")[0]  # the hash of the layer's compacted bytes
        chosen[int(head.split()[1])] = None if rest.strip() == "dense" else frozenset(int(i) for i in rest.split())
    return chosen
