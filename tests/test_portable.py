"""The portable form (`convert --portable`): the prior as glass.prior.blk.N metadata, which stock loaders ignore.

(1) The patched build reads it: plain llama_cpp.Llama on a portable GLASS GGUF has a prior in every supported layer
    and selects exactly the neurons it selects on the tensor-form file with the same prior.
(2) A stock, unpatched build of the same llama-cpp-python loads it as a dense model (added with that build).
"""
import numpy as np
import pytest
from llama_cpp import Llama

from glass_gguf import runtime, schema
from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.glass_file import embed_prior
from synthetic import random_prior

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]


def selection_after_a_chat(path) -> tuple[list, list]:
    """(layer flags, selected neurons per layer) after one greedy chat completion on plain llama_cpp.Llama."""
    llm = Llama(model_path=str(path), n_ctx=256, n_threads=1, verbose=False)
    session = runtime.GlassSession(llm)
    flags = [session.layer_info(il)[1] for il in range(session.n_layer)]
    llm.create_chat_completion(MESSAGES, max_tokens=8, temperature=0.0)
    return flags, session.selected()


@pytest.mark.xfail(strict=False, reason="runtime reads the metadata form: pending")
def test_the_patched_build_reads_the_portable_form_like_the_tensor_form(smollm2_path, tmp_path):
    prior = random_prior(gguf_model_info(smollm2_path))
    tensors = embed_prior(smollm2_path, prior, tmp_path / "tensors.gguf", density=0.5, lam=0.5)
    portable = embed_prior(smollm2_path, prior, tmp_path / "portable.gguf", density=0.5, lam=0.5,
                           form=schema.FORM_METADATA)
    flags, selected = selection_after_a_chat(portable)
    assert all(f & runtime.LAYER_HAS_PRIOR for f in flags if f & runtime.LAYER_SUPPORTED)
    assert any(f & runtime.LAYER_SUPPORTED for f in flags)
    _, expected = selection_after_a_chat(tensors)
    assert len(selected) == len(expected) and any(s is not None for s in selected)
    for got, want in zip(selected, expected):
        assert (got is None) == (want is None) and (got is None or np.array_equal(got, want))
