"""Global priors from Hugging Face checkpoints (docs/design.md, the method), computed with PyTorch and transformers.

For every layer, h_t (the input of the FFN down projection) is captured by a forward pre-hook on `mlp.down_proj`
and reduced on the fly to float64 sums over the calibration tokens:

    activation (A-GLASS):  sum_t |h_t[j]|
    impact     (I-GLASS):  sum_t |h_t[j]| * ||W_down[:, j]||

The prior is the sum divided by the token count. Sums and counts are kept in the prior file, so shards computed in
separate processes merge exactly (prior_file.merge_priors).

Calibration is a list of token sequences cut into fixed batches. The default is text the model generates itself
from short generic seeds, sampled with a seed derived from (seed, batch index), so any batch can be regenerated
alone: shard i/n takes the batches b with b % n == i, and the union of the shards is exactly the single run.
Text files are the alternative: tokenized, cut into sequences of the same length.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import schema
from .errors import SettingError
from .fingerprint import hf_model_info
from .hf_model import down_projections, load_model
from .prior_file import Prior

# Short, generic openings: prose, dialogue, code, lists, questions. The model writes the rest.
SEEDS = (
    "The", "In", "Once upon a time", "Here is", "I think", "Question:", "def", "The following", "Today",
    "Dear", "Chapter 1", "It was", "We", "Introduction", "Step 1:", "A", "How to", "In the beginning",
    "import", "Why", "1.", "User:", "The history of", "This", "My", "Abstract:", "There are", "When",
    "What is", "#include", "Note:", "Yesterday",
)

DEFAULT_TOKENS = 8192
DEFAULT_SEQ_LEN = 128
DEFAULT_BATCH = 16  # larger batches amortize the per-step cost of generate (measured: 16 is 20% faster than 8)
SAMPLING = dict(do_sample=True, temperature=1.0, top_k=50, top_p=0.95)


# ---------------------------------------------------------------------------------------------------------------
# Calibration


@dataclass(frozen=True)
class Calibration:
    """Which token sequences a prior is computed on. Batches are fixed; a shard takes every n-th batch."""

    source: str                  # recorded as glass.prior.source
    n_seq: int
    seq_len: int
    batch_size: int
    shard: tuple[int, int] = (0, 1)

    @property
    def n_batches(self) -> int:
        return math.ceil(self.n_seq / self.batch_size)

    def batch_indices(self) -> list[int]:
        i, n = self.shard
        return [b for b in range(self.n_batches) if b % n == i]

    def batch_rows(self, b: int) -> range:
        return range(b * self.batch_size, min(self.n_seq, (b + 1) * self.batch_size))


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' with 0 <= I < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise SettingError(f"shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise SettingError(f"shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def self_generated(tokens: int = DEFAULT_TOKENS, seq_len: int = DEFAULT_SEQ_LEN, seed: int = 0,
                   batch_size: int = DEFAULT_BATCH, shard: tuple[int, int] = (0, 1)) -> Calibration:
    n_seq = max(1, math.ceil(tokens / seq_len))
    return Calibration(f"self-generated:{n_seq}x{seq_len}:seed={seed}", n_seq, seq_len, batch_size, shard)


def generate_batch(model, tokenizer, calib: Calibration, seed: int, b: int) -> list[list[int]]:
    """Batch b of the self-generated calibration: seq_len tokens per sequence, reproducible from (seed, b)."""
    import torch

    rows = calib.batch_rows(b)
    texts = [SEEDS[(seed + r) % len(SEEDS)] for r in rows]
    prompts = [tokenizer(t)["input_ids"] for t in texts]
    longest = max(len(p) for p in prompts)
    if longest >= calib.seq_len:
        raise SettingError(f"sequence length {calib.seq_len} is too short for the seeds ({longest} tokens)")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(prompts), longest), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, p in enumerate(prompts):  # left padding, as generation needs
        ids[r, longest - len(p):] = torch.tensor(p)
        mask[r, longest - len(p):] = 1
    new = calib.seq_len - min(len(p) for p in prompts)
    torch.manual_seed(1_000_003 * seed + b)
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, pad_token_id=pad,
            **SAMPLING,
        )
    seqs = []
    for r, p in enumerate(prompts):
        seqs.append(out[r, longest - len(p):].tolist()[: calib.seq_len])
    return seqs


def text_files(tokenizer, files: Sequence[str | os.PathLike], tokens: int = DEFAULT_TOKENS,
               seq_len: int = DEFAULT_SEQ_LEN, batch_size: int = DEFAULT_BATCH,
               shard: tuple[int, int] = (0, 1)) -> tuple[Calibration, list[list[int]]]:
    """Calibration from text files: their text, tokenized and cut into sequences that start like the tokenizer's."""
    digest = hashlib.sha256()
    texts = []
    for f in files:
        if str(f) == "self":
            raise SettingError("--calibration self cannot be combined with calibration files")
        if not Path(f).is_file():
            raise SettingError(f"{f}: no such calibration file")
        data = Path(f).read_bytes()
        digest.update(hashlib.sha256(data).digest())
        texts.append(data.decode("utf-8", errors="replace"))
    prefix = tokenizer("")["input_ids"]  # BOS for tokenizers that add one
    body = tokenizer("\n\n".join(texts), add_special_tokens=False)["input_ids"]
    step = seq_len - len(prefix)
    n_seq = min(max(1, math.ceil(tokens / seq_len)), len(body) // step)
    if n_seq < 1:
        raise SettingError(f"the calibration files hold {len(body)} tokens, fewer than one sequence of {seq_len}")
    seqs = [prefix + body[k * step:(k + 1) * step] for k in range(n_seq)]
    calib = Calibration(f"files:sha256={digest.hexdigest()[:16]}:{n_seq}x{seq_len}", n_seq, seq_len, batch_size, shard)
    return calib, seqs


# ---------------------------------------------------------------------------------------------------------------
# Statistics


class Accumulator:
    """Streaming sums of |h| per neuron of every layer, fed by hooks on down_proj: both prior kinds come from them
    (the impact prior weighs them by the down projection's column norms at the end)."""

    def __init__(self, model):
        import torch

        self.downs = down_projections(model)
        self.model = model
        self.sums = [torch.zeros(d.in_features, dtype=torch.float64) for d in self.downs]
        self.tokens = 0
        self._mask = None

    def _hook(self, i: int):
        def pre_hook(module, args):
            h = args[0]
            rows = h[self._mask] if self._mask is not None else h.reshape(-1, h.shape[-1])
            self.sums[i] += rows.abs().sum(dim=0, dtype=self.sums[i].dtype)
        return pre_hook

    def add(self, seqs: list[list[int]], pad_id: int) -> None:
        """Run the decoder (no LM head) on a batch of sequences, right-padded; padding is not counted."""
        import torch

        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.bool)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = True
        handles = [d.register_forward_pre_hook(self._hook(i)) for i, d in enumerate(self.downs)]
        self._mask = mask
        try:
            with torch.inference_mode():
                self.model.get_decoder()(input_ids=ids, attention_mask=mask.long(), use_cache=False)
        finally:
            for hd in handles:
                hd.remove()
            self._mask = None
        self.tokens += int(mask.sum())

    def result(self, kind: str) -> tuple[list[np.ndarray], int]:
        sums = [s.numpy().copy() for s in self.sums]
        if kind == "impact":
            sums = [s * d.weight.detach().double().norm(dim=0).numpy() for s, d in zip(sums, self.downs)]
        return sums, self.tokens


def compute_prior(hf_dir: str | os.PathLike, kind: str = "activation", *args, return_sequences: bool = False,
                  **kwargs):
    """The prior of an HF checkpoint (or of shard i/n of it); the other arguments are compute_priors'.

    With return_sequences=True, also returns the calibration token sequences that were used.
    """
    priors, used = compute_priors(hf_dir, (kind,), *args, **kwargs)
    return (priors[kind], used) if return_sequences else priors[kind]


def compute_priors(
    hf_dir: str | os.PathLike,
    kinds: Sequence[str] = schema.PRIOR_KINDS,
    calibration: Sequence[str] = ("self",),
    tokens: int = DEFAULT_TOKENS,
    seq_len: int = DEFAULT_SEQ_LEN,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH,
    shard: tuple[int, int] = (0, 1),
    threads: int | None = 2,
    progress: bool | None = None,
) -> tuple[dict[str, Prior], list[list[int]]]:
    """({kind: prior}, calibration sequences) of an HF checkpoint (or of shard i/n of it) from one pass over the
    calibration, ("self",) or a list of text files: both kinds cost what one does."""
    from tqdm import tqdm

    if unknown := [k for k in kinds if k not in schema.PRIOR_KINDS]:
        raise SettingError(f"kind must be one of {schema.PRIOR_KINDS}, got {unknown[0]!r}")
    self_calibration = list(calibration) == ["self"]
    for f in [] if self_calibration else calibration:  # refuse before the model is loaded
        if str(f) == "self" or not Path(f).is_file():
            raise SettingError(f"{f}: no such calibration file ('self' cannot be combined with files)")
    hf_dir = Path(hf_dir)
    model, tokenizer = load_model(hf_dir, threads)
    info = hf_model_info(hf_dir, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    acc = Accumulator(model)
    if self_calibration:
        calib = self_generated(tokens, seq_len, seed, batch_size, shard)
        file_seqs = None
    else:
        calib, file_seqs = text_files(tokenizer, calibration, tokens, seq_len, batch_size, shard)
    used: list[list[int]] = []
    bar = tqdm(calib.batch_indices(), desc=f"prior ({', '.join(kinds)}, {calib.source})", unit="batch",
               disable=None if progress is None else not progress)
    for b in bar:
        if file_seqs is None:
            seqs = generate_batch(model, tokenizer, calib, seed, b)
        else:
            seqs = [file_seqs[r] for r in calib.batch_rows(b)]
        acc.add(seqs, pad)
        used.extend(seqs)
        bar.set_postfix(tokens=acc.tokens)
    if acc.tokens == 0:
        raise SettingError(f"shard {shard[0]}/{shard[1]} has no calibration batches ({calib.n_batches} in all)")
    priors = {}
    for kind in kinds:
        sums, n_tokens = acc.result(kind)
        priors[kind] = Prior.from_sums(kind, calib.source, info.fingerprint, sums, n_tokens, shard)
    return priors, used
