"""Writes: atomic, one line for a full disk or a read-only folder, and the leftovers of killed runs cleaned up."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from glass_gguf import atomic
from glass_gguf.errors import FileAccessError

# a run killed (SIGKILL) half way through writing out.gguf: nothing can clean up after it
KILLED_RUN = """
import os, signal, sys
from glass_gguf.atomic import atomic_output
with atomic_output(sys.argv[1]) as f:
    f.write(b"half a model")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_next_write_removes_what_a_killed_run_left(tmp_path):
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path / "out.gguf")], cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".out.gguf.glass-tmp-") and not (tmp_path / "out.gguf").exists()
    # a minute later (its process is gone), the next write into the folder removes it
    old = time.time() - 2 * atomic.STALE_AFTER_S
    os.utime(left, (old, old))
    atomic.write_text(tmp_path / "other.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json"]


def test_temporaries_of_live_or_recent_runs_are_kept(tmp_path):
    mine = atomic.temporary_name(tmp_path / "a.gguf")               # this process is alive
    mine.write_bytes(b"x")
    recent = tmp_path / ".b.gguf.glass-tmp-999999999-abcd1234"     # no such process, but written just now
    recent.write_bytes(b"x")
    old = time.time() - 2 * atomic.STALE_AFTER_S
    os.utime(mine, (old, old))
    unrelated = tmp_path / ".c.gguf.tmp"
    unrelated.write_bytes(b"x")
    os.utime(unrelated, (old, old))
    assert atomic.remove_stale_temporaries(tmp_path) == []
    assert atomic.remove_stale_temporaries(tmp_path, now=time.time() + 120) == [recent]
    assert mine.exists() and unrelated.exists()


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "No space left on device"),
                                        (errno.EROFS, "Read-only file system"),
                                        (errno.EACCES, "Permission denied")])
def test_a_failed_write_is_one_line_and_leaves_nothing(tmp_path, code, words):
    def fail(f):
        f.write(b"x" * 1000)
        raise OSError(code, os.strerror(code))

    with pytest.raises(FileAccessError, match=f"^cannot write {tmp_path / 'out.gguf'}: {words}$"):
        with atomic.atomic_output(tmp_path / "out.gguf") as f:
            fail(f)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_is_one_line(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(atomic, "open", read_only, raising=False)
    with pytest.raises(FileAccessError, match="^cannot write .*/out.json: Read-only file system$"):
        atomic.write_text(tmp_path / "out.json", "{}")


def test_a_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(FileAccessError, match="^cannot write .*/file/out.json: "):
        atomic.write_text(tmp_path / "file" / "out.json", "{}")


def test_a_real_read_only_folder_is_one_line(tmp_path):
    """On a read-only file system the temporary file is never created: removing it fails too (EROFS), and that
    must not replace the one line."""
    import shutil

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("no mount namespaces here (unshare -m)")
    code = ("import sys; from glass_gguf import atomic, errors\n"
            "try: atomic.write_text(sys.argv[1], '{}')\n"
            "except errors.FileAccessError as e: print(e)\n")
    r = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$1" "$1" && shift && exec "$@"', "sh",
                        str(tmp_path), sys.executable, "-c", code, str(tmp_path / "out.json")],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == f"cannot write {tmp_path / 'out.json'}: Read-only file system\n"


def test_check_writable_refuses_before_any_work_and_leaves_nothing(tmp_path):
    atomic.check_writable(tmp_path / "out.gguf")
    atomic.check_writable(tmp_path / "new" / "deeper" / "out.gguf")    # folders to be made: their parent is probed
    atomic.check_writable(tmp_path / "folder", folder=True)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(FileAccessError, match=f"^cannot write {tmp_path}/file/out.gguf: {tmp_path}/file is not a"):
        atomic.check_writable(tmp_path / "file" / "out.gguf")
