"""Global priors computed from the HF export of the real SmolLM2-135M (issue 4, item 7).

Calibration budgets are tiny (4 sequences of 16 tokens) so the whole file runs in about a minute on 2 cores.
"""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file

from glass_gguf.cli import main
from glass_gguf.errors import GlassFormatError, PriorMismatch, SettingError, UnsupportedModel
from glass_gguf.fingerprint import hf_model_info
from glass_gguf.glass_file import embed_prior
from glass_gguf.prior import compute_prior, compute_priors, parse_shard
from glass_gguf.prior_file import merge_priors, read_prior, write_prior

BUDGET = dict(tokens=64, seq_len=16, batch_size=2, threads=1)  # 4 sequences in 2 batches


@pytest.fixture(scope="module")
def single_run(smollm2_hf_dir):
    """The activation prior of 4 self-generated sequences, and the sequences themselves."""
    return compute_prior(smollm2_hf_dir, "activation", seed=7, return_sequences=True, **BUDGET)


# --- an independent forward pass in numpy (HF Llama conventions) --------------------------------------------------


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, theta):
    """Rotary embedding of x [heads, T, d], rotate-half convention."""
    d = x.shape[-1]
    inv = 1.0 / theta ** (np.arange(0, d, 2) / d)
    ang = np.arange(x.shape[1])[:, None] * inv[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    rot = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], -1)
    return x * cos + rot * sin


def numpy_ffn_activations(hf_dir, ids, n_layers):
    """h_t = silu(x W_gate) * (x W_up) of the first n_layers layers, for one sequence, in float64."""
    cfg = json.loads((hf_dir / "config.json").read_text())
    w = {k: v.astype(np.float64) for k, v in load_file(str(hf_dir / "model.safetensors")).items()}
    nh, nkv, hd, eps = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["rms_norm_eps"]
    theta = cfg["rope_parameters"]["rope_theta"]
    T = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    causal = np.triu(np.full((T, T), -np.inf), 1)
    hs = []
    for i in range(n_layers):
        p = f"model.layers.{i}."
        a = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (a @ w[p + "self_attn.q_proj.weight"].T).reshape(T, nh, hd).transpose(1, 0, 2)
        k = (a @ w[p + "self_attn.k_proj.weight"].T).reshape(T, nkv, hd).transpose(1, 0, 2)
        v = (a @ w[p + "self_attn.v_proj.weight"].T).reshape(T, nkv, hd).transpose(1, 0, 2)
        q, k = rope(q, theta), rope(k, theta)
        k, v = np.repeat(k, nh // nkv, axis=0), np.repeat(v, nh // nkv, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + causal
        s = np.exp(s - s.max(-1, keepdims=True))
        o = (s / s.sum(-1, keepdims=True)) @ v
        x = x + o.transpose(1, 0, 2).reshape(T, nh * hd) @ w[p + "self_attn.o_proj.weight"].T
        m = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g, u = m @ w[p + "mlp.gate_proj.weight"].T, m @ w[p + "mlp.up_proj.weight"].T
        h = g / (1 + np.exp(-g)) * u
        hs.append(h)
        x = x + h @ w[p + "mlp.down_proj.weight"].T
    return hs, w


def test_prior_of_two_layers_equals_numpy_on_the_same_tokens(single_run, smollm2_hf_dir):
    prior, seqs = single_run
    assert len(seqs) == 4 and all(len(s) == 16 for s in seqs) and prior.tokens == 64
    per_seq = [numpy_ffn_activations(smollm2_hf_dir, np.array(s), 2)[0] for s in seqs]
    for layer in (0, 1):
        h = np.concatenate([hs[layer] for hs in per_seq])  # [64 tokens, 1536]
        expected = np.abs(h).mean(axis=0)
        np.testing.assert_allclose(prior.scores[layer], expected, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(prior.sums[layer], np.abs(h).sum(axis=0), rtol=2e-4, atol=1e-5)


def test_impact_prior_scales_by_the_down_projection_column_norms(single_run, smollm2_hf_dir):
    activation, seqs = single_run
    impact, seqs2 = compute_prior(smollm2_hf_dir, "impact", seed=7, return_sequences=True, **BUDGET)
    assert seqs2 == seqs and impact.kind == "impact"
    w = load_file(str(smollm2_hf_dir / "model.safetensors"))
    for layer in (0, 17, 29):
        norms = np.linalg.norm(w[f"model.layers.{layer}.mlp.down_proj.weight"].astype(np.float64), axis=0)
        np.testing.assert_allclose(impact.scores[layer], activation.scores[layer] * norms, rtol=1e-5)


def test_both_kinds_from_one_pass_equal_each_kind_computed_alone(single_run, smollm2_hf_dir):
    activation, seqs = single_run
    both, seqs2 = compute_priors(smollm2_hf_dir, ("activation", "impact"), seed=7, **BUDGET)
    impact = compute_prior(smollm2_hf_dir, "impact", seed=7, **BUDGET)
    assert seqs2 == seqs and sorted(both) == ["activation", "impact"]
    for layer in (0, 29):
        np.testing.assert_array_equal(both["activation"].scores[layer], activation.scores[layer])
        np.testing.assert_array_equal(both["impact"].scores[layer], impact.scores[layer])


def test_an_unknown_prior_kind_is_refused_before_the_model_is_read(tmp_path):
    with pytest.raises(SettingError, match="kind must be one of .* got 'gradient'"):
        compute_priors(tmp_path / "no-such-model", ("activation", "gradient"))


def test_self_generated_calibration_is_reproducible_with_a_seed(single_run, smollm2_hf_dir):
    _, seqs = single_run
    again, seqs_again = compute_prior(smollm2_hf_dir, "activation", seed=7, return_sequences=True, **BUDGET)
    assert seqs_again == seqs
    np.testing.assert_array_equal(again.scores[3], single_run[0].scores[3])
    _, other = compute_prior(smollm2_hf_dir, "activation", seed=8, return_sequences=True, **BUDGET)
    assert other != seqs


def test_shards_merged_equal_the_single_run(single_run, smollm2_hf_dir, tmp_path):
    prior, seqs = single_run
    runner = CliRunner()
    files = []
    for i in range(2):
        files.append(tmp_path / f"shard{i}.gguf")
        r = runner.invoke(main, ["prior", str(smollm2_hf_dir), "-o", str(files[-1]), "--seed", "7", "--tokens", "64",
                                 "--seq-len", "16", "--batch-size", "2", "--threads", "1", "--shard", f"{i}/2"])
        assert r.exit_code == 0, r.output
    shards = [read_prior(f) for f in files]
    assert [s.shard for s in shards] == ["0/2", "1/2"] and [s.tokens for s in shards] == [32, 32]
    merged_path = tmp_path / "merged.gguf"
    r = runner.invoke(main, ["prior-merge", str(files[0]), str(files[1]), "-o", str(merged_path)])
    assert r.exit_code == 0, r.output
    merged = read_prior(merged_path)
    assert merged.tokens == prior.tokens and merged.source == prior.source and merged.shard is None
    for a, b, sa, sb in zip(merged.scores, prior.scores, merged.sums, prior.sums):
        np.testing.assert_allclose(sa, sb, rtol=1e-12)
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # a shard given twice would be counted twice
    with pytest.raises(GlassFormatError, match="given twice"):
        merge_priors([shards[0], shards[0]])


def test_text_file_calibration(smollm2_hf_dir, tmp_path):
    text = tmp_path / "wiki.txt"
    text.write_text("The Amazon is the largest rainforest on Earth. " * 40 + "Rivers flow to the sea. " * 40)
    prior, seqs = compute_prior(smollm2_hf_dir, "activation", calibration=[str(text)], return_sequences=True,
                                **BUDGET)
    assert prior.source.startswith("files:sha256=") and prior.source.endswith(":4x16")
    assert prior.tokens == 64 and len(seqs) == 4
    assert seqs[0][:5] == hf_tokenizer(smollm2_hf_dir)("The Amazon is the largest")["input_ids"]


def hf_tokenizer(hf_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(hf_dir))


def test_prior_is_accepted_by_the_gguf_and_refused_by_another_model(single_run, smollm2_path, tmp_path):
    prior, _ = single_run
    glass = embed_prior(smollm2_path, prior, tmp_path / "glass.gguf", density=0.5, lam=0.5)
    back = read_prior(glass)
    np.testing.assert_array_equal(back.scores[11], prior.scores[11])
    other = write_prior(tmp_path / "other.gguf", prior)
    p = read_prior(other)
    p.fingerprint = p.fingerprint.replace("30x576x1536", "30x576x1537")
    with pytest.raises(PriorMismatch, match="another model"):
        embed_prior(smollm2_path, p, tmp_path / "x.gguf", density=0.5, lam=0.5)


def test_convert_hf_folder_to_quantized_glass_gguf(single_run, smollm2_hf_dir, tmp_path):
    """convert (b): convert_hf_to_gguf.py of the pinned sdist, then llama_model_quantize, then the prior."""
    prior_path = write_prior(tmp_path / "p.gguf", single_run[0])
    out = tmp_path / "smol-q4_0.gguf"
    r = CliRunner().invoke(main, ["convert", str(smollm2_hf_dir), "--prior", str(prior_path), "-o", str(out),
                                  "--outtype", "q4_0", "--threads", "1"])
    assert r.exit_code == 0, r.output
    from glass_gguf.fingerprint import gguf_model_info
    from glass_gguf.gguf_reader import open_gguf

    assert gguf_model_info(out).fingerprint == hf_model_info(smollm2_hf_dir).fingerprint
    reader = open_gguf(out)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.ffn_up.weight"] == "Q4_0" and types["blk.0.ffn_glass_prior"] == "F32"
    np.testing.assert_array_equal(read_prior(out).scores[0], single_run[0].scores[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.gguf", "smol-q4_0.gguf"]  # no temporary files left


def test_prior_refuses_unsupported_architectures(tmp_path):
    from transformers import MixtralConfig, Phi3Config

    runner = CliRunner()
    for name, cfg in (("phi3", Phi3Config(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                          num_attention_heads=4, vocab_size=100)),
                      ("mixtral", MixtralConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                                num_attention_heads=4, num_key_value_heads=2, vocab_size=100))):
        cfg.save_pretrained(tmp_path / name)
        r = runner.invoke(main, ["prior", str(tmp_path / name), "-o", str(tmp_path / "p.gguf")])
        assert r.exit_code == 1 and f"model type '{name}' is not supported" in r.output, r.output
        with pytest.raises(UnsupportedModel):
            hf_model_info(tmp_path / name)
    assert not (tmp_path / "p.gguf").exists()


def test_prior_refuses_missing_calibration_files_and_bad_shards(smollm2_hf_dir, tmp_path):
    runner = CliRunner()
    base = ["prior", str(smollm2_hf_dir), "-o", str(tmp_path / "p.gguf")]
    r = runner.invoke(main, base + ["--calibration", str(tmp_path / "missing.txt")])
    assert r.exit_code == 1 and "missing.txt: no such calibration file" in r.output
    r = runner.invoke(main, base + ["--shard", "2/2"])
    assert r.exit_code == 1 and "0 <= I < N" in r.output
    assert not (tmp_path / "p.gguf").exists()


def test_parse_shard():
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/2", "x", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


FAMILIES = {
    "llama": ("LlamaConfig", "llama"), "mistral": ("MistralConfig", "llama"), "qwen2": ("Qwen2Config", "qwen2"),
    "qwen3": ("Qwen3Config", "qwen3"), "gemma": ("GemmaConfig", "gemma"), "gemma2": ("Gemma2Config", "gemma2"),
    "gemma3": ("Gemma3TextConfig", "gemma3"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_prior_supports_every_dense_gated_family(family, smollm2_hf_dir, tmp_path):
    """A small randomly initialised checkpoint of each family (with SmolLM2's tokenizer) goes through `prior`."""
    import shutil

    import torch
    import transformers

    cls, arch = FAMILIES[family]
    cfg = getattr(transformers, cls)(num_hidden_layers=2, hidden_size=64, intermediate_size=96, head_dim=16,
                                     num_attention_heads=4, num_key_value_heads=2, vocab_size=49152)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        model.get_decoder().norm.weight.uniform_(0.5, 1.5)
    model.save_pretrained(tmp_path / family)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(smollm2_hf_dir / f, tmp_path / family / f)
    prior = compute_prior(tmp_path / family, "impact", tokens=32, seq_len=16, batch_size=2, threads=1)
    assert prior.n_layer == 2 and all(s.shape == (96,) and np.all(np.isfinite(s)) and s.min() > 0
                                      for s in prior.scores)
    info = hf_model_info(tmp_path / family)
    assert info.fingerprint.startswith(f"glass-fp1:{arch}:2x64x96:")
    final_norm = model.get_decoder().norm.weight.detach().double().numpy()
    stored = final_norm + 1 if family.startswith("gemma") else final_norm  # llama.cpp's convention for Gemma
    assert float(info.fingerprint.split(":")[4].split(",")[0]) == pytest.approx(stored.mean(), rel=1e-4)
