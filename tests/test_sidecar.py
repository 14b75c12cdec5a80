"""A sidecar prior that every client of libllama finds: GLASS_GGUF_PRIOR=PATH, or MODEL.glass-prior.gguf beside it.

No glass_gguf code runs between the user and libllama here: plain llama_cpp.Llama and llama_cpp.server on an
untouched GGUF, as native binaries would see it. The client finds the file (llama-cpp-python's glass_policy, llama.cpp's
common/glass.cpp) and attaches it as an adapter; libllama checks it against the model (architecture, shapes, norm
weights) and refuses one computed for another model, and the Llama then refuses to start.
"""
import os
from dataclasses import replace

import numpy as np
import pytest

import llama_cpp

from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.glass_file import sidecar_path, write_sidecar
from glass_gguf.prior_file import Prior
from glass_gguf.runtime import LAYER_HAS_PRIOR, GlassError, GlassSession
from glass_checks import assert_decoded_sparse, assert_server_answers_like_this_process, sparse_after_swap

pytestmark = pytest.mark.slow


def seeded_prior(model_path, seed=0) -> Prior:
    info = gguf_model_info(model_path)
    rng = np.random.default_rng(seed)
    return Prior(kind="activation", source=f"test:seed={seed}", tokens=0, fingerprint=info.fingerprint,
                 scores=[rng.gamma(2.0, 1.0, n).astype(np.float32) for n in info.n_ff])


@pytest.fixture()
def model_with_sidecar(smollm2_path, tmp_path):
    """A copy of the stock model with MODEL.glass-prior.gguf beside it (density 0.75, lambda 0.25)."""
    model = tmp_path / "smollm2.gguf"
    model.symlink_to(smollm2_path)  # the sidecar is looked up beside the path the client opens
    write_sidecar(model, seeded_prior(model), sidecar_path(model), density=0.75, lam=0.25)
    return model


def load(path, **kw):
    return llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=2, verbose=False, **kw)


def has_priors(glass):
    return all(glass.layer_info(il)[1] & LAYER_HAS_PRIOR for il in range(glass.n_layer))


@pytest.mark.claims_sparse
def test_a_sidecar_beside_the_model_is_picked_up(model_with_sidecar):
    llm = load(model_with_sidecar)
    glass = GlassSession(llm)
    assert glass.params == {"density": 0.75, "lambda": 0.25, "mode": "auto"}
    assert has_priors(glass)
    out = llm.create_completion("The sky is blue because", max_tokens=24, temperature=0.0)  # past the swap
    assert out["usage"]["completion_tokens"] == 24
    assert_decoded_sparse(glass, exactly=sparse_after_swap(24))


def test_glass_gguf_prior_points_at_a_sidecar_anywhere(smollm2_path, tmp_path, monkeypatch):
    sidecar = write_sidecar(smollm2_path, seeded_prior(smollm2_path), tmp_path / "elsewhere.gguf", density=0.6,
                            lam=0.5)
    monkeypatch.setenv("GLASS_GGUF_PRIOR", str(sidecar))
    glass = GlassSession(load(smollm2_path))
    assert glass.params["density"] == pytest.approx(0.6)
    assert has_priors(glass)


def prior_for_a_twin(model_path):
    """A prior whose fingerprint has the model's shapes and other norm weights: computed for another model."""
    prior = seeded_prior(model_path)
    fp = prior.fingerprint.split(":")
    fp[4] = ",".join(str(float(x) * 1.5 + 0.1) for x in fp[4].split(","))
    return replace(prior, fingerprint=":".join(fp))


def test_a_prior_for_another_model_is_refused_when_the_llama_is_made(smollm2_path, tmp_path, monkeypatch):
    sidecar = write_sidecar_unchecked(tmp_path / "other.gguf", prior_for_a_twin(smollm2_path))
    monkeypatch.setenv("GLASS_GGUF_PRIOR", str(sidecar))
    with pytest.raises(ValueError) as refused:
        load(smollm2_path)
    assert str(refused.value) == (f"GLASS: GLASS_GGUF_PRIOR={sidecar} is refused: {sidecar}: the prior was computed "
                                  "for another model of the same shape (its norm weights differ) (GLASS_GGUF=off runs "
                                  "the model dense)")
    monkeypatch.setenv("GLASS_GGUF", "off")
    assert GlassSession(load(smollm2_path)).state == "off"


def test_a_sidecar_beside_the_model_for_another_model_is_refused(smollm2_path, tmp_path):
    model = tmp_path / "smollm2.gguf"
    model.symlink_to(smollm2_path)
    write_sidecar_unchecked(sidecar_path(model), prior_for_a_twin(smollm2_path))
    with pytest.raises(ValueError, match=rf"GLASS: the sidecar prior {sidecar_path(model)} is refused: .*its norm "
                                         r"weights differ"):
        load(model)


def test_a_sidecar_with_a_layer_split_for_another_layer_count_is_refused(smollm2_path, tmp_path, monkeypatch):
    prior = replace(seeded_prior(smollm2_path), layer_scale=[1.0] * 5)
    sidecar = write_sidecar_unchecked(tmp_path / "split.gguf", prior)
    monkeypatch.setenv("GLASS_GGUF_PRIOR", str(sidecar))
    with pytest.raises(ValueError, match=r"glass.layer_scale: .*5"):
        load(smollm2_path)


def test_libllama_opens_only_the_prior_file_its_client_names(model_with_sidecar, tmp_path, monkeypatch):
    """With the Llama's policy off, libllama alone does not find the sidecar beside the model; a client attaches it
    (or another file) as an adapter, and detaches it."""
    monkeypatch.setenv("GLASS_GGUF", "off")
    glass = GlassSession(load(model_with_sidecar))
    assert not any(glass.layer_info(il)[1] & LAYER_HAS_PRIOR for il in range(glass.n_layer))
    assert glass.resolve_params()["density"] == pytest.approx(0.5)

    glass.attach_prior_file(sidecar_path(model_with_sidecar))
    assert has_priors(glass)
    assert glass.resolve_params()["density"] == pytest.approx(0.75)
    glass.enable(0.75, 0.25)
    with pytest.raises(GlassError, match="while GLASS is off"):
        glass.detach_prior_file()
    glass.disable()

    other = write_sidecar_unchecked(tmp_path / "other.gguf", prior_for_a_twin(model_with_sidecar))
    with pytest.raises(GlassError, match="another model of the same shape"):
        glass.attach_prior_file(other)
    assert has_priors(glass), "a refused file leaves the attached prior in place"
    glass.detach_prior_file()
    assert not any(glass.layer_info(il)[1] & LAYER_HAS_PRIOR for il in range(glass.n_layer))


def write_sidecar_unchecked(path, prior):
    from glass_gguf.prior_file import write_prior

    return write_prior(path, replace(prior, density=0.5, lam=0.5, shard=None), with_sums=False)


@pytest.mark.claims_sparse
def test_the_server_runs_glass_on_an_untouched_gguf_with_a_sidecar(model_with_sidecar, tmp_path):
    """The server finds the sidecar and answers as GLASS does in this process: 31 of 48 tokens decoded sparse, an
    answer that differs from the dense one."""
    messages = [{"role": "user", "content": "List the planets of the solar system and describe each one in detail."}]
    assert_server_answers_like_this_process(
        model_with_sidecar, messages, tmp_path / "server.log", load,
        [f"glass: prior from {sidecar_path(model_with_sidecar)}", "glass: enabled (density 0.750, lambda 0.250, auto mode)"])


def test_a_named_pipe_as_the_model_fails_at_once(tmp_path):
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    with pytest.raises(ValueError):
        load(fifo)
