#!/usr/bin/env python3
"""A 1B-class Llama-architecture GGUF with random weights, for speed work (decode speed does not depend on the
weights' values): hidden 2048, n_ff 8192, 16 layers, 32 heads (8 KV heads), a 32,000-token vocabulary, untied
output; 1.1 billion parameters.

    .venv/bin/python tools/make_synthetic_model.py            # prints the paths of the Q4_K_M and Q4_0 files

The tokenizer is SmolLM2's byte-level BPE cut to its first 32,000 tokens (with the merges that stay inside them),
taken from the bundled SmolLM2-135M GGUF. The weights are written as F16 first, a tensor at a time (never the
whole model in memory), then quantized with llama.cpp's llama_model_quantize through the installed
llama-cpp-python; the F16 intermediate (2.2 GB) is deleted afterwards. The files go to
~/.cache/glass-gguf/models/ (or $GLASS_GGUF_CACHE/models/), never into the repository, and are reused when present.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glass_gguf import assets  # noqa: E402
from glass_gguf.convert import quantize  # noqa: E402
from glass_gguf.gguf_reader import field_value, open_gguf  # noqa: E402

N_EMBD, N_FF, N_LAYER, N_HEAD, N_HEAD_KV, N_VOCAB = 2048, 8192, 16, 32, 8, 32000
NAME = "synthetic-llama-1b"
TYPES = ("q4_k_m", "q4_0")


def tokenizer(n_vocab: int = N_VOCAB) -> dict:
    """SmolLM2's tokenizer keys, the vocabulary cut to its first n_vocab tokens and the merges that stay inside."""
    r = open_gguf(assets.default_model_path())
    tokens = field_value(r, "tokenizer.ggml.tokens")[:n_vocab]
    kept = set(tokens)
    merges = [m for m in field_value(r, "tokenizer.ggml.merges")
              if (lambda a, b: a in kept and b in kept and a + b in kept)(*m.split(" ", 1))]
    return {"tokens": tokens, "token_type": field_value(r, "tokenizer.ggml.token_type")[:n_vocab], "merges": merges,
            "pre": field_value(r, "tokenizer.ggml.pre"), "chat_template": field_value(r, "tokenizer.chat_template"),
            "bos": field_value(r, "tokenizer.ggml.bos_token_id"), "eos": field_value(r, "tokenizer.ggml.eos_token_id")}


def tensor_shapes() -> list[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) of every tensor, in file order."""
    head_dim = N_EMBD // N_HEAD
    shapes = [("token_embd.weight", (N_VOCAB, N_EMBD))]
    for i in range(N_LAYER):
        shapes += [(f"blk.{i}.attn_norm.weight", (N_EMBD,)),
                   (f"blk.{i}.attn_q.weight", (N_EMBD, N_EMBD)),
                   (f"blk.{i}.attn_k.weight", (N_HEAD_KV * head_dim, N_EMBD)),
                   (f"blk.{i}.attn_v.weight", (N_HEAD_KV * head_dim, N_EMBD)),
                   (f"blk.{i}.attn_output.weight", (N_EMBD, N_EMBD)),
                   (f"blk.{i}.ffn_norm.weight", (N_EMBD,)),
                   (f"blk.{i}.ffn_gate.weight", (N_FF, N_EMBD)),
                   (f"blk.{i}.ffn_up.weight", (N_FF, N_EMBD)),
                   (f"blk.{i}.ffn_down.weight", (N_EMBD, N_FF))]
    return shapes + [("output_norm.weight", (N_EMBD,)), ("output.weight", (N_VOCAB, N_EMBD))]


def write_f16(path: Path, seed: int = 0) -> Path:
    """The random model as F16 (norms F32, ones), streamed tensor by tensor."""
    tok = tokenizer()
    w = GGUFWriter(str(path), "llama")
    w.add_name(NAME)
    w.add_file_type(LlamaFileType.MOSTLY_F16)
    w.add_block_count(N_LAYER)
    w.add_context_length(4096)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(N_VOCAB)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(tok["pre"])
    w.add_token_list(tok["tokens"])
    w.add_token_types(tok["token_type"])
    w.add_token_merges(tok["merges"])
    w.add_bos_token_id(tok["bos"])
    w.add_eos_token_id(tok["eos"])
    w.add_add_bos_token(False)
    w.add_chat_template(tok["chat_template"])
    shapes = tensor_shapes()
    for name, shape in shapes:
        dtype = np.float32 if len(shape) == 1 else np.float16
        w.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize,
                          raw_dtype=GGMLQuantizationType.F32 if len(shape) == 1 else GGMLQuantizationType.F16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, shape in shapes:
        if len(shape) == 1:
            w.write_tensor_data(np.ones(shape, dtype=np.float32))
        else:  # std 1/sqrt(fan-in): activations stay of order one through the layers
            w.write_tensor_data((rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[1])).astype(np.float16))
    w.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--types", default=",".join(TYPES), help="llama_model_quantize types, comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="quantization threads [default: physical cores]")
    args = parser.parse_args()
    out_dir = assets.cache_dir() / "models"
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = {t: out_dir / f"{NAME}.{t.upper()}.gguf" for t in args.types.split(",")}
    missing = {t: p for t, p in wanted.items() if not p.exists()}
    if missing:
        f16 = out_dir / f".{NAME}.F16.gguf.tmp-{os.getpid()}"
        try:
            print(f"writing the F16 model ({f16.name})", file=sys.stderr, flush=True)
            write_f16(f16)
            for t, path in missing.items():
                print(f"quantizing to {t}", file=sys.stderr, flush=True)
                tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
                try:
                    quantize(f16, tmp, t, args.threads)
                    os.replace(tmp, path)
                finally:
                    tmp.unlink(missing_ok=True)
        finally:
            f16.unlink(missing_ok=True)
    for path in wanted.values():
        print(path)


if __name__ == "__main__":
    main()
