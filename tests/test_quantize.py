"""The quantization ladder through llama.cpp's own quantizer, and the frontier's refusals of bad input."""
import shutil
from collections import namedtuple

import numpy as np
import pytest
from click.testing import CliRunner
from gguf import GGMLQuantizationType, GGUFReader

from glass_gguf.cli import main
from glass_gguf.errors import SettingError
from glass_gguf.quantize import (
    DEFAULT_LADDER, NEEDS_IMATRIX, QuantizeError, estimated_bytes, imatrix_data, parse_ladder, quant_type, quantize,
)
from synthetic import tiny_gguf
from test_imatrix import write_imatrix_dat, write_imatrix_gguf


def test_the_ladder_is_read_as_llama_quantize_names_it():
    assert [q.name for q in parse_ladder("q8_0, Q4_K_M,IQ3_S,q8_0")] == ["Q8_0", "Q4_K_M", "IQ3_S"]
    assert quant_type("Q4_K_M").ftype == 15 and quant_type("IQ4_XS").ftype == 30     # llama.h's enum llama_ftype
    assert not set(DEFAULT_LADDER) & set(NEEDS_IMATRIX)


def test_a_type_the_cpu_quantizer_does_not_make_is_one_line():
    with pytest.raises(SettingError, match=r"'Q3_K_XL' is not a quantization type the CPU quantizer makes here; "
                                           r"choose from F16, BF16, Q8_0"):
        parse_ladder("Q8_0,Q3_K_XL")
    with pytest.raises(SettingError, match="the ladder is empty"):
        parse_ladder(" , ")


def test_imatrix_values_are_the_mean_squares_llama_quantize_passes(tmp_path):
    stats = {"blk.0.ffn_down.weight": np.arange(1, 7, dtype=np.float32)}
    for path in (write_imatrix_gguf(tmp_path / "i.gguf", stats, 4.0), write_imatrix_dat(tmp_path / "i.dat", stats, 4)):
        values = imatrix_data(path)["blk.0.ffn_down.weight"]
        assert values.dtype == np.float32
        np.testing.assert_allclose(values, np.arange(1, 7) / 4.0, rtol=1e-6)


def test_the_size_estimate_is_an_upper_bound_with_fallbacks(tmp_path):
    model = tiny_gguf(tmp_path / "m.gguf", n_embd=64, n_ff=128)   # rows of 64 and 128: every K-type falls back
    weights = sum(int(np.prod(t.shape)) for t in GGUFReader(str(model)).tensors if len(t.shape) == 2)
    assert estimated_bytes(model, quant_type("Q2_K")) >= weights * 8.5 / 8       # at Q8_0's bits


# -- the frontier's refusals, before any work: one line, nothing written ---------------------------------------------


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_frontier_refuses_a_model_without_a_supported_ffn(tmp_path):
    model = tiny_gguf(tmp_path / "phi.gguf", arch="phi3", fused=True)
    res = run("frontier", model, "-o", tmp_path / "f.json", "--work-dir", tmp_path / "work")
    assert res.exit_code == 1 and res.output.count("\n") == 1 and res.output.startswith("Error: ")
    assert "phi3" in res.output
    assert not (tmp_path / "f.json").exists()


def test_frontier_refuses_an_unknown_type_and_a_type_that_needs_an_importance_matrix(tmp_path):
    model = tiny_gguf(tmp_path / "m.gguf")
    res = run("frontier", model, "-o", tmp_path / "f.json", "--ladder", "Q4_K_M,Q9_K")
    assert res.exit_code == 2 and "'Q9_K' is not a quantization type the CPU quantizer makes here" in res.output
    res = run("frontier", model, "-o", tmp_path / "f.json", "--ladder", "Q4_K_M,IQ2_XXS", "--work-dir", tmp_path / "w")
    assert res.exit_code == 1
    assert res.output == ("Error: IQ2_XXS cannot be made without an importance matrix (llama.cpp's rule): pass "
                          "--imatrix FILE (from llama-imatrix) or leave it out of --ladder\n")
    assert not list((tmp_path / "w").glob("*.gguf"))


def test_frontier_checks_free_space_before_it_quantizes(tmp_path, monkeypatch):
    model = tiny_gguf(tmp_path / "m.gguf")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    res = run("frontier", model, "-o", tmp_path / "f.json", "--ladder", "Q8_0,Q4_K_M", "--work-dir", tmp_path / "w")
    assert res.exit_code == 1
    assert res.output.startswith("Error: the ladder (Q8_0, Q4_K_M) needs about ")
    assert "but only 0 MB are free" in res.output and res.output.count("\n") == 1
    assert not list((tmp_path / "w").glob("*.gguf"))


def test_frontier_never_writes_over_its_input(tmp_path):
    model = tiny_gguf(tmp_path / "m.gguf")
    before = model.read_bytes()
    res = run("frontier", model, "-o", model)
    assert res.exit_code == 1 and "the output would replace the input" in res.output
    assert model.read_bytes() == before


# -- the real quantizer (slow) ---------------------------------------------------------------------------------------


def tensor_types(path):
    return {t.name: t.tensor_type for t in GGUFReader(str(path)).tensors}


def test_quantize_makes_the_rung_with_llama_cpp(smollm2_path, tmp_path):
    out = quantize(smollm2_path, tmp_path / "q8.gguf", "Q8_0", threads=2)
    types = tensor_types(out)
    assert types["blk.0.ffn_down.weight"] == GGMLQuantizationType.Q8_0
    assert types["blk.0.attn_norm.weight"] == GGMLQuantizationType.F32
    assert not list(tmp_path.glob(".q8*"))      # no temporary left behind
    with pytest.raises(Exception, match="the output would replace the input"):
        quantize(out, out, "Q4_0")


def test_an_importance_matrix_reaches_llama_cpp(smollm2_path, tmp_path):
    # IQ2_XXS is refused without one; with one (every 2-D weight's input columns), llama.cpp makes it
    with pytest.raises(QuantizeError, match="IQ2_XXS cannot be made without an importance matrix"):
        quantize(smollm2_path, tmp_path / "iq2.gguf", "IQ2_XXS", threads=2)
    stats = {t.name: np.ones(int(t.shape[0]), dtype=np.float32) for t in GGUFReader(str(smollm2_path)).tensors
             if len(t.shape) == 2 and t.name != "token_embd.weight"}
    im = imatrix_data(write_imatrix_gguf(tmp_path / "im.gguf", stats, 1.0))
    out = quantize(smollm2_path, tmp_path / "iq2.gguf", "IQ2_XXS", imatrix=im, threads=2)
    assert GGMLQuantizationType.IQ2_XXS in set(tensor_types(out).values())
