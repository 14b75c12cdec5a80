"""Fuzz: seeded truncations, bit flips, byte mutations and semantic mutations of a small GLASS GGUF (both forms) and a
prior file, run through the command line in process (inspect, convert, strip, prior-merge) and the readers.

Every outcome is either a success or a refusal in one `Error:` line (exit code 1): no traceback, no exception
escaping, no hang (each case runs under an alarm), nothing left under an output name after a refusal. Then the
overwrite cases: no command writes over one of its inputs.
"""
import json
import os
import random
import re
import signal
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
from synthetic import ARR, F32, I64, STR, U32, _add, glass_keys, glass_tensors, random_prior, tiny_gguf, write_out

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
    refused = 0
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
    print(f"{len(cases)} cases, {refused} refused by at least one command")


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


# --- the C++ reader itself: plain llama_cpp.Llama, no Python check in front ------------------------------------------
#
# Every case is a small llama model that llama.cpp loads (random weights, an SPM vocabulary of bytes) with glass.*
# keys and prior tensors written raw by gguf-py, opened by plain llama_cpp.Llama in a process of its own (a crash or
# an abort would show as a signal, not take the test run down). libllama's own log gives the one-line reason:
# llama-glass-file.cpp refuses a bad key or prior for the whole model ("glass: FILE: REASON; GLASS stays off for this
# model", patches 0002, 0004, 0005), the context refuses one layer's prior tensor ("glass: TENSOR ...; layer N has no
# prior"), and llama.cpp's loader refuses a file it cannot load at all.

READER_SCRIPT = """
import json, sys
import llama_cpp
from glass_gguf.runtime import GlassSession
try:
    llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, n_threads=1, verbose=True)
except ValueError as e:
    print(f"refused: {e}", file=sys.stderr)
    print(json.dumps({"loaded": False}))
else:
    glass = GlassSession(llm)
    print(json.dumps({"loaded": True, "state": glass.state,
                      "has_prior": [bool(glass.layer_info(il)[1] & 2) for il in range(glass.n_layer)]}))
"""
LAYERS, N_EMBD, N_FF = 2, 64, 128


def loadable_llama(path, keys=None, tensors=None):
    """A llama model llama.cpp loads and runs (2 layers, n_embd 64, n_ff 128, 262 tokens), then `keys` ({key: (type,
    value) or (ARR, values, item type)}) and `tensors` ({name: array}) as they are."""
    from gguf import GGUFWriter, TokenType

    rng = np.random.default_rng(0)
    w = GGUFWriter(str(path), "llama")
    w.add_block_count(LAYERS)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_context_length(256)
    w.add_layer_norm_rms_eps(1e-5)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581a", "\u2581b", "\u2581c"]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types([TokenType.UNKNOWN] + [TokenType.CONTROL] * 2 + [TokenType.BYTE] * 256 + [TokenType.NORMAL] * 3)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    f32 = lambda *shape: (0.1 * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", f32(len(tokens), N_EMBD))
    w.add_tensor("output_norm.weight", 1 + f32(N_EMBD))
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", 1 + f32(N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", 1 + f32(N_EMBD))
        for p in ("q", "k", "v", "output"):
            w.add_tensor(f"blk.{i}.attn_{p}.weight", f32(N_EMBD, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", f32(N_FF, N_EMBD).astype(np.float16))
        w.add_tensor(f"blk.{i}.ffn_up.weight", f32(N_FF, N_EMBD).astype(np.float16))
        w.add_tensor(f"blk.{i}.ffn_down.weight", f32(N_EMBD, N_FF).astype(np.float16))  # F32 has no to_float
    return write_out(_add(w, keys, tensors), path)


def reader_cases(prior, model_fp):
    """(label, keys changed, tensors changed, form, expected outcome) for files the C++ reader must refuse.
    The outcome is ("off", reason): the model loads, GLASS stays off, libllama says why in one line; ("layer", line):
    one layer's prior tensor is refused when a context is created; ("load", pattern): llama.cpp's loader refuses."""
    s = glass_tensors(prior)["blk.1.ffn_glass_prior"]
    nan, neg = s.copy(), s.copy()
    nan[3], neg[3] = np.nan, -1
    arch, shapes, digest, norms = model_fp.split(":")[1:]
    other_norms = ",".join(str(float(x) * 1.5 + 0.1) for x in norms.split(","))
    meta = "metadata"
    range_count = "expected a token count up to 1048576 (refresh: 0 or at least 2)"
    return [
        # the keys: types
        ("version '1'", {"glass.version": (STR, "1")}, {}, None,
         ("off", "glass.version must be the u32 1 (this build reads GLASS schema version 1)")),
        ("density u32", {"glass.density": (U32, 1)}, {}, None, ("off", "glass.density is a u32, expected f32")),
        ("lambda string", {"glass.lambda": (STR, "0.5")}, {}, None, ("off", "glass.lambda is a str, expected f32")),
        ("warmup f32", {"glass.warmup": (F32, 4.0)}, {}, None, ("off", "glass.warmup is a f32, expected u32")),
        ("refresh i64", {"glass.refresh": (I64, 8)}, {}, None, ("off", "glass.refresh is a i64, expected u32")),
        ("layer_scale u32", {"glass.layer_scale": (ARR, [1, 1], U32)}, {}, None,
         ("off", "glass.layer_scale must be an array of f32")),
        ("layer_scale scalar", {"glass.layer_scale": (F32, 1.0)}, {}, None,
         ("off", "glass.layer_scale must be an array of f32")),
        ("form u32", {"glass.prior.form": (U32, 1)}, {}, meta,
         ("off", 'glass.prior.form must be "tensors" or "metadata"')),
        # the keys: values
        ("version 2", {"glass.version": (U32, 2)}, {}, None,
         ("off", "glass.version must be the u32 1 (this build reads GLASS schema version 1)")),
        ("density 0", {"glass.density": (F32, 0.0)}, {}, None,
         ("off", "glass.density is 0.000000, expected a value in (0, 1]")),
        ("density 1.5", {"glass.density": (F32, 1.5)}, {}, None,
         ("off", "glass.density is 1.500000, expected a value in (0, 1]")),
        ("density nan", {"glass.density": (F32, float("nan"))}, {}, meta,
         ("off", "glass.density is nan, expected a value in (0, 1]")),
        ("lambda -0.25", {"glass.lambda": (F32, -0.25)}, {}, None,
         ("off", "glass.lambda is -0.250000, expected a value in [0, 1]")),
        ("lambda inf", {"glass.lambda": (F32, float("inf"))}, {}, None,
         ("off", "glass.lambda is inf, expected a value in [0, 1]")),
        ("warmup 2^21", {"glass.warmup": (U32, 1 << 21)}, {}, None, ("off", f"glass.warmup is 2097152, {range_count}")),
        ("refresh 1", {"glass.refresh": (U32, 1)}, {}, None, ("off", f"glass.refresh is 1, {range_count}")),
        ("layer_scale 0", {"glass.layer_scale": (ARR, [1.0, 0.0], F32)}, {}, None,
         ("off", "glass.layer_scale: layer 1 has 0.000000, expected a factor in (0, 16]")),
        ("layer_scale 17", {"glass.layer_scale": (ARR, [17.0, 1.0], F32)}, {}, None,
         ("off", "glass.layer_scale: layer 0 has 17.000000, expected a factor in (0, 16]")),
        ("layer_scale nan", {"glass.layer_scale": (ARR, [1.0, float("nan")], F32)}, {}, meta,
         ("off", "glass.layer_scale: layer 1 has nan, expected a factor in (0, 16]")),
        ("layer_scale for 3 layers", {"glass.layer_scale": (ARR, [1.0] * 3, F32)}, {}, None,
         ("off", "glass.layer_scale: 3 values for 2 layers")),
        ("form yaml", {"glass.prior.form": (STR, "yaml")}, {}, meta,
         ("off", 'glass.prior.form must be "tensors" or "metadata"')),
        ("unknown key", {"glass.temperature": (F32, 0.5)}, {}, None,
         ("off", "unknown key glass.temperature (this build reads GLASS schema version 1)")),
        # the fingerprint
        ("no fingerprint", {"glass.prior.model_fingerprint": None}, {}, None,
         ("off", "no glass.prior.model_fingerprint: cannot tell which model the prior is for")),
        ("fingerprint u32", {"glass.prior.model_fingerprint": (U32, 7)}, {}, meta,
         ("off", "no glass.prior.model_fingerprint: cannot tell which model the prior is for")),
        ("fingerprint of qwen2", {"glass.prior.model_fingerprint": (STR, f"glass-fp1:qwen2:{shapes}:{digest}:{norms}")},
         {}, None, ("off", f"the prior is for qwen2 {shapes}, this model is llama {shapes}")),
        ("fingerprint of 3 layers",
         {"glass.prior.model_fingerprint": (STR, f"glass-fp1:llama:3x64x128:{digest}:{norms}")}, {}, meta,
         ("off", f"the prior is for llama 3x64x128, this model is llama {shapes}")),
        ("fingerprint garbage", {"glass.prior.model_fingerprint": (STR, "glass-fp1:nope")}, {}, None,
         ("off", f"the prior is for glass-fp1:nope, this model is llama {shapes}")),
        ("fingerprint of other norms",
         {"glass.prior.model_fingerprint": (STR, f"glass-fp1:llama:{shapes}:{digest}:{other_norms}")}, {}, None,
         ("off", "the prior was computed for another model of the same shape (its norm weights differ)")),
        ("fingerprint with 3 norm numbers",
         {"glass.prior.model_fingerprint": (STR, f"glass-fp1:llama:{shapes}:{digest}:1,2,3")}, {}, meta,
         ("off", "the fingerprint's norm signature has the wrong length")),
        # where the prior is, and its values
        ("prior tensor for one layer of two", {}, {"blk.1.ffn_glass_prior": None}, None,
         ("off", "blk.N.ffn_glass_prior tensors for 1 of 2 layers")),
        ("prior as tensors and arrays", {}, glass_tensors(prior), meta,
         ("off", "the prior is stored both as tensors and as glass.prior.blk.N arrays")),
        ("form metadata, prior tensors", {"glass.prior.form": (STR, "metadata")}, {}, None,
         ("off", "glass.prior.form does not match where the prior is stored")),
        ("array prior for one layer of two", {"glass.prior.blk.1": None}, {}, meta,
         ("off", "glass.prior.blk.N arrays for 1 of 2 layers")),
        ("array prior short", {"glass.prior.blk.1": (ARR, [1.0] * 10, F32)}, {}, meta,
         ("off", "glass.prior.blk.1 has 10 values, expected n_ff = 128")),
        ("array prior u32", {"glass.prior.blk.0": (ARR, [1] * N_FF, U32)}, {}, meta,
         ("off", "glass.prior.blk.0 must be an array of f32")),
        ("array prior nan", {"glass.prior.blk.1": (ARR, [float(x) for x in nan], F32)}, {}, meta,
         ("off", "glass.prior.blk.1 has a non-finite value at neuron 3")),
        ("array prior negative", {"glass.prior.blk.1": (ARR, [float(x) for x in neg], F32)}, {}, meta,
         ("off", "glass.prior.blk.1 has a negative value at neuron 3")),
        ("prior tensor F16", {}, {"blk.1.ffn_glass_prior": s.astype(np.float16)}, None,
         ("layer", "glass: blk.1.ffn_glass_prior is f16 with 128 values, expected F32 with n_ff = 128; "
                   "layer 1 has no prior")),
        ("prior tensor nan", {}, {"blk.1.ffn_glass_prior": nan}, None,
         ("layer", "glass: blk.1.ffn_glass_prior has a non-finite value nan at neuron 3; layer 1 has no prior")),
        ("prior tensor negative", {}, {"blk.1.ffn_glass_prior": neg}, None,
         ("layer", "glass: blk.1.ffn_glass_prior has a negative value -1 at neuron 3; layer 1 has no prior")),
        ("prior tensor short", {}, {"blk.1.ffn_glass_prior": s[:40]}, None,
         ("load", r"tensor 'blk\.1\.ffn_glass_prior' has wrong shape; expected +128, got +40,")),
        ("prior tensor long", {}, {"blk.0.ffn_glass_prior": np.ones(200, np.float32)}, None,
         ("load", r"tensor 'blk\.0\.ffn_glass_prior' has wrong shape; expected +128, got +200,")),
    ]


def run_reader(path, env=None) -> tuple[dict, list[str], str]:
    """Open `path` with plain llama_cpp.Llama in a fresh process: (outcome, libllama's glass: lines, stderr)."""
    import subprocess
    import sys

    run_env = {k: v for k, v in os.environ.items() if not k.startswith("GLASS_GGUF")}
    run = subprocess.run([sys.executable, "-c", READER_SCRIPT, str(path)], capture_output=True, text=True,
                         timeout=120, env={**run_env, **(env or {})})
    assert run.returncode == 0, f"{path.name}: exit {run.returncode} (a crash or abort?)\n{run.stderr[-3000:]}"
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("glass: ") and "tokens decoded sparse" not in ln]
    return json.loads(run.stdout.strip().splitlines()[-1]), lines, run.stderr


@pytest.mark.slow
def test_the_cpp_reader_refuses_each_bad_glass_file_with_its_reason(tmp_path):
    from glass_gguf.fingerprint import gguf_model_info

    model = loadable_llama(tmp_path / "model.gguf")
    prior = random_prior(gguf_model_info(model))

    def glass_file(path, keys=None, tensors=None, form=None):
        k = {**glass_keys(prior, form=form), **(keys or {})}
        t = {**({} if form else glass_tensors(prior)), **(tensors or {})}
        return loadable_llama(path, keys={n: v for n, v in k.items() if v is not None},
                              tensors={n: v for n, v in t.items() if v is not None})

    for form in (None, "metadata"):   # the good files, both forms: GLASS on, a prior in every layer, nothing refused
        outcome, lines, _ = run_reader(glass_file(tmp_path / f"good-{form}.gguf", form=form))
        assert outcome == {"loaded": True, "state": "collect", "has_prior": [True] * LAYERS}, (form, outcome)
        assert lines == ["glass: enabled (density 0.500, lambda 0.500, auto mode)"], (form, lines)

    failures = []
    for n, (label, keys, tensors, form, (kind, reason)) in enumerate(reader_cases(prior, prior.fingerprint)):
        path = glass_file(tmp_path / f"case{n}.gguf", keys, tensors, form)
        outcome, lines, stderr = run_reader(path)
        if kind == "off":
            want = [f"glass: {path}: {reason}; GLASS stays off for this model"]
            ok = outcome == {"loaded": True, "state": "off", "has_prior": [False] * LAYERS} and lines == want
        elif kind == "layer":
            ok = outcome["loaded"] and outcome["has_prior"] == [True, False] and reason in lines
        else:
            ok = not outcome["loaded"] and re.search(reason, stderr) is not None and not lines
        if not ok:
            failures.append(f"{label}: {outcome} {lines}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_the_cpp_reader_refuses_a_truncated_glass_file_or_sidecar(tmp_path):
    """Cut anywhere in the header or in the last prior's bytes: llama.cpp's loader refuses the file in one line (no
    crash); a truncated sidecar prior is refused when the Llama is made, in one line with the reason."""
    from glass_gguf.fingerprint import gguf_model_info

    model = loadable_llama(tmp_path / "model.gguf")
    prior = random_prior(gguf_model_info(model))
    full = loadable_llama(tmp_path / "glass.gguf", keys=glass_keys(prior), tensors=glass_tensors(prior))
    data = full.read_bytes()
    r = open_gguf(full)
    last_prior = next(t for t in r.tensors if t.name == "blk.1.ffn_glass_prior")
    fields = [f.offset for name, f in r.fields.items() if name.startswith("glass.")]
    cuts = {"in the glass.* keys": fields[len(fields) // 2] + 3, "in the tensor infos": r.tensors[-1].field.offset + 2,
            "in the last prior's data": last_prior.data_offset + 100}
    for label, cut in cuts.items():
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(data[:cut])
        outcome, lines, stderr = run_reader(path)
        assert outcome == {"loaded": False} and not lines, label
        reason = ("data is not within the file bounds, model is corrupted or incomplete" if "data" in label
                  else "failed to read")
        assert reason in stderr, f"{label}:\n{stderr[-2000:]}"

    sidecar = tmp_path / "prior.gguf"
    sidecar.write_bytes(write_prior(tmp_path / "whole.gguf", prior, with_sums=False).read_bytes()[:-50])
    outcome, lines, stderr = run_reader(model, env={"GLASS_GGUF_PRIOR": str(sidecar)})
    assert outcome == {"loaded": False} and lines == [], lines
    assert (f"refused: GLASS: GLASS_GGUF_PRIOR={sidecar} is refused: {sidecar}: cannot read blk.1.ffn_glass_prior "
            "(truncated) (GLASS_GGUF=off runs the model dense)") in stderr.splitlines(), stderr[-2000:]
