"""The errors glass-gguf raises on purpose: each message is one line that says what is wrong and why.

The command line prints these as one `Error: ...` line; anything else is a bug and keeps its traceback.
"""


class GlassGGUFError(Exception):
    """Base of every error raised on purpose for bad input, files or environment."""


class GlassFormatError(GlassGGUFError):
    """A file is not what it should be (not a GGUF, truncated, no prior ...); the message says which and why."""


class NoPrior(GlassFormatError):
    """A file that should carry a GLASS prior carries none."""


class PriorMismatch(GlassFormatError):
    """A prior does not fit the model it is applied to."""


class UnsupportedModel(GlassFormatError):
    """The model's FFN is not a dense gated FFN that GLASS understands."""


class SettingError(GlassGGUFError, ValueError):
    """A setting is out of range or malformed (density, lambda, shard, method, task ...)."""


class AssetError(GlassGGUFError):
    """A packaged model or data set could not be downloaded, or failed its digest check."""


class ExportError(GlassGGUFError):
    """A GGUF cannot be exported to a Hugging Face checkpoint; the message says why."""


# The optional dependencies and what installs each (pyproject.toml): a command that imports one that is missing fails
# with ModuleNotFoundError, which the command line turns into one line naming the command that installs it.
EXTRAS = {"torch": "prior", "transformers": "prior", "safetensors": "prior", "accelerate": "prior",
          "sentencepiece": "prior", "matplotlib": "demo", "pyarrow": "eval"}


def install_command(extra: str) -> str:
    """The command that installs `extra` into the environment running glass-gguf, from this repository (the package
    is installed from a clone, `pip install -e`, and not published). The extras with torch go through `make torch`,
    which takes torch from PyTorch's CPU-only index, when this runs from the repository's .venv."""
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    in_repo_venv = Path(sys.prefix).resolve() == (repo / ".venv").resolve()
    if extra != "demo" and in_repo_venv and (repo / "Makefile").exists():
        return f"make -C {repo} torch"
    pip = f"{Path(sys.executable).parent / 'pip'}"
    target = f'-e "{repo}[{extra}]"' if (repo / "pyproject.toml").exists() else f"'glass-gguf[{extra}]'"
    if extra == "demo":
        return f"{pip} install {target}"
    return (f"{pip} install --no-deps torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && "
            f"{pip} install {target}")


def missing_extra(e: ModuleNotFoundError) -> str | None:
    """The one-line advice for a missing optional dependency, or None if `e` is about something else."""
    root = (e.name or "").split(".")[0]
    if root not in EXTRAS:
        return None
    return f"this command needs {root}, which is not installed: {install_command(EXTRAS[root])}"


class FileAccessError(GlassGGUFError):
    """A file cannot be read or written as asked: not a regular file, no permission, a read-only folder, a full disk,
    or an output that is one of the command's inputs."""


class InvalidGlassFile(GlassFormatError):
    """A GLASS record of a file (a glass.* key or a GLASS tensor) is malformed: the message names the file, the key or
    tensor, what was found and what was expected, in one line."""

    def __init__(self, file: str, item: str, found: str, expected: str):
        super().__init__(f"{file}: {item}: found {found}, expected {expected}")
        self.file, self.item, self.found, self.expected = file, item, found, expected


class GlassWarning(UserWarning):
    """Something accepted but probably not meant (an all-zero prior layer); the command line prints it on stderr."""
