"""Activation priors from llama.cpp importance matrices, in both formats llama-imatrix writes."""
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from gguf import GGUFWriter

from glass_gguf.cli import main
from glass_gguf.errors import GlassFormatError, PriorMismatch
from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.glass_file import embed_prior
from glass_gguf.imatrix import prior_from_imatrix
from glass_gguf.prior_file import read_prior
from synthetic import tiny_gguf, write_out


@pytest.fixture
def model(tmp_path):
    return tiny_gguf(tmp_path / "model.gguf", n_layer=3, n_ff=96)


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
    return write_out(w, path)


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


def test_prior_from_imatrix_both_formats(model, tmp_path):
    info = gguf_model_info(model)
    stats = imatrix_stats(info)
    expected = [np.sqrt(stats[f"blk.{i}.ffn_down.weight"].astype(np.float64) / 2048) for i in range(3)]
    for path in (write_imatrix_gguf(tmp_path / "im.gguf", stats, 2048),
                 write_imatrix_dat(tmp_path / "im.dat", stats, 2048)):
        prior = prior_from_imatrix(path, info)
        assert prior.kind == "activation" and prior.fingerprint == info.fingerprint
        for a, b in zip(prior.scores, expected):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    assert prior_from_imatrix(tmp_path / "im.gguf", info).tokens == 2048
    # the CLI takes the model's fingerprint from the GGUF and writes a prior that convert accepts
    out = tmp_path / "p.gguf"
    r = CliRunner().invoke(main, ["prior", str(model), "--from-imatrix", str(tmp_path / "im.dat"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    embed_prior(model, read_prior(out), tmp_path / "g.gguf", density=0.5, lam=0.5)


def test_imatrix_refusals(model, tmp_path):
    info = gguf_model_info(model)
    stats = imatrix_stats(info)
    del stats["blk.2.ffn_down.weight"]
    with pytest.raises(PriorMismatch, match="no entry for blk.2.ffn_down.weight"):
        prior_from_imatrix(write_imatrix_dat(tmp_path / "a.dat", stats, 10), info)
    stats = imatrix_stats(info)
    stats["blk.1.ffn_down.weight"] = stats["blk.1.ffn_down.weight"][:50]
    with pytest.raises(PriorMismatch, match="blk.1.ffn_down.weight has 50 values"):
        prior_from_imatrix(write_imatrix_gguf(tmp_path / "b.gguf", stats, 10), info)
    whole = write_imatrix_dat(tmp_path / "c0.dat", imatrix_stats(info), 10).read_bytes()
    (tmp_path / "c.dat").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(GlassFormatError, match="truncated"):
        prior_from_imatrix(tmp_path / "c.dat", info)
    with pytest.raises(GlassFormatError, match="not an imatrix"):
        prior_from_imatrix(model, info)
