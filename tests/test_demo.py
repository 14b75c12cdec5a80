"""`glass-gguf demo`, the README's main job, end to end with a tiny budget."""
import json
import subprocess
import sys

from conftest import REPO


def test_demo_runs_the_whole_pipeline_and_reuses_artifacts(tmp_path, smollm2_hf_dir):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "hf").symlink_to(smollm2_hf_dir)  # an earlier run's export: the demo must reuse it
    cmd = [sys.executable, "-m", "glass_gguf.cli", "demo", "--json", "-o", str(out),
           "--prior-tokens", "32", "--densities", "0.5,0.9", "--gen-tokens", "12", "--repeats", "1"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert "exporting" not in run.stderr
    assert "computing the activation prior" in run.stderr

    for key in ("speedup", "kl_glass", "kl_griffin", "kl_glass_no_warmup", "dense_tok_s", "glass_tok_s", "dense_text",
                "glass_text", "dense_repeated", "glass_repeated", "ttft_dense_ms", "ttft_glass_ms"):
        assert key in result
    assert result["warmup"] == 16 and 0.0 <= result["glass_repeated"] <= 1.0
    assert result["speedup"] > 0 and result["kl_glass"] >= 0 and result["kl_griffin"] >= 0
    assert [row["density"] for row in result["sweep"]] == [0.5, 0.9]
    # the side-by-side density is the lowest whose answer loops no more than dense (plus the margin), else 0.9
    limit = result["dense_repeated"] + result["coherence_margin"]
    coherent = [float(d) for d, share in result["repeated_by_density"].items() if share <= limit]
    assert result["density_chosen"] and result["density"] == (min(coherent) if coherent else 0.9)
    assert result["glass_repeated"] == result["repeated_by_density"][str(result["density"])]
    assert (out / "prior-activation.gguf").exists()
    assert (out / "SmolLM2-135M-Instruct.Q4_1.glass.gguf").exists()
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "demo.json").read_text())["kl_glass"] == result["kl_glass"]

    cmd[cmd.index("0.5,0.9")] = "0.9"  # a shorter sweep: this run is about reuse
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "computing the activation prior" not in again.stderr  # the second run reuses what is built
