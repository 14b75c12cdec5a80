"""The main job needs no torch: `make demo` installs none (Makefile, setup-runtime), and the demo runs without it."""
import json
import subprocess
import sys

import pytest

from conftest import REPO

# an environment without the torch extras: importing any of them fails as if it were not installed
WITHOUT_TORCH = ("import sys; sys.modules.update(torch=None, transformers=None, safetensors=None, accelerate=None, "
                 "sentencepiece=None, pyarrow=None); sys.argv[0] = 'glass-gguf'; "
                 "from glass_gguf.cli import main; main()")


def test_the_demo_runs_without_torch(smollm2_path, tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "demo", "--json", "-o", str(out), "--prior-tokens",
                          "32", "--densities", "0.9", "--gen-tokens", "12", "--repeats", "1"],
                         capture_output=True, text=True, cwd=REPO, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["density"] == 0.9 and result["speedup"] > 0 and result["kl_glass"] >= 0
    assert (out / "demo.png").exists() and (out / "prior-activation.gguf").exists()


def test_make_demo_installs_no_torch():
    """What `make demo` runs: the setup-runtime target, whose pip installs name no extra with torch in it."""
    plan = subprocess.run(["make", "-n", "demo"], capture_output=True, text=True, cwd=REPO).stdout
    installs = [line for line in plan.splitlines() if "pip install" in line]
    assert installs and all("torch" not in line and "[prior" not in line and "[eval" not in line
                            and "[test" not in line for line in installs), installs
    assert 'pip install --quiet -e ".[demo]"' in plan
    tomllib = pytest.importorskip("tomllib")                            # Python 3.11+
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any("torch" in req or "glass-gguf[" in req for req in extras["demo"])
