"""The portable form (`convert --portable`): the prior as glass.prior.blk.N metadata, which stock loaders ignore.

(1) The patched build reads it: plain llama_cpp.Llama on a portable GLASS GGUF has a prior in every supported layer
    and selects exactly the neurons it selects on the tensor-form file with the same prior.
(2) A stock, unpatched libllama of the same llama-cpp-python (tools/build_llama_cpp_python.py --stock-lib, loaded
    through LLAMA_CPP_LIB_PATH) opens it and gives the same greedy tokens as the original model, while it refuses the
    tensor form.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

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
    llm.create_chat_completion(MESSAGES, max_tokens=24, temperature=0.0)
    return flags, session.selected()


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


REPO = Path(__file__).resolve().parent.parent

# runs in a process of its own with the stock libllama: greedy tokens of each model, or the load error
STOCK_SCRIPT = """
import json, sys, llama_cpp
from llama_cpp import llama_cpp as lib
out = {"glass_api": hasattr(lib._lib, "llama_glass_api_version")}
for name in sys.argv[1:]:
    try:
        llm = llama_cpp.Llama(model_path=name, n_ctx=256, n_threads=2, verbose=False)
        out[name] = llm.create_completion("The capital of France is", max_tokens=12, temperature=0.0)["choices"][0]["text"]
    except ValueError as e:
        out[name] = "refused: " + str(e)
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def stock_lib_dir() -> Path:
    run = subprocess.run([sys.executable, str(REPO / "tools" / "build_llama_cpp_python.py"), "--stock-lib"],
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    return Path(run.stdout.strip().splitlines()[-1])


def test_a_stock_build_opens_the_portable_form_as_the_original_model(smollm2_path, tmp_path, stock_lib_dir):
    prior = random_prior(gguf_model_info(smollm2_path))
    portable = embed_prior(smollm2_path, prior, tmp_path / "portable.gguf", density=0.5, lam=0.5,
                           form=schema.FORM_METADATA)
    tensors = embed_prior(smollm2_path, prior, tmp_path / "tensors.gguf", density=0.5, lam=0.5)
    run = subprocess.run([sys.executable, "-c", STOCK_SCRIPT, str(smollm2_path), str(portable), str(tensors)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "LLAMA_CPP_LIB_PATH": str(stock_lib_dir)})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["glass_api"] is False, "the library under test must be the stock one"
    assert not out[str(smollm2_path)].startswith("refused")
    assert out[str(portable)] == out[str(smollm2_path)]
    assert out[str(tensors)].startswith("refused"), "stock llama.cpp refuses the tensor form, hence --portable"
