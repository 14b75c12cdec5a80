"""Global priors computed by the patched llama.cpp on a GGUF itself, through llama-cpp-python: no torch, no HF export.

The statistic is the one prior.py computes from an HF checkpoint (docs/design.md, the method), taken where the
runtime already looks: while GLASS collects, the graph adds |h_t[j]| (h = the input of the down projection) into a
float64 sum per layer and neuron over every row the FFN ran on (GlassSession.abs_sums). The context keeps logits
for every row, so the last layer's FFN runs on every token too. Then

    activation (A-GLASS):  sum_t |h_t[j]|
    impact     (I-GLASS):  sum_t |h_t[j]| * ||W_down[:, j]||     (column norms from the GGUF's own weights)

and the prior is the sum divided by the token count, written with the sums so that shards merge exactly.

Calibration is prior.py's: the same seeds, sequence lengths, batches and shards, the same text-file cutting. The
self-generated text is sampled by the quantized model itself (temperature 1, top-k 50, top-p 0.95, end of
generation suppressed), sequence r from its own random stream (seed, r), so any sequence can be regenerated alone.
GLASS collects while the sequence is written: every token of it, prompt and sampled, passes through the graph once.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from gguf import MODEL_TENSOR, TENSOR_NAMES
from gguf.quants import dequantize

from . import schema
from .errors import SettingError, UnsupportedModel
from .fingerprint import gguf_model_info
from .gguf_reader import open_gguf
from .prior import DEFAULT_BATCH, DEFAULT_SEQ_LEN, DEFAULT_TOKENS, SAMPLING, SEEDS, self_generated, text_files
from .prior_file import Prior

ROWS_PER_CHUNK = 256  # rows of W_down read and dequantized at a time: memory stays small for any model size
# Rows per decode. Every row's logits are kept (the last layer's FFN runs only on rows that need logits), so
# llama.cpp's output and compute buffers grow with the batch: on Qwen2.5-Coder-0.5B, 32 rows take 113 MB less
# than 128 at the peak.
EVAL_BATCH = 32


# ---------------------------------------------------------------------------------------------------------------
# Sampling (the torch path's generate(do_sample=True, temperature, top_k, top_p), in numpy)


def sample_token(logits: np.ndarray, rng: np.random.Generator, banned: np.ndarray | None = None,
                 temperature: float = SAMPLING["temperature"], top_k: int = SAMPLING["top_k"],
                 top_p: float = SAMPLING["top_p"]) -> int:
    """One token drawn from softmax(logits / temperature), restricted to the top_k most likely and then to the
    smallest set of those whose probability reaches top_p; `banned` tokens (a boolean mask) are never drawn."""
    z = np.array(logits, dtype=np.float64) / temperature
    if banned is not None:
        z[banned] = -np.inf
    k = min(top_k, len(z))
    top = np.argpartition(-z, k - 1)[:k]
    top = top[np.argsort(-z[top], kind="stable")]
    p = np.exp(z[top] - z[top[0]])
    p /= p.sum()
    keep = (np.cumsum(p) - p) < top_p  # the tokens before which less than top_p is covered: a prefix
    p = p[keep] / p[keep].sum()
    return int(top[rng.choice(len(p), p=p)])


def sequence_rng(seed: int, r: int) -> np.random.Generator:
    """The random stream of calibration sequence r: the same in a full run and in any shard."""
    return np.random.default_rng([seed % 2**64, r])


class LlamaTokenizer:
    """llama.cpp's tokenizer behind the call prior.py makes of an HF tokenizer: tokenizer(text)["input_ids"],
    with the start of text (BOS for vocabularies that add one) unless add_special_tokens=False."""

    def __init__(self, llm):
        self.llm = llm

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": self.llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens, special=False)}


def end_of_generation(llm) -> np.ndarray:
    """Mask of the tokens that end generation (EOS, EOT ...), which the self-generated text never samples."""
    from llama_cpp import llama_cpp as bindings

    vocab = bindings.llama_model_get_vocab(llm.model)
    n_vocab = int(bindings.llama_vocab_n_tokens(vocab))
    return np.array([bool(bindings.llama_vocab_is_eog(vocab, t)) for t in range(n_vocab)])


def write_sequence(llm, prompt: list[int], seq_len: int, rng: np.random.Generator, banned: np.ndarray) -> list[int]:
    """Sample from the model until the sequence holds seq_len tokens; every token of it is evaluated once."""
    if len(prompt) >= seq_len:
        raise SettingError(f"sequence length {seq_len} is too short for the seeds ({len(prompt)} tokens)")
    llm.reset()
    llm.eval(prompt)
    seq = list(prompt)
    while len(seq) < seq_len:
        seq.append(sample_token(llm.scores[llm.n_tokens - 1], rng, banned))
        llm.eval(seq[-1:])
    return seq


# ---------------------------------------------------------------------------------------------------------------
# Impact: the norms of the down projection's columns, from the GGUF


def down_column_norms(model: str | os.PathLike, layer: int) -> np.ndarray:
    """||W_down[:, j]||_2 of every neuron j of one layer (float64), read and dequantized a few rows at a time.

    blk.N.ffn_down.weight has n_embd rows of n_ff weights (gguf-py's numpy shape [n_embd, n_ff], as torch's
    down_proj.weight). The rows are read with plain reads, not through a memory map, so that the weights do not stay
    resident next to llama.cpp's own mapping of the same file.
    """
    name = TENSOR_NAMES[MODEL_TENSOR.FFN_DOWN].format(bid=layer) + ".weight"
    tensor = next((t for t in open_gguf(model).tensors if t.name == name), None)
    if tensor is None:
        raise UnsupportedModel(f"{Path(model).name}: no {name} tensor")
    n_embd, n_ff = int(tensor.shape[1]), int(tensor.shape[0])
    row_bytes = int(tensor.n_bytes) // n_embd
    sum_sq = np.zeros(n_ff, dtype=np.float64)
    for r in range(0, n_embd, ROWS_PER_CHUNK):
        n = min(ROWS_PER_CHUNK, n_embd - r)
        raw = np.fromfile(model, dtype=np.uint8, count=n * row_bytes, offset=int(tensor.data_offset) + r * row_bytes)
        w = dequantize(raw.reshape(n, row_bytes), tensor.tensor_type).reshape(n, n_ff).astype(np.float64)
        sum_sq += (w * w).sum(axis=0)
    return np.sqrt(sum_sq)


# ---------------------------------------------------------------------------------------------------------------
# The prior


def compute_gguf_prior(
    model: str | os.PathLike,
    kind: str = "activation",
    calibration: Sequence[str] = ("self",),
    tokens: int = DEFAULT_TOKENS,
    seq_len: int = DEFAULT_SEQ_LEN,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH,
    shard: tuple[int, int] = (0, 1),
    threads: int | None = None,
    progress: bool | None = None,
    return_sequences: bool = False,
):
    """The prior of a GGUF model (or of shard i/n of it), computed by the patched llama.cpp; calibration is ("self",)
    or a list of text files, cut and sharded exactly as prior.compute_prior does.

    With return_sequences=True, also returns the calibration token sequences that were used.
    """
    import llama_cpp
    from tqdm import tqdm

    from .runtime import GlassSession

    if kind not in schema.PRIOR_KINDS:
        raise SettingError(f"kind must be one of {schema.PRIOR_KINDS}, got {kind!r}")
    self_calibration = list(calibration) == ["self"]
    for f in [] if self_calibration else calibration:  # refuse before the model is loaded
        if str(f) == "self" or not Path(f).is_file():
            raise SettingError(f"{f}: no such calibration file ('self' cannot be combined with files)")
    info = gguf_model_info(model)  # refuses models without a dense gated FFN in every layer
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=seq_len, n_batch=EVAL_BATCH, n_ubatch=EVAL_BATCH,
                          logits_all=True, n_threads=threads, n_threads_batch=threads, verbose=False)
    glass = GlassSession(llm)
    if glass.dense_layers():
        raise UnsupportedModel(f"{Path(model).name}: GLASS cannot serve layers {glass.dense_layers()}, "
                               "so the runtime does not observe their FFN")
    tokenizer = LlamaTokenizer(llm)
    if self_calibration:
        calib = self_generated(tokens, seq_len, seed, batch_size, shard)
        # the quantized model writes other text than the float32 checkpoint from the same seed: a distinct tag keeps
        # prior-merge from taking a GGUF shard and an HF shard for parts of one calibration
        calib = dataclasses.replace(calib, source=calib.source.replace("self-generated:", "self-generated-gguf:"))
        file_seqs, banned = None, end_of_generation(llm)
    else:
        calib, file_seqs = text_files(tokenizer, calibration, tokens, seq_len, batch_size, shard)
    rows = [r for b in calib.batch_indices() for r in calib.batch_rows(b)]
    if not rows:
        raise SettingError(f"shard {shard[0]}/{shard[1]} has no calibration batches ({calib.n_batches} in all)")

    glass.enable(density=1.0, lam=0.0, mode="manual")  # collect every batch, never select: h is only observed
    used: list[list[int]] = []
    bar = tqdm(rows, desc=f"prior ({kind}, {calib.source}, llama.cpp)", unit="seq",
               disable=None if progress is None else not progress)
    for r in bar:
        if file_seqs is None:
            prompt = tokenizer(SEEDS[(seed + r) % len(SEEDS)])["input_ids"]
            used.append(write_sequence(llm, prompt, seq_len, sequence_rng(seed, r), banned))
        else:
            llm.reset()
            llm.eval(file_seqs[r])
            used.append(file_seqs[r])
    sums, counts = glass.abs_sums()
    glass.disable()
    n_tokens = sum(len(s) for s in used)
    if any(c != n_tokens for c in counts):
        raise RuntimeError(f"the runtime collected {counts} rows per layer for {n_tokens} calibration tokens")
    if kind == "impact":
        sums = [s * down_column_norms(model, il) for il, s in enumerate(sums)]
    prior = Prior.from_sums(kind, calib.source, info.fingerprint, sums, n_tokens, shard)
    return (prior, used) if return_sequences else prior


def write_calibration_text(path: str | os.PathLike, model: str | os.PathLike, sequences: list[list[int]]) -> None:
    """The calibration sequences as text, a blank line between them: what `llama-imatrix -f` reads, so that an
    importance matrix sees the same text as the prior (the self-generated text exists only as tokens otherwise)."""
    import llama_cpp

    from .atomic import write_text

    vocab = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
    text = "\n\n".join(vocab.detokenize(s).decode("utf-8", errors="replace").strip() for s in sequences)
    write_text(path, text + "\n")
