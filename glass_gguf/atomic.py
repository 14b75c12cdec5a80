"""Atomic writes: a half-written output must never stand under the output's name.

Every file glass-gguf writes (GGUFs, prior files, plots, JSON) goes to a temporary file in the destination folder
and is renamed into place only when complete; an error or Ctrl-C removes the temporary file. A full disk, a
read-only folder or a missing permission is one FileAccessError line.

Temporary names are recognisable, `.NAME.glass-tmp-PID-RANDOM` (folders too: hf-export, convert of an HF folder), so
what a killed run (SIGKILL, a power cut) left behind is removed by the next write into the same folder: a temporary
whose process is gone and which is older than a minute.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import FileAccessError

TMP_MARK = ".glass-tmp-"
_TMP_RE = re.compile(r"\..*\.glass-tmp-(\d+)-[0-9a-f]+")
STALE_AFTER_S = 60.0
# errors that mean "cannot write here", not a bug: full disk or quota, read-only file system, permissions, too big
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENOTDIR,
                 errno.EISDIR, errno.ENAMETOOLONG}


def temporary_name(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside `path`: .NAME.glass-tmp-PID-RANDOM."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def remove_stale_temporaries(folder: str | os.PathLike, now: float | None = None) -> list[Path]:
    """Remove the temporaries of killed runs from `folder`: their process is gone and they are older than a minute
    (a live process, or a PID reused since, keeps them). Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP_RE.fullmatch(entry.name)
        if not m or _alive(int(m.group(1))):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0   # someone else's process
    return True


def write_error(path: str | os.PathLike, e: OSError) -> Exception:
    """The one-line error for an OSError met while writing `path`, or `e` itself if it is not about writing."""
    if e.errno in _WRITE_ERRNOS:
        return FileAccessError(f"cannot write {path}: {e.strerror or e}")
    return e


def prepare_folder(path: str | os.PathLike) -> Path:
    """The folder of output `path`, created if needed, with stale temporaries of killed runs removed."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FileAccessError(f"cannot write {path}: {e.strerror or e}") from e
    remove_stale_temporaries(parent)
    return parent


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator:
    """A binary file object on a temporary file next to `path`, renamed to `path` only if the block completes.

    On any exception (KeyboardInterrupt included) the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    prepare_folder(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        _remove(tmp)   # on a read-only folder there is nothing to remove, and unlink fails with EROFS itself
        _reraise(path, e)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder next to `path`, moved to `path` (replacing a folder there) only if the block completes."""
    path = Path(path)
    prepare_folder(path)
    tmp = temporary_name(path)
    try:
        tmp.mkdir()
        yield tmp
        os.chmod(tmp, 0o755)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _reraise(path, e)


@contextmanager
def scratch_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder next to `path` for intermediate files, removed when the block ends, however it ends."""
    prepare_folder(path)
    tmp = temporary_name(path)
    try:
        tmp.mkdir()
        yield tmp
    except OSError as e:
        _reraise(path, e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove(tmp: Path) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def check_writable(path: str | os.PathLike, folder: bool = False) -> None:
    """Refuse, before any work, an output that cannot be written: the nearest existing folder on its way must take
    a new entry (a temporary file, or for a folder output a temporary folder, made and removed at once). Nothing is
    left behind; a read-only file system, a missing permission or a file where a folder should be is one
    FileAccessError line."""
    path = Path(path)
    target = path.parent
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        raise FileAccessError(f"cannot write {path}: {target} is not a folder")
    probe = temporary_name(target / path.name)
    try:
        if folder or target != path.parent:
            probe.mkdir()
            probe.rmdir()
        else:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(probe)
    except OSError as e:
        _remove(probe)
        raise FileAccessError(f"cannot write {path}: {e.strerror or e}") from e


def _reraise(path, e: BaseException):
    """Re-raise `e`, as a FileAccessError line if it is an OSError about writing `path`."""
    if isinstance(e, OSError):
        err = write_error(path, e)
        if err is not e:
            raise err from e
    raise e


def write_text(path: str | os.PathLike, text: str) -> Path:
    """`path` holds `text` (UTF-8) in full, or is left as it was."""
    with atomic_output(path) as f:
        f.write(text.encode("utf-8"))
    return Path(path)
