"""The files a command reads and writes: inputs are regular files, and an output is never one of the inputs.

A named pipe opened for reading blocks until someone writes to it, and a device or a folder is no model: inputs are
checked with os.stat before they are opened. An output that is an input (the same path, a symlink to it, or a hard
link: the same device and inode) would be replaced by the command's result; every command refuses that before it
starts working.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import FileAccessError

_KINDS = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


def regular_file(path: str | os.PathLike) -> os.stat_result:
    """os.stat of `path` (symlinks followed) if it is a regular file; else one clear FileAccessError."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileAccessError(f"{path}: no such file") from None
    except OSError as e:
        raise FileAccessError(f"{path}: cannot read it: {e.strerror}") from e
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise FileAccessError(f"{path}: is {kind}, expected a regular file")
    return st


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """`a` and `b` name the same file: the same path, a symlink to it, or a hard link (same device and inode)."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_outputs(outputs, inputs) -> None:
    """Refuse, before any work, an output that is one of the inputs, or an output folder (replaced as a whole) that
    holds one of them."""
    outputs = [Path(o) for o in outputs if o is not None]
    inputs = [Path(i) for i in inputs if i is not None]
    for out in outputs:
        for inp in inputs:
            if same_file(out, inp):
                raise FileAccessError(f"{out}: the output would replace the input {inp} (the same file); "
                                      "choose another output name")
            if out.is_dir() and _inside(inp, out):
                raise FileAccessError(f"{out}: the output folder would replace the input {inp} inside it; "
                                      "choose another output folder")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False
