"""The wheel and native builds show one progress bar (ninja's steps) and keep the compiler's output in a log."""
import subprocess
import sys

import pytest

from glass_gguf.native import build_tool

NINJA = """
import sys
for i in range(1, 21):
    print(f"[{i}/20] Building CXX object ggml/src/unit{i}.cpp.o")
print("warning: something the log keeps")
sys.exit(int(sys.argv[1]))
"""


def test_a_build_shows_its_steps_and_logs_its_output(tmp_path, capsys):
    tool = build_tool()
    tool.run_with_progress([sys.executable, "-c", NINJA, "0"], "compiling the wheel", tmp_path / "build.log")
    err = capsys.readouterr().err
    assert "[build] compiling the wheel: 2/20 steps (10%)" in err and "20/20 steps (100%)" in err
    assert "Building CXX" not in err                                   # the output went to the log
    log = (tmp_path / "build.log").read_text()
    assert log.count("Building CXX object") == 20 and "warning: something the log keeps" in log


def test_a_failed_build_shows_the_end_of_its_log(tmp_path, capsys):
    tool = build_tool()
    with pytest.raises(subprocess.CalledProcessError):
        tool.run_with_progress([sys.executable, "-c", NINJA, "3"], "compiling host tools", tmp_path / "build.log")
    err = capsys.readouterr().err
    assert "warning: something the log keeps" in err
    assert f"compiling host tools failed; the whole output is in {tmp_path / 'build.log'}" in err
