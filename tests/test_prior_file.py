"""Prior files: the schema on disk, round trips, validation against a model, merging (small synthetic GGUFs)."""
import numpy as np
import pytest

from glass_gguf import schema
from glass_gguf.errors import GlassFormatError, PriorMismatch
from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.gguf_reader import field_value, open_gguf
from glass_gguf.prior_file import merge_priors, read_prior, validate_prior, write_prior
from synthetic import random_prior, tiny_gguf


@pytest.fixture
def info(tmp_path):
    return gguf_model_info(tiny_gguf(tmp_path / "model.gguf", n_layer=3, n_ff=96))


def test_prior_file_round_trip_keeps_scores_sums_and_shard(info, tmp_path):
    prior = random_prior(info, shard="1/3")
    back = read_prior(write_prior(tmp_path / "p.gguf", prior))
    assert (back.kind, back.source, back.tokens, back.fingerprint) == ("activation", "test:random", 100,
                                                                       info.fingerprint)
    assert back.shard == "1/3" and back.density is None and back.lam is None
    for a, b, sa, sb in zip(prior.scores, back.scores, prior.sums, back.sums):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(sa, sb)
        assert sb.dtype == np.float64


def test_prior_file_follows_the_schema(info, tmp_path):
    reader = open_gguf(write_prior(tmp_path / "p.gguf", random_prior(info)))
    assert field_value(reader, "general.type") == schema.PRIOR_FILE_TYPE
    assert field_value(reader, schema.KEY_VERSION) == schema.GLASS_VERSION == 1
    assert field_value(reader, schema.KEY_PRIOR_KIND) in schema.PRIOR_KINDS
    tensors = {t.name: t for t in reader.tensors}
    assert tensors["blk.2.ffn_glass_prior"].tensor_type.name == "F32"
    assert tensors["blk.2.ffn_glass_prior_sum"].tensor_type.name == "F64"
    assert list(tensors["blk.0.ffn_glass_prior"].shape) == [96]
    assert schema.prior_tensor_name(2) == "blk.2.ffn_glass_prior"
    assert all(schema.is_glass_tensor(n) for n in tensors)


def test_validate_accepts_the_right_model_and_refuses_others(info, tmp_path):
    validate_prior(random_prior(info), info)
    other = gguf_model_info(tiny_gguf(tmp_path / "other.gguf", n_layer=3, n_ff=96, seed=5))
    with pytest.raises(PriorMismatch, match="computed for another model"):
        validate_prior(random_prior(other), info)
    short = random_prior(info)
    short.scores = short.scores[:2]
    with pytest.raises(PriorMismatch, match="the prior has 2 layers, model has 3"):
        validate_prior(short, info)
    wrong = random_prior(info)
    wrong.scores[1] = wrong.scores[1][:50]
    with pytest.raises(PriorMismatch, match="layer 1: the prior has 50 values, model's FFN has 96 neurons"):
        validate_prior(wrong, info)
    for bad in (np.nan, np.inf):
        p = random_prior(info)
        p.scores[2][17] = bad
        with pytest.raises(PriorMismatch, match="layer 2: the prior contains NaN or inf"):
            validate_prior(p, info)


def test_a_model_without_a_prior_has_nothing_to_read(tmp_path):
    with pytest.raises(GlassFormatError, match="no GLASS prior in this file"):
        read_prior(tiny_gguf(tmp_path / "m.gguf"))


def test_merging_shards_adds_sums_and_tokens(info):
    a, b = random_prior(info, seed=1, shard="0/2"), random_prior(info, seed=2, shard="1/2")
    a.source = b.source = "self-generated:4x16:seed=0"
    merged = merge_priors([a, b])
    assert merged.tokens == 200 and merged.shard is None and merged.source == a.source
    np.testing.assert_allclose(merged.scores[1], (a.sums[1] + b.sums[1]) / 200, rtol=1e-6)
    with pytest.raises(GlassFormatError, match="given twice"):
        merge_priors([a, a])
    partial = merge_priors([random_prior(info, seed=1, shard="0/3"), random_prior(info, seed=2, shard="2/3")])
    assert partial.shard == "0,2/3"


def test_merging_refuses_priors_of_another_kind_or_without_sums(info):
    a, b = random_prior(info, seed=1, shard="0/2"), random_prior(info, seed=2, shard="1/2")
    b.kind = "impact"
    with pytest.raises(PriorMismatch, match="cannot merge an activation prior with an impact prior"):
        merge_priors([a, b])
    b.kind, b.sums = "activation", None
    with pytest.raises(GlassFormatError, match="holds no sums"):
        merge_priors([a, b])
