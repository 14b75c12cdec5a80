"""Fuzz: seeded truncations, bit flips, byte mutations and semantic mutations of a small GLASS GGUF (both forms) and a
prior file, run through the command line in process (inspect, convert, strip, prior-merge) and the readers.

Every outcome is either a success or a refusal in one `Error:` line (exit code 1): no traceback, no exception
escaping, no hang (each case runs under an alarm), nothing left under an output name after a refusal. Then the
overwrite cases: no command writes over one of its inputs.
"""
import os
import random
import signal
import time
from contextlib import contextmanager

import numpy as np
import pytest
from click.testing import CliRunner

from glass_gguf.cli import main
from glass_gguf.errors import GlassGGUFError
from glass_gguf.fingerprint import gguf_model_info
from glass_gguf.glass_file import embed_prior
from glass_gguf.gguf_reader import open_gguf
from glass_gguf.inspect_gguf import inspect_file
from glass_gguf.prior_file import read_prior, write_prior
from glass_gguf.validate import check_glass_file, check_prior_file
from synthetic import ARR, F32, I64, STR, U32, glass_keys, glass_tensors, random_prior, tiny_gguf

SEED = 15
CASE_TIMEOUT_S = 20
SHAPE = dict(n_layer=2, n_embd=32, n_ff=64)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("base")
    model = tiny_gguf(d / "model.gguf", **SHAPE)
    prior = random_prior(gguf_model_info(model), shard="0/2")
    files = {
        "model": model,
        "prior": write_prior(d / "prior.gguf", prior),
        "shard1": write_prior(d / "shard1.gguf", random_prior(gguf_model_info(model), seed=1, shard="1/2")),
        "glass": embed_prior(model, prior, d / "glass.gguf", density=0.5, lam=0.5),
        "portable": embed_prior(model, prior, d / "portable.gguf", density=0.5, lam=0.5, form="metadata"),
    }
    return files, prior


def sections(path) -> list[int]:
    """Offsets where the file's parts begin: each key/value record, each tensor info, the data, each tensor."""
    r = open_gguf(path)
    return sorted({0, 4, 8, 16, 24, *(f.offset for f in r.fields.values()), r.data_offset,
                   *(t.data_offset for t in r.tensors), len(r.data)})


def mutations(files, prior, tmp) -> list[tuple[str, str, bytes]]:
    """(label, which base file, bytes) of every case, from one seed."""
    rng = random.Random(SEED)
    cases = []
    for which in ("glass", "portable", "prior"):
        data = files[which].read_bytes()
        header = open_gguf(files[which]).data_offset
        cuts = [c + d for c in sections(files[which]) for d in (-1, 0, 1) if 0 <= c + d < len(data)]
        for cut in sorted(set(rng.sample(cuts, min(len(cuts), 25)) + [rng.randrange(len(data)) for _ in range(5)])):
            cases.append((f"{which}: cut at {cut}", which, data[:cut]))
        for _ in range(45):   # bit flips, mostly in the header (keys, tensor infos), some in the data
            pos = rng.randrange(header) if rng.random() < 0.8 else rng.randrange(header, len(data))
            bit = rng.randrange(8)
            cases.append((f"{which}: bit {bit} of byte {pos}", which,
                          data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1:]))
        for key, f in open_gguf(files[which]).fields.items():   # every 4-byte number set to an extreme
            if len(f.parts[-1]) == 1 and f.parts[-1].nbytes == 4 and not key.startswith("GGUF."):
                pos = f.offset + sum(int(p.nbytes) for p in f.parts[:-1])
                for value in rng.sample([0, 1, 2**31, 2**32 - 1, 0x7FC00000, 0xFF800000], 2):
                    cases.append((f"{which}: {key} = 0x{value:08x}", which,
                                  data[:pos] + value.to_bytes(4, "little") + data[pos + 4:]))
        for _ in range(20):   # bytes set to extremes or noise
            pos = rng.randrange(header)
            value = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
            cases.append((f"{which}: byte {pos} = {value}", which, data[:pos] + bytes([value]) + data[pos + 1:]))
    for label, keys, tensors, form in semantic(prior):
        path = tmp / "semantic.gguf"
        k = {**glass_keys(prior, form=form), **keys}
        t = {**({} if form else glass_tensors(prior)), **tensors}
        k = {n: v for n, v in k.items() if v is not None}
        t = {n: v for n, v in t.items() if v is not None}
        cases.append((f"semantic: {label}", "portable" if form else "glass",
                      tiny_gguf(path, **SHAPE, keys=k, tensors=t).read_bytes()))
    return cases


def semantic(prior):
    """Well-formed files with wrong content: (label, keys changed, tensors changed, form); None drops a record."""
    s = glass_tensors(prior)["blk.1.ffn_glass_prior"]
    nan, neg = s.copy(), s.copy()
    nan[3], neg[3] = np.nan, -1
    meta = "metadata"
    return [
        ("version 999", {"glass.version": (U32, 999)}, {}, None),
        ("version '1'", {"glass.version": (STR, "1")}, {}, None),
        ("no version", {"glass.version": None}, {}, None),
        ("density 0", {"glass.density": (F32, 0.0)}, {}, None),
        ("density -1", {"glass.density": (F32, -1.0)}, {}, meta),
        ("density u32", {"glass.density": (U32, 1)}, {}, None),
        ("lambda 2", {"glass.lambda": (F32, 2.0)}, {}, None),
        ("lambda nan", {"glass.lambda": (F32, float("nan"))}, {}, meta),
        ("tokens -1", {"glass.prior.tokens": (I64, -1)}, {}, None),
        ("tokens inf", {"glass.prior.tokens": (F32, float("inf"))}, {}, None),
        ("tokens nan", {"glass.prior.tokens": (F32, float("nan"))}, {}, meta),
        ("tokens array", {"glass.prior.tokens": (ARR, [1.0], F32)}, {}, None),
        ("shard garbage", {"glass.prior.shard": (STR, "x/y/z")}, {}, None),
        ("kind unknown", {"glass.prior.kind": (STR, "vibes")}, {}, None),
        ("fingerprint garbage", {"glass.prior.model_fingerprint": (STR, "glass-fp1:nope")}, {}, None),
        ("prior F16", {}, {"blk.1.ffn_glass_prior": s.astype(np.float16)}, None),
        ("prior F64", {}, {"blk.1.ffn_glass_prior": s.astype(np.float64)}, None),
        ("prior [64,1]", {}, {"blk.1.ffn_glass_prior": s.reshape(64, 1)}, None),
        ("prior short", {}, {"blk.1.ffn_glass_prior": s[:40]}, None),
        ("prior NaN", {}, {"blk.1.ffn_glass_prior": nan}, None),
        ("prior negative", {}, {"blk.1.ffn_glass_prior": neg}, None),
        ("stray tensor", {}, {"blk.0.ffn_glass_priors": s}, None),
        ("prior for one layer of two", {}, {"blk.1.ffn_glass_prior": None}, None),
        ("prior beyond the layers", {}, {"blk.2.ffn_glass_prior": s}, None),
        ("sums in a model", {}, {"blk.0.ffn_glass_prior_sum": s.astype(np.float64)}, None),
        ("metadata prior short", {"glass.prior.blk.1": (ARR, [1.0] * 10, F32)}, {}, meta),
        ("metadata prior u32", {"glass.prior.blk.0": (ARR, [1] * 64, U32)}, {}, meta),
        ("metadata and tensors", {}, {"blk.0.ffn_glass_prior": s}, meta),
        ("form unknown", {"glass.prior.form": (STR, "yaml")}, {}, meta),
        ("all-zero layer (accepted, with a warning)", {}, {"blk.1.ffn_glass_prior": np.zeros(64, np.float32)}, None),
    ]


@contextmanager
def deadline(seconds: float, label: str):
    def expire(signum, frame):
        raise TimeoutError(f"{label}: still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_cli(label, *args, output=None):
    """Run one command in process; return True on success, check the one-line refusal otherwise."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{label}: {args[0]} raised {result.exception!r}")
    assert "Traceback" not in result.output, f"{label}: {result.output}"
    if result.exit_code == 0:
        return True
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("warning: ")]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), (
        f"{label}: {args[0]} exit {result.exit_code}: {result.output}")
    assert output is None or not os.path.exists(output), f"{label}: {args[0]} left {output}"
    return False


def run_readers(label, path, model):
    outcomes = []
    for read in (read_prior, check_glass_file, inspect_file, lambda p: check_prior_file(p, model)):
        try:
            read(path)
            outcomes.append(True)
        except GlassGGUFError as e:
            assert "\n" not in str(e), f"{label}: {e}"
            outcomes.append(False)
    return outcomes


@pytest.mark.filterwarnings("ignore::glass_gguf.errors.GlassWarning")
def test_mutated_files_succeed_or_fail_in_one_line(base, tmp_path):
    files, prior = base
    cases = mutations(files, prior, tmp_path)
    assert len(cases) >= 300
    refused, t0 = 0, time.perf_counter()
    for n, (label, which, data) in enumerate(cases):
        path = tmp_path / f"case{n}.gguf"
        path.write_bytes(data)
        out = tmp_path / f"out{n}.gguf"
        with deadline(CASE_TIMEOUT_S, label):
            ok = [run_cli(label, "inspect", path, "--json")]
            if which == "prior":
                ok.append(run_cli(label, "convert", files["model"], "--prior", path, "-o", out, output=out))
                ok.append(run_cli(label, "prior-merge", path, files["shard1"], "-o", out, output=out))
            else:
                ok.append(run_cli(label, "strip", path, "-o", out, output=out))
                ok.append(run_cli(label, "convert", path, "--prior", files["prior"], "-o", out, output=out))
                ok.append(run_cli(label, "convert", files["model"], "--prior", path, "-o", out, output=out))
            readers = run_readers(label, path, files["model"])
        if label.startswith("semantic") and "accepted" not in label:
            assert not any(ok) and not any(readers), f"{label}: accepted"
        refused += not all(ok)
        out.unlink(missing_ok=True)
    leftovers = [p.name for p in tmp_path.iterdir() if ".glass-tmp-" in p.name]
    assert leftovers == []
    elapsed = time.perf_counter() - t0
    print(f"{len(cases)} cases, {refused} refused by at least one command, {elapsed:.1f} s")
    assert elapsed < 60


def test_a_named_pipe_is_refused_without_blocking(base, tmp_path):
    files, _ = base
    os.mkfifo(tmp_path / "pipe.gguf")
    with deadline(10, "fifo"):
        for args in (["inspect", tmp_path / "pipe.gguf"], ["strip", tmp_path / "pipe.gguf", "-o", tmp_path / "o.gguf"],
                     ["convert", files["model"], "--prior", tmp_path / "pipe.gguf", "-o", tmp_path / "o.gguf"],
                     ["prior-merge", tmp_path / "pipe.gguf", files["shard1"], "-o", tmp_path / "o.gguf"]):
            result = CliRunner().invoke(main, [str(a) for a in args])
            assert result.exit_code == 1 and "is a named pipe (FIFO), expected a regular file" in result.stderr


def test_no_command_writes_over_one_of_its_inputs(base, tmp_path):
    files, _ = base
    model, prior, glass = (tmp_path / n for n in ("model.gguf", "prior.gguf", "glass.gguf"))
    for name, path in (("model", model), ("prior", prior), ("glass", glass)):
        path.write_bytes(files[name].read_bytes())
    os.link(prior, tmp_path / "prior-hardlink.gguf")
    (tmp_path / "model-symlink.gguf").symlink_to(model)
    before = {p: p.read_bytes() for p in (model, prior, glass)}
    for args in (["convert", model, "--prior", prior, "-o", prior],
                 ["convert", model, "--prior", prior, "--sidecar", "-o", model],
                 ["convert", model, "--prior", prior, "-o", tmp_path / "prior-hardlink.gguf"],
                 ["convert", model, "--prior", prior, "-o", tmp_path / "model-symlink.gguf"],
                 ["prior-merge", prior, files["shard1"], "-o", prior],
                 ["inspect", glass, "--plot", glass],
                 ["strip", glass, "-o", glass]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 1, (args, result.output)
        assert "the output would replace the input" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert {p: p.read_bytes() for p in (model, prior, glass)} == before
    # the sidecar's default name is the prior given: refused too
    side = tmp_path / "model.glass-prior.gguf"
    side.write_bytes(files["prior"].read_bytes())
    result = CliRunner().invoke(main, ["convert", str(model), "--prior", str(side), "--sidecar"])
    assert result.exit_code == 1 and "the output would replace the input" in result.stderr


# --- the real model through glass_llama.load (patched build) ---------------------------------------------------------


def patched(path, out, key=None, tensor=None, value: bytes = b""):
    """A copy of `path` with the value of one 4-byte key, or the first value of one tensor, replaced."""
    r = open_gguf(path)
    if key is not None:
        f = r.fields[key]
        pos = f.offset + sum(int(p.nbytes) for p in f.parts[:-1])
    else:
        pos = next(t.data_offset for t in r.tensors if t.name == tensor)
    data = path.read_bytes()
    out.write_bytes(data[:pos] + value + data[pos + len(value):])
    return out


def test_mutated_real_files_get_a_clean_error_from_load(smollm2_path, tmp_path):
    import struct

    from glass_gguf import glass_llama

    glass = embed_prior(smollm2_path, random_prior(gguf_model_info(smollm2_path)), tmp_path / "g.gguf",
                        density=0.5, lam=0.5)
    cases = {
        "version 999": dict(key="glass.version", value=struct.pack("<I", 999)),
        "density -1": dict(key="glass.density", value=struct.pack("<f", -1.0)),
        "lambda nan": dict(key="glass.lambda", value=struct.pack("<f", float("nan"))),
        "negative prior": dict(tensor="blk.3.ffn_glass_prior", value=struct.pack("<f", -1.0)),
        "inf prior": dict(tensor="blk.7.ffn_glass_prior", value=struct.pack("<f", float("inf"))),
    }
    for n, (label, change) in enumerate(cases.items()):
        path = patched(glass, tmp_path / f"bad{n}.gguf", **change)
        with deadline(120, label), pytest.raises(GlassGGUFError) as e:
            glass_llama.load(path, n_ctx=64, n_threads=1)
        assert "\n" not in str(e.value), label
