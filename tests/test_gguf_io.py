"""GLASS priors in GGUF files: fingerprint, convert, strip, sidecar, inspect, imatrix, refusals (issue 4).

The model is the real SmolLM2-135M-Instruct Q4_1 GGUF; small synthetic GGUFs written with gguf-py stand in for
architectures we must refuse (phi3's fused FFN, MoE) and for a second, different model.
"""
import os
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from gguf import GGUFWriter

from glass_gguf import gguf_io, schema
from glass_gguf.assets import file_sha256
from glass_gguf.cli import main
from glass_gguf.gguf_io import (
    GlassFormatError, Prior, PriorMismatch, UnsupportedModel, embed_prior, gguf_model_info, read_prior, strip,
    write_prior, write_sidecar,
)
from glass_gguf.imatrix import prior_from_imatrix


def random_prior(info, seed=0, **kw) -> Prior:
    rng = np.random.default_rng(seed)
    sums = [rng.random(n) * 100 for n in info.n_ff]
    return Prior(kind="activation", source="test:random", tokens=100, fingerprint=info.fingerprint,
                 scores=[(s / 100).astype(np.float32) for s in sums], sums=sums, **kw)


def tiny_gguf(path, arch="llama", n_layer=2, n_embd=64, n_ff=128, fused=False, moe=False, seed=0):
    """A small but complete model GGUF (random weights) of the given architecture."""
    rng = np.random.default_rng(seed)
    w = GGUFWriter(str(path), arch)
    w.add_block_count(n_layer)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(4)
    w.add_context_length(128)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(100)])
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", f32(100, n_embd))
    w.add_tensor("output_norm.weight", 1 + f32(n_embd))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", 1 + f32(n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", 1 + f32(n_embd))
        for p in ("q", "k", "v", "output"):
            w.add_tensor(f"blk.{i}.attn_{p}.weight", f32(n_embd, n_embd))
        if moe:
            w.add_tensor(f"blk.{i}.ffn_gate_exps.weight", f32(4, n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_up_exps.weight", f32(4, n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_down_exps.weight", f32(4, n_embd, n_ff))
        elif fused:
            w.add_tensor(f"blk.{i}.ffn_up.weight", f32(2 * n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_down.weight", f32(n_embd, n_ff))
        else:
            w.add_tensor(f"blk.{i}.ffn_gate.weight", f32(n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_up.weight", f32(n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_down.weight", f32(n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def smol_info(smollm2_path):
    return gguf_model_info(smollm2_path)


def test_fingerprint_of_gguf_equals_fingerprint_of_its_hf_export(smollm2_path, smollm2_hf_dir, smol_info):
    from glass_gguf.prior import hf_model_info

    hf = hf_model_info(smollm2_hf_dir)
    assert hf.fingerprint == smol_info.fingerprint
    assert (hf.arch, hf.n_layer, hf.n_embd, hf.n_ff[0], hf.n_vocab) == ("llama", 30, 576, 1536, 49152)
    assert smol_info.n_ff == (1536,) * 30


def test_fingerprints_differ_between_models(tmp_path, smol_info):
    a = gguf_model_info(tiny_gguf(tmp_path / "a.gguf", seed=1))
    b = gguf_model_info(tiny_gguf(tmp_path / "b.gguf", seed=2))  # same shapes and vocabulary, other weights
    c = gguf_model_info(tiny_gguf(tmp_path / "c.gguf", n_ff=96))
    assert len({a.fingerprint, b.fingerprint, c.fingerprint, smol_info.fingerprint}) == 4
    assert not gguf_io.fingerprints_match(a.fingerprint, b.fingerprint)
    assert gguf_io.fingerprints_match(a.fingerprint, a.fingerprint)


def test_convert_then_strip_is_byte_identical(smollm2_path, smol_info, tmp_path):
    prior = random_prior(smol_info)
    glass = embed_prior(smollm2_path, prior, tmp_path / "glass.gguf", density=0.4, lam=0.25)
    stock = strip(glass, tmp_path / "stock.gguf")
    assert stock.stat().st_size == smollm2_path.stat().st_size
    assert file_sha256(stock) == file_sha256(smollm2_path)
    # converting a GLASS file again replaces its prior and still strips back to the original
    again = embed_prior(glass, random_prior(smol_info, seed=3), tmp_path / "again.gguf", density=0.5, lam=0.5)
    assert file_sha256(strip(again, tmp_path / "stock2.gguf")) == file_sha256(smollm2_path)


def test_converted_file_reads_back_with_the_same_prior_and_model(smollm2_path, smol_info, tmp_path):
    prior = random_prior(smol_info)
    glass = embed_prior(smollm2_path, prior, tmp_path / "glass.gguf", density=0.4, lam=0.25)
    back = read_prior(glass)
    assert back.kind == "activation" and back.source == "test:random" and back.tokens == 100
    assert back.fingerprint == smol_info.fingerprint
    assert back.density == pytest.approx(0.4) and back.lam == pytest.approx(0.25)
    assert back.sums is None  # the sums stay in the prior file
    for a, b in zip(prior.scores, back.scores):
        np.testing.assert_array_equal(a, b)
    # every key and tensor of the model is there, in the same order and with the same bytes
    src, dst = gguf_io.open_gguf(smollm2_path), gguf_io.open_gguf(glass)
    src_keys = [k for k in src.fields if not k.startswith("GGUF.")]
    dst_keys = [k for k in dst.fields if not k.startswith("GGUF.")]
    assert dst_keys[: len(src_keys)] == src_keys
    assert dst_keys[len(src_keys):] == [schema.KEY_VERSION, schema.KEY_PRIOR_KIND, schema.KEY_PRIOR_SOURCE,
                                        schema.KEY_PRIOR_TOKENS, schema.KEY_MODEL_FINGERPRINT, schema.KEY_DENSITY,
                                        schema.KEY_LAMBDA]
    assert [t.name for t in dst.tensors[: len(src.tensors)]] == [t.name for t in src.tensors]
    assert [t.name for t in dst.tensors[len(src.tensors):]] == [schema.prior_tensor_name(i) for i in range(30)]
    for a, b in zip(src.tensors[::37], dst.tensors[::37]):
        assert bytes(a.data.view(np.uint8).ravel()) == bytes(b.data.view(np.uint8).ravel())
    assert dst.data_offset % dst.alignment == 0
    assert all((t.data_offset - dst.data_offset) % dst.alignment == 0 for t in dst.tensors)


def test_converted_file_loads_in_the_patched_build_with_its_prior(smollm2_path, smol_info, tmp_path):
    from glass_gguf import runtime
    from llama_cpp import Llama

    glass = embed_prior(smollm2_path, random_prior(smol_info), tmp_path / "glass.gguf", density=0.4, lam=0.25)
    llm = Llama(model_path=str(glass), n_ctx=64, n_threads=1, verbose=False)
    assert llm.metadata[schema.KEY_PRIOR_KIND] == "activation"
    session = runtime.GlassSession(llm)
    assert all(session.layer_info(i)[1] & runtime.LAYER_HAS_PRIOR for i in range(30))
    assert session.n_ff() == [1536] * 30


def test_sidecar_holds_only_the_prior(smollm2_path, smol_info, tmp_path):
    model = tmp_path / "smol.gguf"
    os.symlink(smollm2_path, model)
    prior = random_prior(smol_info)
    side = write_sidecar(model, prior, None, density=0.6, lam=0.5)
    assert side == tmp_path / ("smol" + schema.SIDECAR_SUFFIX)
    reader = gguf_io.open_gguf(side)
    assert {t.name for t in reader.tensors} == {schema.prior_tensor_name(i) for i in range(30)}
    back = read_prior(side)
    assert back.density == pytest.approx(0.6) and back.fingerprint == smol_info.fingerprint
    np.testing.assert_array_equal(back.scores[7], prior.scores[7])


def test_prior_file_round_trip_keeps_sums_and_shard(smol_info, tmp_path):
    prior = random_prior(smol_info, shard="1/3")
    back = read_prior(write_prior(tmp_path / "p.gguf", prior))
    assert back.shard == "1/3" and back.tokens == 100
    np.testing.assert_array_equal(back.sums[29], prior.sums[29])
    assert back.sums[0].dtype == np.float64


# --- refusals ----------------------------------------------------------------------------------------------------


def test_refuses_a_prior_made_for_another_model(smollm2_path, tmp_path):
    other = gguf_model_info(tiny_gguf(tmp_path / "tiny.gguf"))
    with pytest.raises(PriorMismatch, match="computed for another model"):
        embed_prior(smollm2_path, random_prior(other), tmp_path / "out.gguf", density=0.5, lam=0.5)
    assert not (tmp_path / "out.gguf").exists()


def test_refuses_wrong_layer_count_wrong_length_and_non_finite(smollm2_path, smol_info, tmp_path):
    out = tmp_path / "out.gguf"
    short = random_prior(smol_info)
    short.scores = short.scores[:29]
    with pytest.raises(PriorMismatch, match="the prior has 29 layers, .* has 30"):
        embed_prior(smollm2_path, short, out, density=0.5, lam=0.5)
    wrong = random_prior(smol_info)
    wrong.scores[3] = wrong.scores[3][:1000]
    with pytest.raises(PriorMismatch, match="layer 3: the prior has 1000 values, .* has 1536 neurons"):
        embed_prior(smollm2_path, wrong, out, density=0.5, lam=0.5)
    for bad in (np.nan, np.inf):
        p = random_prior(smol_info)
        p.scores[5][17] = bad
        with pytest.raises(PriorMismatch, match="layer 5: the prior contains NaN or inf"):
            embed_prior(smollm2_path, p, out, density=0.5, lam=0.5)
    assert not out.exists()


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


def test_refuses_corrupt_and_truncated_gguf(smollm2_path, smol_info, tmp_path):
    prior = random_prior(smol_info)
    with open(smollm2_path, "rb") as f:
        head = f.read(4 << 20)
    cases = {
        "header.gguf": head[:100_000],   # cut inside the vocabulary
        "data.gguf": head,               # header complete, tensor data cut
        "noise.gguf": b"NOPE" + bytes(1000),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(GlassFormatError, match="truncated|not a GGUF|corrupt"):
            embed_prior(tmp_path / name, prior, tmp_path / "out.gguf", density=0.5, lam=0.5)
    assert not (tmp_path / "out.gguf").exists()


def test_interrupted_write_leaves_no_file(smollm2_path, smol_info, tmp_path, monkeypatch):
    real_copy = gguf_io._copy
    calls = []

    def copy_then_interrupt(f, data):
        calls.append(1)
        real_copy(f, memoryview(data)[:1000] if len(calls) == 1 else data)
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_io, "_copy", copy_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        embed_prior(smollm2_path, random_prior(smol_info), tmp_path / "out.gguf", density=0.5, lam=0.5)
    assert os.listdir(tmp_path) == []


def test_cli_refusals_are_one_clear_line(smollm2_path, smol_info, tmp_path):
    other = write_prior(tmp_path / "other.gguf", random_prior(gguf_model_info(tiny_gguf(tmp_path / "t.gguf"))))
    runner = CliRunner()
    r = runner.invoke(main, ["convert", str(smollm2_path), "--prior", str(other), "-o", str(tmp_path / "o.gguf")])
    assert r.exit_code == 1 and r.output.startswith("Error: the prior was computed for another model")
    assert "Traceback" not in r.output and r.output.count("\n") == 1
    (tmp_path / "cut.gguf").write_bytes(smollm2_path.read_bytes()[:5_000_000])
    r = runner.invoke(main, ["strip", str(tmp_path / "cut.gguf"), "-o", str(tmp_path / "s.gguf")])
    assert r.exit_code == 1 and "truncated GGUF" in r.output
    r = runner.invoke(main, ["strip", str(smollm2_path), "-o", str(tmp_path / "s.gguf")])
    assert r.exit_code == 1 and "carries no GLASS prior" in r.output
    r = runner.invoke(main, ["strip", str(other), "-o", str(tmp_path / "s.gguf")])
    assert r.exit_code == 1 and "is a prior file or sidecar, not a model" in r.output
    r = runner.invoke(main, ["hf-export", str(tmp_path / "cut.gguf"), str(tmp_path / "hf")])
    assert r.exit_code == 1 and "truncated GGUF" in r.output and not (tmp_path / "hf").exists()


def test_cli_convert_strip_inspect(smollm2_path, smol_info, tmp_path):
    prior = write_prior(tmp_path / "p.gguf", random_prior(smol_info))
    runner = CliRunner()
    glass, stock, png = tmp_path / "g.gguf", tmp_path / "s.gguf", tmp_path / "p.png"
    r = runner.invoke(main, ["convert", str(smollm2_path), "--prior", str(prior), "-o", str(glass),
                             "--density", "0.4", "--lambda", "0.75"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["inspect", str(glass), "--json", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    import json

    info = json.loads(r.output)
    assert info["type"] == "GLASS model" and info["layers"] == 30 and info["n_ff"] == 1536
    assert info["glass"][schema.KEY_LAMBDA] == pytest.approx(0.75)
    assert len(info["prior"]) == 30 and png.read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(main, ["strip", str(glass), "-o", str(stock)])
    assert r.exit_code == 0 and file_sha256(stock) == file_sha256(smollm2_path)
    r = runner.invoke(main, ["inspect", str(prior)])
    assert r.exit_code == 0 and "glass.prior.kind" in r.output and " 1536 " in r.output


# --- imatrix -------------------------------------------------------------------------------------------------------


def imatrix_stats(info, seed=0):
    rng = np.random.default_rng(seed)
    return {f"blk.{i}.ffn_down.weight": rng.random(n).astype(np.float32) * 50 for i, n in enumerate(info.n_ff)} | {
        f"blk.{i}.attn_q.weight": rng.random(info.n_embd).astype(np.float32) for i in range(info.n_layer)}


def write_imatrix_gguf(path, stats, count):
    """The layout of tools/imatrix/imatrix.cpp's GGUF output."""
    w = GGUFWriter(str(path), arch="")
    w.kv_data[0].pop("general.architecture", None)
    w.add_string("general.type", "imatrix")
    w.add_array("imatrix.datasets", ["calibration.txt"])
    w.add_uint32("imatrix.chunk_count", 4)
    w.add_uint32("imatrix.chunk_size", 512)
    for name, sum2 in sorted(stats.items()):
        w.add_tensor(f"{name}.in_sum2", sum2.reshape(1, -1))
        w.add_tensor(f"{name}.counts", np.array([[count]], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_imatrix_dat(path, stats, count, ncall=4):
    """The layout of save_imatrix_legacy: values stored as (sum / count) * ncall."""
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(stats)))
        for name, sum2 in sorted(stats.items()):
            f.write(struct.pack("<i", len(name)) + name.encode())
            f.write(struct.pack("<ii", ncall, len(sum2)))
            f.write((sum2 / np.float32(count) * np.float32(ncall)).astype(np.float32).tobytes())
        f.write(struct.pack("<i", ncall))
        f.write(struct.pack("<i", 15) + b"calibration.txt")
    return path


def test_prior_from_imatrix_both_formats(smollm2_path, smol_info, tmp_path):
    stats = imatrix_stats(smol_info)
    expected = [np.sqrt(stats[f"blk.{i}.ffn_down.weight"].astype(np.float64) / 2048) for i in range(30)]
    for path in (write_imatrix_gguf(tmp_path / "im.gguf", stats, 2048),
                 write_imatrix_dat(tmp_path / "im.dat", stats, 2048)):
        prior = prior_from_imatrix(path, smol_info)
        assert prior.kind == "activation" and prior.fingerprint == smol_info.fingerprint
        for a, b in zip(prior.scores, expected):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    assert prior_from_imatrix(tmp_path / "im.gguf", smol_info).tokens == 2048
    # the CLI takes the model's fingerprint from the GGUF and writes a prior that convert accepts
    out = tmp_path / "p.gguf"
    r = CliRunner().invoke(main, ["prior", str(smollm2_path), "--from-imatrix", str(tmp_path / "im.dat"),
                                  "-o", str(out)])
    assert r.exit_code == 0, r.output
    embed_prior(smollm2_path, read_prior(out), tmp_path / "g.gguf", density=0.5, lam=0.5)


def test_imatrix_refusals(smol_info, tmp_path):
    stats = imatrix_stats(smol_info)
    del stats["blk.29.ffn_down.weight"]
    with pytest.raises(PriorMismatch, match="no entry for blk.29.ffn_down.weight"):
        prior_from_imatrix(write_imatrix_dat(tmp_path / "a.dat", stats, 10), smol_info)
    stats = imatrix_stats(smol_info)
    stats["blk.4.ffn_down.weight"] = stats["blk.4.ffn_down.weight"][:1000]
    with pytest.raises(PriorMismatch, match="blk.4.ffn_down.weight has 1000 values"):
        prior_from_imatrix(write_imatrix_gguf(tmp_path / "b.gguf", stats, 10), smol_info)
    (tmp_path / "c.dat").write_bytes(write_imatrix_dat(tmp_path / "c0.dat", imatrix_stats(smol_info), 10)
                                     .read_bytes()[:3000])
    with pytest.raises(GlassFormatError, match="truncated"):
        prior_from_imatrix(tmp_path / "c.dat", smol_info)



def test_imatrix_refuses_a_model_gguf(smollm2_path, smol_info):
    with pytest.raises(GlassFormatError, match="not an imatrix"):
        prior_from_imatrix(smollm2_path, smol_info)


def test_fast_reader_parses_exactly_like_gguf_py(smollm2_path):
    from gguf import GGUFReader

    ours, theirs = gguf_io._Reader(smollm2_path), GGUFReader(smollm2_path)
    assert list(ours.fields) == list(theirs.fields)
    for key, a in theirs.fields.items():
        b = ours.fields[key]
        assert (a.offset, a.types, a.data, len(a.parts)) == (b.offset, b.types, b.data, len(b.parts)), key
        assert all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a.parts, b.parts)), key
    assert [(t.name, t.data_offset, t.n_bytes) for t in ours.tensors] == [
        (t.name, t.data_offset, t.n_bytes) for t in theirs.tensors]
    assert gguf_io.field_value(ours, "tokenizer.ggml.tokens")[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
