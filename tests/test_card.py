"""`glass-gguf card`: a Hugging Face model card for a GLASS GGUF, from what the file carries."""
import json

import pytest
from click.testing import CliRunner

from glass_gguf.cli import main
from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.glass_file import embed_prior
from glass_gguf.prior_file import write_prior
from synthetic import random_prior, tiny_gguf


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def glass_file(tmp_path):
    """A small GLASS GGUF with the swept kind of settings (warm-up, per-layer density), its stock model and prior."""
    model = tiny_gguf(tmp_path / "model.gguf", n_layer=3, n_ff=96)
    prior = write_prior(tmp_path / "prior.gguf", random_prior(gguf_model_info(model)))
    glass = tmp_path / "model.glass.gguf"
    r = run("convert", model, "--prior", prior, "-o", glass, "--density", "0.6", "--lambda", "0.25", "--warmup", "24",
            "--layer-split", "1")
    assert r.exit_code == 0, r.output
    return glass, model, prior


def test_the_card_describes_the_file(glass_file):
    glass, _, _ = glass_file
    r = run("card", glass, "--base-model", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert r.exit_code == 0, r.output
    card = r.stdout
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert front.splitlines()[0] == "base_model: HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "- gguf\n- glass\n" in front and "library_name: gguf" in front
    assert "| density | 0.6 |" in body and "| lambda | 0.25 |" in body and "| warm-up | 24 |" in body
    assert "| per-layer density | factors " in body and "over 3 layers" in body
    assert "| calibration | test:random, 100 tokens |" in body and "| stored as | tensors |" in body
    assert "Not measured by glass-gguf" in body                            # not a packaged model
    for how in ('llama_cpp.Llama(model_path="model.glass.gguf"', "python -m llama_cpp.server --model model.glass.gguf",
                "llama-completion -m model.glass.gguf", "llama-server -m model.glass.gguf -fit off --port 8080"):
        assert how in body


def test_the_card_goes_to_o_and_json(glass_file, tmp_path):
    glass, _, _ = glass_file
    r = run("card", glass, "-o", tmp_path / "README.md")
    assert r.exit_code == 0 and r.stdout == f"wrote {tmp_path / 'README.md'}\n"
    assert "names no base model; pass --base-model" in r.stderr
    assert (tmp_path / "README.md").read_text().startswith("---\nlibrary_name: gguf\n")
    out = json.loads(run("card", glass, "--json").stdout)
    assert out["card"] == (tmp_path / "README.md").read_text() and out["base_model"] is None


def test_a_stock_gguf_or_a_prior_file_gets_no_card(glass_file):
    _, model, prior = glass_file
    r = run("card", model)
    assert r.exit_code == 1 and r.output.startswith("Error: model.gguf carries no GLASS prior") and \
        r.output.count("\n") == 1
    r = run("card", prior)
    assert r.exit_code == 1 and r.output.startswith("Error: prior.gguf is a prior file or sidecar, not a model")


def test_a_card_for_the_real_smollm2_names_its_base_model_and_measurements(smollm2_path, tmp_path):
    from glass_gguf import card

    glass = embed_prior(smollm2_path, random_prior(gguf_model_info(smollm2_path)), tmp_path / "smol.glass.gguf",
                        density=0.5, lam=0.5, warmup=24)
    facts, text = card.card(glass)
    assert facts.packaged == "smollm2-135m" and facts.quantization == "Q4_1"
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct\nlicense: apache-2.0\n" in text
    assert "| SmolLM2-135M-Instruct.Q4_1 (activation prior" in text      # what `glass-gguf results` measured
    # a frontier measurement of the model, when there is one, takes the place of the results table
    frontier = {"model": "SmolLM2-135M-Instruct.Q4_1.gguf",
                "frontier": [{"density": 0.5, "speedup": 1.2, "kl": 0.9}, {"density": 0.9, "speedup": 1.03, "kl": 0.1}]}
    (tmp_path / "smollm2-135m-frontier.json").write_text(json.dumps(frontier))
    _, text = card.card(glass, results=tmp_path)
    assert "| density | speedup | kl |\n|---|---|---|\n| 0.5 | 1.2 | 0.9 |\n| 0.9 | 1.03 | 0.1 |" in text
    _, text = card.card(glass, results=tmp_path / "none")
    assert "has no measurement in this copy of glass-gguf" in text
