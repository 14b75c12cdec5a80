"""The model fingerprint: the same for a GGUF and its HF export, different for another model; refusals."""
import pytest

from glass_gguf.errors import GlassFormatError, UnsupportedModel
from glass_gguf.fingerprint import fingerprints_match, gguf_model_info, hf_model_info
from synthetic import tiny_gguf


def test_fingerprint_of_gguf_equals_fingerprint_of_its_hf_export(smollm2_path, smollm2_hf_dir):
    gguf, hf = gguf_model_info(smollm2_path), hf_model_info(smollm2_hf_dir)
    assert hf.fingerprint == gguf.fingerprint
    assert (hf.arch, hf.n_layer, hf.n_embd, hf.n_ff[0], hf.n_vocab) == ("llama", 30, 576, 1536, 49152)
    assert gguf.n_ff == (1536,) * 30


def test_fingerprints_differ_between_models(tmp_path):
    a = gguf_model_info(tiny_gguf(tmp_path / "a.gguf", seed=1))
    b = gguf_model_info(tiny_gguf(tmp_path / "b.gguf", seed=2))  # same shapes and vocabulary, other weights
    c = gguf_model_info(tiny_gguf(tmp_path / "c.gguf", n_ff=96))
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
    assert not fingerprints_match(a.fingerprint, b.fingerprint)
    assert fingerprints_match(a.fingerprint, a.fingerprint)
    assert a.fingerprint.startswith("glass-fp1:llama:2x64x128:")


def test_norm_numbers_match_within_one_percent():
    fp = "glass-fp1:llama:2x64x128:0123456789abcdef:1.0,0.5,2"
    assert fingerprints_match(fp, fp.replace("1.0,0.5,2", "1.005,0.5,2"))       # bf16 rounding
    assert not fingerprints_match(fp, fp.replace("1.0,0.5,2", "1.05,0.5,2"))
    assert not fingerprints_match(fp, fp.replace("2x64", "3x64"))
    assert not fingerprints_match(fp, "not a fingerprint")


@pytest.mark.parametrize("kw, message", [
    (dict(arch="phi3", fused=True), "architecture 'phi3' is not supported"),
    (dict(arch="qwen2moe", moe=True), "architecture 'qwen2moe' is not supported"),
    (dict(arch="llama", moe=True), "layer 0 has no dense gated FFN"),
    (dict(arch="llama", fused=True), "layer 0 has no dense gated FFN"),
])
def test_refuses_models_without_a_dense_gated_ffn(tmp_path, kw, message):
    model = tiny_gguf(tmp_path / "m.gguf", **kw)
    with pytest.raises(UnsupportedModel, match=message):
        gguf_model_info(model)


def test_a_prior_file_is_not_a_model(tmp_path):
    from glass_gguf.prior_file import write_prior
    from synthetic import random_prior

    prior = write_prior(tmp_path / "p.gguf", random_prior(gguf_model_info(tiny_gguf(tmp_path / "m.gguf"))))
    with pytest.raises(GlassFormatError, match="no general.architecture"):
        gguf_model_info(prior)
