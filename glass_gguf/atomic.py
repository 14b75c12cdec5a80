"""Atomic writes: a half-written output must never stand under the output's name.

Every file glass-gguf writes (GGUFs, prior files, plots, JSON) goes to a temporary file in the destination folder
and is renamed into place only when complete; an error or Ctrl-C removes the temporary file.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator:
    """A binary file object on a temporary file next to `path`, renamed to `path` only if the block completes.

    On any exception (KeyboardInterrupt included) the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """`path` holds `text` (UTF-8) in full, or is left as it was."""
    with atomic_output(path) as f:
        f.write(text.encode("utf-8"))
    return Path(path)
