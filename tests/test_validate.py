"""The validation layer: every malformed GLASS record is refused in one line naming the file, the key or tensor, what
was found and what was expected. The files are written with gguf-py (synthetic.py), not with glass-gguf's writer."""
import warnings

import numpy as np
import pytest
from gguf import GGUFValueType

from glass_gguf.errors import GlassFormatError, GlassWarning, InvalidGlassFile, PriorMismatch
from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.prior_file import read_prior
from glass_gguf.validate import check_glass_file, check_prior_file
from synthetic import (ARR, F32, I64, STR, U32, glass_keys, glass_tensors, prior_gguf, random_prior,
                       tiny_gguf)

SHAPE = dict(n_layer=3, n_ff=96)


@pytest.fixture
def prior(tmp_path):
    return random_prior(gguf_model_info(tiny_gguf(tmp_path / "model.gguf", **SHAPE)))


def glass_model(tmp_path, prior, keys=None, tensors=None, form=None, drop=()):
    """The tiny model with `prior` embedded, its keys and tensors changed as given."""
    k = {**glass_keys(prior, form=form), **(keys or {})}
    t = {**({} if form == "metadata" else glass_tensors(prior)), **(tensors or {})}
    for name in drop:
        k.pop(name, None)
        t.pop(name, None)
    return tiny_gguf(tmp_path / "glass.gguf", **SHAPE, keys=k, tensors=t)


def test_well_formed_files_pass_in_either_form(tmp_path, prior):
    assert check_glass_file(tiny_gguf(tmp_path / "stock.gguf", **SHAPE)) == []
    for form in (None, "metadata"):
        path = glass_model(tmp_path, prior, form=form)
        assert check_glass_file(path) == []
        np.testing.assert_array_equal(read_prior(path).scores[2], prior.scores[2])
        assert check_prior_file(path, tmp_path / "model.gguf") == []
    side = prior_gguf(tmp_path / "side.gguf", glass_keys(prior), glass_tensors(prior))
    assert check_prior_file(side, tmp_path / "model.gguf") == []
    with pytest.raises(GlassFormatError, match="side.gguf: a prior file or sidecar, not a model"):
        check_glass_file(side)


BAD_KEYS = [  # (key, (type, value), expected message after "glass.gguf: ")
    ("glass.version", (U32, 999), r"glass.version: found version 999, expected 1 \(the version this tool reads\)"),
    ("glass.version", (U32, 0), "glass.version: found version 0, expected 1"),
    ("glass.version", (STR, "1"), "glass.version: found string '1', expected u32"),
    ("glass.density", (F32, 0.0), r"glass.density: found 0, expected a number in \(0, 1\]"),
    ("glass.density", (F32, -1.0), r"glass.density: found -1, expected a number in \(0, 1\]"),
    ("glass.density", (F32, float("nan")), r"glass.density: found nan, expected a number in \(0, 1\]"),
    ("glass.density", (U32, 1), "glass.density: found u32 1, expected f32"),
    ("glass.lambda", (F32, 1.5), r"glass.lambda: found 1.5, expected a number in \[0, 1\]"),
    ("glass.lambda", (STR, "abc"), "glass.lambda: found string 'abc', expected f32"),
    ("glass.prior.tokens", (I64, -5), "glass.prior.tokens: found -5, expected a token count >= 0"),
    ("glass.prior.tokens", (F32, float("inf")), "glass.prior.tokens: found f32 inf, expected an integer"),
    ("glass.prior.tokens", (ARR, [1.0, 2.0], F32), "glass.prior.tokens: found an array of 2 f32, expected an integer"),
    ("glass.prior.kind", (STR, "magic"), "glass.prior.kind: found 'magic', expected one of activation, impact"),
    ("glass.prior.kind", (U32, 1), "glass.prior.kind: found u32 1, expected a string"),
    ("glass.prior.shard", (STR, "3/2"), r"glass.prior.shard: found '3/2', expected a shard 'I/N'"),
    ("glass.prior.shard", (STR, "a/b"), r"glass.prior.shard: found 'a/b', expected a shard 'I/N'"),
    ("glass.prior.form", (STR, "pickle"), "glass.prior.form: found 'pickle', expected one of tensors, metadata"),
    ("glass.prior.model_fingerprint", (STR, "xyz"), "glass.prior.model_fingerprint: found 'xyz', expected a fingerp"),
    ("glass.lamda", (F32, 0.5), "'glass.lamda': found an unknown GLASS key"),
    ("glass.refresh", (U32, 1), r"glass.refresh: found 1, expected a token count up to 1048576 \(refresh: 0 or"),
    ("glass.warmup", (F32, 16.0), "glass.warmup: found f32 16.0, expected u32"),
    ("glass.layer_scale", (ARR, [1.0, 2.0], F32), "glass.layer_scale: found 2 factors, expected one for each of the "
                                                  "prior's 3 layers"),
    ("glass.layer_scale", (ARR, [1.0, 0.0, 1.0], F32), r"glass.layer_scale: found 0, expected factors in \(0, 16\]"),
    ("glass.layer_scale", (F32, 1.0), "glass.layer_scale: found f32 1.0, expected an array of f32, one per layer"),
]


@pytest.mark.parametrize("key,value,message", BAD_KEYS, ids=[f"{k}={v[1]!r}" for k, v, _ in BAD_KEYS])
def test_a_bad_key_is_refused_in_one_line(tmp_path, prior, key, value, message):
    path = glass_model(tmp_path, prior, keys={key: value})
    for check in (check_glass_file, read_prior, check_prior_file):
        with pytest.raises(InvalidGlassFile, match="^glass.gguf: " + message) as e:
            check(path)
        assert "\n" not in str(e.value)


def bad_tensors(prior):
    scores = glass_tensors(prior)
    nan, neg = scores["blk.1.ffn_glass_prior"].copy(), scores["blk.1.ffn_glass_prior"].copy()
    nan[5], neg[7] = np.nan, -0.5
    return [  # (tensors changed, dropped, expected message after "glass.gguf: ")
        ({"blk.1.ffn_glass_prior": scores["blk.1.ffn_glass_prior"].astype(np.float16)}, (),
         r"blk.1.ffn_glass_prior: found F16 \[96\], expected a F32 vector \[n_ff\]"),
        ({"blk.1.ffn_glass_prior": scores["blk.1.ffn_glass_prior"].astype(np.float64)}, (),
         r"blk.1.ffn_glass_prior: found F64 \[96\], expected a F32 vector"),
        ({"blk.1.ffn_glass_prior": scores["blk.1.ffn_glass_prior"].reshape(96, 1)}, (),
         r"blk.1.ffn_glass_prior: found F32 \[1, 96\], expected a F32 vector"),
        ({"blk.1.ffn_glass_prior": scores["blk.1.ffn_glass_prior"][:50]}, (),
         "blk.1.ffn_glass_prior: found 50 values, expected 96, the layer's FFN width"),
        ({"blk.1.ffn_glass_prior": nan}, (), "blk.1.ffn_glass_prior: found nan at neuron 5, expected finite scores"),
        ({"blk.1.ffn_glass_prior": neg}, (), "blk.1.ffn_glass_prior: found -0.5 at neuron 7, expected non-negative"),
        ({"blk.0.ffn_glass_priorx": scores["blk.0.ffn_glass_prior"]}, (),
         "'blk.0.ffn_glass_priorx': found a stray or mangled GLASS tensor"),
        ({"blk.1.glass_prior": scores["blk.0.ffn_glass_prior"]}, (), "'blk.1.glass_prior': found a stray or mangled"),
        ({"blk.7.ffn_glass_prior": scores["blk.0.ffn_glass_prior"]}, (),
         r"blk.{layer}.ffn_glass_prior: found layers 0,1,2,7 \(layer 3 missing\), expected layers 0 .. N-1"),
        ({}, ("blk.2.ffn_glass_prior",), "blk.2.ffn_glass_prior: found a prior for 2 layers, expected one for each "
                                         "of the model's 3"),
        ({"blk.0.ffn_glass_prior_sum": np.zeros(96)}, (), "blk.0.ffn_glass_prior_sum: found prior sums in a model"),
    ]


@pytest.mark.parametrize("case", range(11))
def test_a_bad_prior_tensor_is_refused_in_one_line(tmp_path, prior, case):
    tensors, drop, message = bad_tensors(prior)[case]
    path = glass_model(tmp_path, prior, tensors=tensors, drop=drop)
    with pytest.raises(InvalidGlassFile, match="^glass.gguf: " + message):
        check_glass_file(path)


def test_an_embedded_prior_of_another_model_is_refused(tmp_path, prior):
    other = random_prior(gguf_model_info(tiny_gguf(tmp_path / "other.gguf", **SHAPE, seed=4)))
    path = glass_model(tmp_path, prior, keys={"glass.prior.model_fingerprint": (STR, other.fingerprint)})
    with pytest.raises(InvalidGlassFile, match=r"^glass.gguf: glass.prior.model_fingerprint: found glass-fp1:.* "
                                               r"\(another model\), expected the fingerprint of the model in this file"):
        check_glass_file(path)
    other_glass = tiny_gguf(tmp_path / "other-glass.gguf", **SHAPE, seed=4, keys=glass_keys(other),
                            tensors=glass_tensors(other))
    assert check_glass_file(other_glass) == []
    with pytest.raises(PriorMismatch, match="^other-glass.gguf: the prior was computed for another model"):
        check_prior_file(other_glass, tmp_path / "model.gguf")


def test_the_metadata_form_is_checked_like_the_tensor_form(tmp_path, prior):
    cases = [
        ({"glass.prior.blk.1": (ARR, [1, 2, 3], GGUFValueType.INT32)}, (), {},
         "glass.prior.blk.1: found an array of 3 i32, expected an array of n_ff f32"),
        ({}, ("glass.prior.blk.0",), {}, r"glass.prior.blk.{layer}: found layers 1,2 \(layer 0 missing\)"),
        ({"glass.prior.blk.2": (ARR, [1.0] * 95, F32)}, (), {}, "glass.prior.blk.2: found 95 values, expected 96"),
        ({"glass.prior.blk.2": (ARR, [-1.0] * 96, F32)}, (), {}, "glass.prior.blk.2: found -1 at neuron 0"),
        ({}, (), glass_tensors(prior), "blk.0.ffn_glass_prior: found a prior tensor, expected none: glass.prior.form "
                                       "is 'metadata'"),
        ({"glass.prior.form": (STR, "tensors")}, (), glass_tensors(prior),
         "glass.prior.blk.0: found a prior stored as metadata, expected none: glass.prior.form is 'tensors'"),
    ]
    for keys, drop, tensors, message in cases:
        path = glass_model(tmp_path, prior, keys=keys, tensors=tensors, form="metadata", drop=drop)
        with pytest.raises(InvalidGlassFile, match="^glass.gguf: " + message):
            check_glass_file(path)


def test_prior_files_need_f64_sums_and_a_well_formed_shard(tmp_path, prior):
    keys, tensors = glass_keys(prior, density=None, lam=None), glass_tensors(prior, sums=True)
    path = prior_gguf(tmp_path / "p.gguf", keys, {**tensors, "blk.1.ffn_glass_prior_sum": prior.sums[1].astype("f4")})
    with pytest.raises(InvalidGlassFile, match=r"^p.gguf: blk.1.ffn_glass_prior_sum: found F32 \[96\], expected a F64"):
        read_prior(path)
    path = prior_gguf(tmp_path / "p.gguf", {**keys, "glass.prior.shard": (STR, "0,0/2")}, tensors)
    with pytest.raises(InvalidGlassFile, match=r"^p.gguf: glass.prior.shard: found '0,0/2'"):
        read_prior(path)
    assert read_prior(prior_gguf(tmp_path / "p.gguf", {**keys, "glass.prior.shard": (STR, "0,2/3")}, tensors)).shard \
        == "0,2/3"


def test_an_all_zero_layer_is_a_warning_not_an_error(tmp_path, prior):
    path = glass_model(tmp_path, prior, tensors={"blk.1.ffn_glass_prior": np.zeros(96, dtype=np.float32)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = check_glass_file(path)
    assert found == ["glass.gguf: blk.1.ffn_glass_prior is all zero: its neurons tie and the global rank orders them "
                     "by index"]
    assert [str(w.message) for w in caught if w.category is GlassWarning] == found

