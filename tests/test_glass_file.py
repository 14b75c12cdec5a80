"""GLASS models and sidecars: convert keeps every model byte, strip gives the model back, refusals leave no file.

Small synthetic GGUFs show the format; the real SmolLM2 GGUF shows it on a quantized model with a real vocabulary,
and that the patched build loads the result.
"""
import os

import numpy as np
import pytest

from glass_gguf import gguf_writer, schema
from glass_gguf.assets import file_sha256
from glass_gguf.errors import FileAccessError, GlassFormatError, PriorMismatch
from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.glass_file import embed_prior, sidecar_path, strip, write_sidecar
from glass_gguf.gguf_reader import field_value, open_gguf
from glass_gguf.prior_file import read_prior, write_prior
from synthetic import random_prior, tiny_gguf


@pytest.fixture
def model(tmp_path):
    return tiny_gguf(tmp_path / "model.gguf", n_layer=3, n_ff=96)


def test_convert_then_strip_is_byte_identical(model, tmp_path):
    info = gguf_model_info(model)
    glass = embed_prior(model, random_prior(info), tmp_path / "glass.gguf", density=0.4, lam=0.25)
    stock = strip(glass, tmp_path / "stock.gguf")
    assert stock.read_bytes() == model.read_bytes()
    # converting a GLASS file again replaces its prior and still strips back to the original
    again = embed_prior(glass, random_prior(info, seed=3), tmp_path / "again.gguf", density=0.5, lam=0.5)
    assert strip(again, tmp_path / "stock2.gguf").read_bytes() == model.read_bytes()
    np.testing.assert_array_equal(read_prior(again).scores[0], random_prior(info, seed=3).scores[0])


def test_the_portable_form_adds_keys_only_and_strips_back_to_the_original(model, tmp_path):
    info = gguf_model_info(model)
    prior = random_prior(info)
    glass = embed_prior(model, prior, tmp_path / "portable.gguf", density=0.4, lam=0.25, form=schema.FORM_METADATA)
    src, dst = open_gguf(model), open_gguf(glass)
    assert [t.name for t in dst.tensors] == [t.name for t in src.tensors]   # what stock loaders count
    assert field_value(dst, schema.KEY_PRIOR_FORM) == "metadata"
    assert field_value(dst, schema.prior_key_name(2)) == pytest.approx(prior.scores[2].tolist())
    back = read_prior(glass)
    for a, b in zip(prior.scores, back.scores):
        np.testing.assert_array_equal(a, b)
    assert strip(glass, tmp_path / "stock.gguf").read_bytes() == model.read_bytes()
    # either form converts into the other and still strips back to the original
    tensors = embed_prior(glass, random_prior(info, seed=2), tmp_path / "tensors.gguf", density=0.5, lam=0.5)
    assert field_value(open_gguf(tensors), schema.KEY_PRIOR_FORM) is None
    assert strip(tensors, tmp_path / "stock2.gguf").read_bytes() == model.read_bytes()
    again = embed_prior(tensors, prior, tmp_path / "again.gguf", density=0.4, lam=0.25, form=schema.FORM_METADATA)
    assert again.read_bytes() == glass.read_bytes()


def test_converted_file_keeps_every_model_record_and_appends_the_prior(model, tmp_path):
    prior = random_prior(gguf_model_info(model))
    glass = embed_prior(model, prior, tmp_path / "glass.gguf", density=0.4, lam=0.25)
    back = read_prior(glass)
    assert back.density == pytest.approx(0.4) and back.lam == pytest.approx(0.25)
    assert back.layer_scale is None             # uniform density unless a split is given
    assert back.sums is None                    # the sums stay in the prior file
    for a, b in zip(prior.scores, back.scores):
        np.testing.assert_array_equal(a, b)
    src, dst = open_gguf(model), open_gguf(glass)
    src_keys = [k for k in src.fields if not k.startswith("GGUF.")]
    dst_keys = [k for k in dst.fields if not k.startswith("GGUF.")]
    assert dst_keys == src_keys + [schema.KEY_VERSION, schema.KEY_PRIOR_KIND, schema.KEY_PRIOR_SOURCE,
                                   schema.KEY_PRIOR_TOKENS, schema.KEY_MODEL_FINGERPRINT, schema.KEY_DENSITY,
                                   schema.KEY_LAMBDA]
    assert [t.name for t in dst.tensors] == [t.name for t in src.tensors] + [
        schema.prior_tensor_name(i) for i in range(3)]
    for a, b in zip(src.tensors, dst.tensors):
        assert a.data.tobytes() == b.data.tobytes()
    assert all((t.data_offset - dst.data_offset) % dst.alignment == 0 for t in dst.tensors)


def test_sidecar_holds_only_the_prior_and_its_defaults(model, tmp_path):
    prior = random_prior(gguf_model_info(model), shard="0/2")
    side = write_sidecar(model, prior, None, density=0.6, lam=0.5)
    assert side == sidecar_path(model) == tmp_path / ("model" + schema.SIDECAR_SUFFIX)
    assert {t.name for t in open_gguf(side).tensors} == {schema.prior_tensor_name(i) for i in range(3)}
    back = read_prior(side)
    assert back.density == pytest.approx(0.6) and back.shard is None and back.sums is None
    np.testing.assert_array_equal(back.scores[2], prior.scores[2])


def test_a_per_layer_density_split_is_stored_as_float32_factors(model, tmp_path):
    prior = random_prior(gguf_model_info(model))
    glass = embed_prior(model, prior, tmp_path / "glass.gguf", density=0.5, lam=0.5, layer_scale=[1.2, 1.0, 0.8])
    assert read_prior(glass).layer_scale == [float(np.float32(x)) for x in (1.2, 1.0, 0.8)]


def test_refuses_a_prior_of_another_model_and_bad_settings(model, tmp_path):
    other = gguf_model_info(tiny_gguf(tmp_path / "other.gguf", n_layer=3, n_ff=96, seed=7))
    out = tmp_path / "out.gguf"
    with pytest.raises(PriorMismatch, match="computed for another model"):
        embed_prior(model, random_prior(other), out, density=0.5, lam=0.5)
    with pytest.raises(PriorMismatch, match="computed for another model"):
        write_sidecar(model, random_prior(other), out, density=0.5, lam=0.5)
    with pytest.raises(ValueError, match=r"density must be in \(0, 1\], got 1.5"):
        embed_prior(model, random_prior(gguf_model_info(model)), out, density=1.5, lam=0.5)
    with pytest.raises(ValueError, match=r"lambda must be in \[0, 1\], got -0.1"):
        embed_prior(model, random_prior(gguf_model_info(model)), out, density=0.5, lam=-0.1)
    with pytest.raises(ValueError, match="per-layer density factors: got 2, the model has 3 layers"):
        embed_prior(model, random_prior(gguf_model_info(model)), out, density=0.5, lam=0.5, layer_scale=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"factor of layer 1 is 20, expected a number in \(0, 16\]"):
        embed_prior(model, random_prior(gguf_model_info(model)), out, density=0.5, lam=0.5, layer_scale=[1, 20, 1])
    assert not out.exists()


def test_strip_refuses_stock_models_prior_files_and_its_own_input(model, tmp_path):
    with pytest.raises(GlassFormatError, match="carries no GLASS prior"):
        strip(model, tmp_path / "s.gguf")
    prior = write_prior(tmp_path / "p.gguf", random_prior(gguf_model_info(model)))
    with pytest.raises(GlassFormatError, match="is a prior file or sidecar, not a model"):
        strip(prior, tmp_path / "s.gguf")
    glass = embed_prior(model, random_prior(gguf_model_info(model)), tmp_path / "g.gguf", density=0.5, lam=0.5)
    with pytest.raises(FileAccessError, match="the output would replace the input"):
        strip(glass, glass)


def test_interrupted_write_leaves_no_file(model, tmp_path, monkeypatch):
    real_copy = gguf_writer.copy

    def copy_then_interrupt(f, data):
        real_copy(f, memoryview(data)[:1000])
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_writer, "copy", copy_then_interrupt)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        embed_prior(model, random_prior(gguf_model_info(model)), tmp_path / "out.gguf", density=0.5, lam=0.5)
    assert sorted(os.listdir(tmp_path)) == before


# --- the real model ------------------------------------------------------------------------------------------------


def test_convert_then_strip_the_real_model(smollm2_path, tmp_path):
    info = gguf_model_info(smollm2_path)
    glass = embed_prior(smollm2_path, random_prior(info), tmp_path / "glass.gguf", density=0.4, lam=0.25)
    assert file_sha256(strip(glass, tmp_path / "stock.gguf")) == file_sha256(smollm2_path)


def test_convert_portable_then_strip_the_real_model(smollm2_path, tmp_path):
    info = gguf_model_info(smollm2_path)
    glass = embed_prior(smollm2_path, random_prior(info), tmp_path / "glass.gguf", density=0.4, lam=0.25,
                        form=schema.FORM_METADATA)
    assert len(open_gguf(glass).tensors) == len(open_gguf(smollm2_path).tensors)
    assert file_sha256(strip(glass, tmp_path / "stock.gguf")) == file_sha256(smollm2_path)


def test_converted_file_loads_in_the_patched_build_with_its_prior(smollm2_path, tmp_path):
    from glass_gguf import runtime
    from llama_cpp import Llama

    info = gguf_model_info(smollm2_path)
    glass = embed_prior(smollm2_path, random_prior(info), tmp_path / "glass.gguf", density=0.4, lam=0.25)
    llm = Llama(model_path=str(glass), n_ctx=64, n_threads=1, verbose=False)
    assert llm.metadata[schema.KEY_PRIOR_KIND] == "activation"
    session = runtime.GlassSession(llm)
    assert all(session.layer_info(i)[1] & runtime.LAYER_HAS_PRIOR for i in range(30))
    assert session.n_ff() == [1536] * 30
