"""The quality protocol of docs/design.md: short prompt, long generation.

For every prompt (one user turn, chat template applied):
  1. the dense model generates up to N tokens greedily: the continuation c_0 .. c_{N-1};
  2. each setting (reference.Config) selects its mask from the dense prompt prefill and scores the continuation
     teacher-forced under that fixed mask: the tokens c_1 .. c_{N-1}, each predicted from a position decoded
     sparsely (c_0 is predicted by the dense prefill itself, identical for every setting, and is not scored);
  3. per setting: perplexity of the scored tokens and mean per-token KL(p_dense || p_setting).
Totals are token-weighted over prompts, overall and split at the median prompt length ("short" / "long"), one
Record per setting and split.

Two backends score the same way: "torch" (reference.Sparsifier on the HF checkpoint) and "llama" (the patched
llama.cpp in manual mode through glass_gguf.runtime.GlassSession).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from . import method, reference
from .atomic import write_text
from .errors import SettingError
from .reference import Config


@dataclass
class PromptScores:
    """One prompt's sums per setting: negative log-likelihood, KL, scored tokens."""

    prompt_tokens: int
    n_tokens: int
    nll: dict[Config, float] = field(default_factory=dict)
    kl: dict[Config, float] = field(default_factory=dict)
    masks: dict[Config, list] = field(default_factory=dict)   # kept neurons per layer, when asked for


@dataclass(frozen=True)
class Record:
    """The quality of one setting over a group of prompts: a row of the eval and sweep JSON."""

    method: str
    prior: str | None
    lam: float | None             # the lambda handed to select_layers: 0 GRIFFIN, 1 static (None: dense, random)
    density: float
    ppl: float
    kl: float
    n_prompts: int
    n_tokens: int
    split: str                    # "all", "short" or "long" (prompt length against the median)
    median_prompt_tokens: float
    backend: str = "torch"
    warmup: int = 0               # the generation schedule (reference.Config)
    refresh: int = 0
    layer_split: float = 0.0      # per-layer density strength (reference.Config)
    token_fraction: float = 1.0   # two-level's per-token share of the selection (reference.Config)

    @property
    def config(self) -> Config:
        return Config.of(self.method, self.prior, self.lam, self.density, self.warmup, self.refresh,
                         self.layer_split, self.token_fraction)

    @property
    def setting(self) -> str:
        """The setting without its density, e.g. "glass-A lambda=0.5"."""
        return self.config.name

    @property
    def label(self) -> str:
        return self.config.label

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["lambda"] = out.pop("lam")
        return {**out, "label": self.label}      # the label for readers of the file; code uses the fields

    @classmethod
    def from_json(cls, d: dict) -> "Record":
        names = {f.name for f in fields(cls)} - {"lam"}
        return cls(lam=d["lambda"], **{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Gain:
    """How much better a static or GLASS record is than GRIFFIN at the same density (positive = better):
    100 * (GRIFFIN - x) / GRIFFIN, for PPL and for KL."""

    record: Record
    ppl_gain_pct: float
    kl_gain_pct: float
    gap_closed_pct: float | None = None   # share of the GRIFFIN-to-oracle KL gap closed (with an oracle row)

    def to_json(self) -> dict:
        r = self.record
        return {"label": r.label, "method": r.method, "prior": r.prior, "lambda": r.lam, "density": r.density,
                "warmup": r.warmup, "refresh": r.refresh, "layer_split": r.layer_split,
                "token_fraction": r.token_fraction, "ppl_gain_pct": self.ppl_gain_pct,
                "kl_gain_pct": self.kl_gain_pct, "gap_closed_pct": self.gap_closed_pct}


def configs_for(methods, densities, lambdas, prior_kinds, schedules=((0, 0),), layer_splits=(0.0,),
                token_fractions=(0.5,)) -> list[Config]:
    """The settings of one run: dense once, then every method at every density (static and glass per prior kind,
    glass at every lambda and per-layer density split, griffin and glass under every (warm-up, refresh) schedule,
    two-level as glass at every token fraction whose selection fits in the model)."""
    configs: list[Config] = []
    for name in methods:
        if name not in reference.METHODS:
            raise SettingError(f"unknown method {name!r}; choose from {', '.join(reference.METHODS)}")
    if "dense" in methods:
        configs.append(Config("dense"))
    for d in densities:
        for name in methods:
            if name in ("random", "oracle"):
                configs.append(Config(name, d))
            elif name == "griffin":
                configs += [Config(name, d, warmup=w, refresh=r) for w, r in schedules]
            elif name == "static":
                configs += [Config("static", d, prior=p) for p in prior_kinds]
            elif name == "glass":
                configs += [Config("glass", d, lam, p, w, r, layer_split=s) for p in prior_kinds for lam in lambdas
                            for w, r in schedules for s in layer_splits]
            elif name == "two-level":
                configs += [Config("two-level", d, lam, p, w, r, layer_split=s, token_fraction=f)
                            for f in token_fractions if method.superset_density(d, f) <= 1.0
                            for p in prior_kinds for lam in lambdas for w, r in schedules for s in layer_splits]
    return configs


# -- torch backend --------------------------------------------------------------------------------------------------

class TorchBackend:
    """The HF checkpoint with reference.Sparsifier hooks (the runtime's last-layer rule: reference module docstring)."""

    name = "torch"

    def __init__(self, model, tokenizer, batch_tokens: int = 50_000_000):
        self.model, self.tokenizer = model, tokenizer
        self.sparsifier = reference.Sparsifier(model)
        self.batch_tokens = batch_tokens     # logits elements per batched forward (memory bound)

    def prompt_ids(self, prompt: str) -> list[int]:
        return reference.chat_tokens(self.tokenizer, prompt)

    def generate(self, prompt_ids: list[int], n: int) -> list[int]:
        self.sparsifier.off()
        return reference.generate_dense(self.model, prompt_ids, n)

    def generate_many(self, prompts: list[list[int]], n: int) -> list[list[int]]:
        self.sparsifier.off()
        pad = self.tokenizer.pad_token_id
        return reference.generate_dense_batch(self.model, prompts, n, self.tokenizer.eos_token_id if pad is None
                                              else pad)

    def score(self, prompt_ids, cont, configs, priors, seed=0, keep_masks=False) -> PromptScores:
        import torch

        P, N = len(prompt_ids), len(cont)
        x = torch.tensor([prompt_ids + cont[:-1]])
        targets = torch.tensor(cont[1:])
        out = PromptScores(P, N - 1)
        with torch.inference_mode():
            self.sparsifier.collect(P)
            logp_dense = torch.log_softmax(self.model(x, logits_to_keep=N - 1).logits[0].float(), -1)
            self.sparsifier.off()
            p_dense = logp_dense.exp()
            ss, rows = self.sparsifier.sum_squares, self.sparsifier.rows
            if any(c.method == "oracle" for c in configs):
                oracle_ss, oracle_rows = self._answer_statistic(x, P)
            sparse = []
            for c in configs:
                if c.method == "dense":
                    out.nll[c] = float(-logp_dense.gather(-1, targets[:, None]).sum())
                    out.kl[c] = 0.0
                elif c.scheduled:
                    logp, masks = reference.decode_scheduled(self.model, self.sparsifier, prompt_ids, cont[:-1], c,
                                                             priors)
                    self._score(out, c, logp, logp_dense, p_dense, targets, masks if keep_masks else None)
                elif c.method == "oracle":
                    sparse.append((c, reference.select_masks(c, oracle_ss, oracle_rows)))
                else:
                    sparse.append((c, reference.select_masks(c, ss, rows, priors, seed)))
            vocab = logp_dense.shape[-1]
            batch = max(1, self.batch_tokens // max(1, (N - 1) * vocab))
            for i in range(0, len(sparse), batch):
                chunk = sparse[i:i + batch]
                self.sparsifier.sparse([m for _, m in chunk], start=P,
                                       token_fractions=[c.token_fraction for c, _ in chunk])
                logits = self.model(x.expand(len(chunk), -1), logits_to_keep=N - 1).logits
                self.sparsifier.off()
                for b, (c, masks) in enumerate(chunk):
                    logp = torch.log_softmax(logits[b].float(), -1)
                    self._score(out, c, logp, logp_dense, p_dense, targets, masks if keep_masks else None)
                del logits
        return out

    @staticmethod
    def _score(out: PromptScores, c: Config, logp, logp_dense, p_dense, targets, masks) -> None:
        out.nll[c] = float(-logp.gather(-1, targets[:, None]).sum())
        out.kl[c] = float((p_dense * (logp_dense - logp)).sum())
        if masks is not None:
            out.masks[c] = masks

    def _answer_statistic(self, x, prompt_len: int):
        """The local statistic of the dense continuation itself (every layer, every answer position): the oracle's."""
        self.sparsifier.collect(x.shape[1], start=prompt_len)
        self.model(x, logits_to_keep=1)
        self.sparsifier.off()
        return self.sparsifier.sum_squares, self.sparsifier.rows


def load_torch_backend(hf_dir, threads: int | None = None) -> TorchBackend:
    from .hf_model import load_model

    model, tokenizer = load_model(hf_dir, threads)
    return TorchBackend(model, tokenizer)


# -- llama backend --------------------------------------------------------------------------------------------------

class LlamaBackend:
    """The patched llama.cpp through llama-cpp-python and glass_gguf.runtime.GlassSession in manual mode. Needs no
    torch: prompts, chat template and tokens come from the GGUF.

    Every setting is scored as named: before each one the context's priors are set to exactly the setting's (none
    for GRIFFIN and the oracle, whatever the file carries), as the torch reference selects."""

    name = "llama"

    def __init__(self, model_path, n_ctx: int = 2048, threads: int | None = None, tokenizer=None):
        import llama_cpp

        from .runtime import GlassSession
        from .settings import physical_cores

        threads = threads or physical_cores()
        self.llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=n_ctx, logits_all=True, n_threads=threads,
                                   n_threads_batch=threads, verbose=False)
        self.glass = GlassSession(self.llm)
        self.glass.disable()           # a GLASS GGUF enables itself on load; each setting enables it as it needs
        self.tokenizer = tokenizer     # an HF tokenizer for the chat template (None: the GGUF's own template)
        self._priors = "file"          # what the context holds: the file's priors until a setting sets its own

    def prompt_ids(self, prompt: str) -> list[int]:
        if self.tokenizer is not None:
            return reference.chat_tokens(self.tokenizer, prompt)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = self.llm.metadata
        if "tokenizer.chat_template" not in meta:     # a base model: plain text, as reference.chat_tokens
            return self.llm.tokenize((prompt + reference.BASE_PROMPT_END).encode(), add_bos=True, special=False)
        fmt = Jinja2ChatFormatter(meta["tokenizer.chat_template"], eos_token="", bos_token="")
        text = fmt(messages=[{"role": "user", "content": prompt}]).prompt
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def generate(self, prompt_ids: list[int], n: int) -> list[int]:
        self.glass.disable()
        self.llm.reset()
        out = []
        for tok in self.llm.generate(prompt_ids, temp=0.0, top_k=1, reset=True):
            out.append(int(tok))
            if tok == self.llm.token_eos() or len(out) >= n:
                break
        return out

    def log_probs(self, start: int, n: int) -> np.ndarray:
        """log-softmax of the logits after positions [start, start + n), float64 [n, vocab]."""
        logits = np.asarray(self.llm.scores[start:start + n], dtype=np.float64)
        logits -= logits.max(-1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(-1, keepdims=True))

    def prefill(self, ids: list[int]) -> None:
        """ids decoded dense from position 0 (GLASS off)."""
        self.glass.disable()
        self.llm.reset()
        self.llm.eval(ids)

    def prefill_and_select(self, c: Config, ids: list[int], priors) -> None:
        """Setting c in manual mode: ids decoded dense and collected, one selection from them and c's priors; what
        is decoded next runs sparse."""
        self.use_priors(c, priors)
        self.llm.reset()
        self._enable(c, c.weight, "manual", c.layer_scale(priors))
        self.llm.eval(ids)
        self.glass.finalize()

    def use_priors(self, c: Config, priors) -> None:
        """The context's priors become exactly setting c's: the prior of its kind for static and GLASS, none for
        GRIFFIN and the oracle (prompt-only: no layer selects by a prior, the file's own included)."""
        wanted = None
        if c.method in reference.WITH_PRIOR:
            if c.prior not in priors:
                raise SettingError(f"{c.label} needs the {c.prior} prior")
            wanted = priors[c.prior]
        if self._priors is wanted:
            return
        self.glass.clear_priors()
        if wanted is not None:
            self.glass.set_priors([None if p is None else np.asarray(p, dtype=np.float32) for p in wanted])
        self._priors = wanted

    def score(self, prompt_ids, cont, configs, priors, seed=0, keep_masks=False) -> PromptScores:
        P, N = len(prompt_ids), len(cont)
        targets = np.asarray(cont[1:])
        out = PromptScores(P, N - 1)
        self.prefill(prompt_ids + cont[:-1])
        logp_dense = self.log_probs(P, N - 1)
        p_dense = np.exp(logp_dense)
        for c in configs:
            if c.method == "dense":
                logp = logp_dense
            else:
                if c.method == "random":
                    raise SettingError("the llama backend has no random method (the torch backend has)")
                self.use_priors(c, priors)
                decode = self._decode_scheduled if c.scheduled else self._decode_oracle if c.method == "oracle" \
                    else self._decode_fixed
                decode(c, prompt_ids, cont[:-1], c.layer_scale(priors))
                logp = self.log_probs(P, N - 1)
                if keep_masks:
                    out.masks[c] = self.glass.selected()
                self.glass.disable()
            out.nll[c] = float(-logp[np.arange(N - 1), targets].sum())
            out.kl[c] = float((p_dense * (logp_dense - logp)).sum())
        return out

    def _enable(self, c: Config, lam: float, mode: str, scale) -> None:
        """GLASS on for setting c, with its per-layer density (none: uniform, whatever the model file says). The
        scale is set while GLASS is off (score disables it after every setting), so enable allocates only once."""
        self.glass.set_layer_scale(scale)
        self.glass.set_token_fraction(c.token_fraction)
        self.glass.enable(density=min(1.0, c.superset_density), lam=lam, mode=mode)

    def _decode_fixed(self, c: Config, prompt_ids, inputs, scale=None) -> None:
        """Manual mode: the prompt collects, one selection, the answer decodes sparse."""
        self.llm.reset()
        self._enable(c, c.weight, "manual", scale)
        self.llm.eval(prompt_ids)
        self.glass.finalize()
        self.llm.eval(inputs)

    def _decode_scheduled(self, c: Config, prompt_ids, inputs, scale=None) -> None:
        """Auto mode under the runtime's own schedule, fed in runs of one kind (the runtime would split any other
        batching into single tokens where the kind changes, with the same result)."""
        self.llm.reset()
        self._enable(c, c.weight, "auto", scale)
        self.glass.set_schedule(c.warmup, c.refresh, c.min_change)
        self.glass.set_prompt_end(len(prompt_ids))
        self.llm.eval(prompt_ids)
        for start, end, _ in method.schedule_segments(len(inputs), c.warmup, c.refresh):
            self.llm.eval(inputs[start:end])

    def _decode_oracle(self, c: Config, prompt_ids, inputs, scale=None) -> None:
        """Manual mode: the answer is read densely and collected alone, then read again under that selection."""
        self.llm.reset()
        self._enable(c, 0.0, "manual", scale)
        self.llm.eval(prompt_ids)
        self.glass.lib.llama_glass_reset(self.glass.ctx)   # the prompt's statistic out; its KV cache stays
        self.llm.eval(inputs)
        self.glass.finalize()
        self.llm.n_tokens = len(prompt_ids)                # the answer again, sparse this time
        self.llm.eval(inputs)


# -- the protocol ---------------------------------------------------------------------------------------------------

def dense_continuations(backend, prompts: list[str], n: int, cache: Path | None = None, progress: bool = True,
                        batch: int = 8):
    """[(prompt_ids, continuation)] per prompt; continuations are cached in `cache` (a json file) if given,
    keyed by the prompt tokens and n. A backend with generate_many (torch) generates `batch` prompts at once."""
    from tqdm import tqdm

    stored = json.loads(cache.read_text()) if cache and cache.exists() else {}
    ids = [backend.prompt_ids(p) for p in prompts]
    keys = [hashlib.sha256(json.dumps([i, n]).encode()).hexdigest()[:24] for i in ids]
    todo = [(k, i) for k, i in dict(zip(keys, ids)).items() if k not in stored]
    step = batch if hasattr(backend, "generate_many") else 1
    with tqdm(total=len(todo), desc=f"dense generation ({backend.name})", disable=not progress) as bar:
        for start in range(0, len(todo), step):
            chunk = todo[start:start + step]
            answers = (backend.generate_many([i for _, i in chunk], n) if step > 1 else
                       [backend.generate(chunk[0][1], n)])
            stored.update({k: a for (k, _), a in zip(chunk, answers)})
            if cache:
                write_text(cache, json.dumps(stored))
            bar.update(len(chunk))
    return [(i, stored[k]) for i, k in zip(ids, keys)]


def run(backend, pairs, configs, priors=None, progress: bool = True, keep_masks: bool = False) -> list[PromptScores]:
    """Score every (prompt_ids, continuation) pair under every setting."""
    from tqdm import tqdm

    scores = []
    for i, (ids, cont) in enumerate(tqdm(pairs, desc=f"scoring ({backend.name})", disable=not progress)):
        if len(cont) < 2:
            continue
        scores.append(backend.score(ids, cont, configs, priors or {}, seed=i, keep_masks=keep_masks))
    return scores


def summarize(scores: list[PromptScores], configs: list[Config], backend: str = "torch") -> list[Record]:
    """One Record per setting: overall ("split": "all") and for prompts up to / above the median length."""
    if not scores:
        return []
    median = float(np.median([s.prompt_tokens for s in scores]))
    groups = {"all": scores,
              "short": [s for s in scores if s.prompt_tokens <= median],
              "long": [s for s in scores if s.prompt_tokens > median]}
    records = []
    for split, group in groups.items():
        if not group:
            continue
        tokens = sum(s.n_tokens for s in group)
        for c in configs:
            nll = sum(s.nll[c] for s in group)
            kl = sum(s.kl[c] for s in group)
            records.append(Record(method=c.method, prior=c.prior, lam=c.weight, density=c.density,
                                  ppl=math.exp(nll / tokens), kl=kl / tokens, n_prompts=len(group), n_tokens=tokens,
                                  split=split, median_prompt_tokens=median, backend=backend,
                                  warmup=c.warmup, refresh=c.refresh, layer_split=c.layer_split,
                                  token_fraction=c.token_fraction))
    return records


def improvements(records: list[Record], split: str = "all") -> list[Gain]:
    """The Gain of every sparse record of `split` over plain GRIFFIN (prompt only, no schedule) at the same
    density, and with an oracle row, the share of the GRIFFIN-to-oracle KL gap it closes."""
    def plain(r):
        return r.split == split and not (r.warmup or r.refresh)
    griffin = {r.density: r for r in records if r.method == "griffin" and plain(r)}
    oracle = {r.density: r for r in records if r.method == "oracle" and plain(r)}
    out = []
    for r in records:
        g, o = griffin.get(r.density), oracle.get(r.density)
        if r.split != split or r.method not in ("glass", "static", "griffin", "two-level") or g is None or r is g:
            continue
        gap = 100.0 * (g.kl - r.kl) / (g.kl - o.kl) if o is not None and g.kl > o.kl else None
        out.append(Gain(r, ppl_gain_pct=100.0 * (g.ppl - r.ppl) / g.ppl,
                        kl_gain_pct=100.0 * (g.kl - r.kl) / g.kl if g.kl > 0 else 0.0, gap_closed_pct=gap))
    return out


def format_table(records: list[Record], split: str = "all") -> str:
    lines = [f"{'setting':34} {'density':>7} {'ppl':>9} {'kl':>8} {'prompts':>7}"]
    for r in records:
        if r.split == split:
            lines.append(f"{r.setting:34} {r.density:7.2f} {r.ppl:9.3f} {r.kl:8.4f} {r.n_prompts:7d}")
    return "\n".join(lines)


def dense_share(warmup: int, refresh: int, gen_tokens: int) -> float:
    """The share of an answer of gen_tokens that a schedule decodes dense (method.collected_positions)."""
    return float(method.collected_positions(gen_tokens, warmup, refresh).mean())


def choose_schedule(records: list[Record], gen_tokens: int, max_dense_share: float) -> dict:
    """The sweep's choice of (warm-up, refresh) for the chosen GLASS setting: the lowest KL averaged over the
    swept densities among the schedules that decode at most max_dense_share of an answer dense (0:0 always
    qualifies). A dense share f costs a share f * (s - 1) of a speed-up s: 0.1 keeps 90% of a 2x speed-up."""
    by_schedule: dict[tuple, list[float]] = {}
    for r in records:
        if r.split == "all" and r.method == "glass":
            by_schedule.setdefault((r.warmup, r.refresh), []).append(r.kl)
    table = [{"warmup": w, "refresh": rf, "mean_kl": float(np.mean(v)), "dense_share": dense_share(w, rf, gen_tokens)}
             for (w, rf), v in sorted(by_schedule.items())]
    allowed = [t for t in table if t["dense_share"] <= max_dense_share or (t["warmup"], t["refresh"]) == (0, 0)]
    best = min(allowed, key=lambda t: t["mean_kl"])
    return {**best, "max_dense_share": max_dense_share, "candidates": table}


def choose_layer_split(records: list[Record]) -> dict:
    """The sweep's choice of the per-layer density split (method.layer_scale's strength, 0 = uniform) for the
    chosen GLASS setting and schedule: the lowest KL averaged over the swept densities. Every split keeps the
    same total number of neurons, so they cost the same bytes per token."""
    by_split: dict[float, list[float]] = {}
    for r in records:
        if r.split == "all" and r.method == "glass":
            by_split.setdefault(r.layer_split, []).append(r.kl)
    table = [{"layer_split": s, "mean_kl": float(np.mean(v))} for s, v in sorted(by_split.items())]
    return {**min(table, key=lambda t: t["mean_kl"]), "candidates": table}


def choose_token_fraction(records: list[Record]) -> dict:
    """Two-level's token fraction for the chosen GLASS setting (1: single-level GLASS, which competes): the lowest
    KL averaged over the swept densities. Each density is the share of FFN rows a token reads, so every candidate
    reads the same bytes per token (not the same time: docs/two-level.md)."""
    by_fraction: dict[float, list[float]] = {}
    for r in records:
        if r.split == "all" and r.method in ("glass", "two-level"):
            by_fraction.setdefault(r.token_fraction, []).append(r.kl)
    table = [{"token_fraction": f, "mean_kl": float(np.mean(v))} for f, v in sorted(by_fraction.items())]
    return {**min(table, key=lambda t: t["mean_kl"]), "candidates": table}


def choose_lambda(records: list[Record]) -> dict:
    """The sweep's choice: the (prior kind, lambda) of the glass/static settings with the lowest KL averaged
    over the swept densities (overall split); GRIFFIN (lambda 0) competes too, prior-less."""
    by_setting: dict[tuple, list[float]] = {}
    for r in records:
        if r.split == "all" and r.method in ("griffin", "glass", "static"):
            by_setting.setdefault((r.prior, r.lam), []).append(r.kl)
    best = min(by_setting, key=lambda k: float(np.mean(by_setting[k])))
    table = [{"prior": p, "lambda": lam, "mean_kl": float(np.mean(v))} for (p, lam), v in by_setting.items()]
    return {"prior": best[0], "lambda": best[1], "mean_kl": float(np.mean(by_setting[best])), "candidates": table}


# -- cross-backend check --------------------------------------------------------------------------------------------

def jaccard(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """|a & b| / |a | b| of two kept-neuron sets; two dense layers (None) agree fully."""
    if a is None or b is None:
        return float(a is None and b is None)
    return len(np.intersect1d(a, b)) / len(np.union1d(a, b))


def cross_backend(torch_backend, llama_backend, pairs, configs, priors, progress: bool = False) -> dict:
    """Score the same (prompt, continuation) tokens on both backends; per sparse setting the Jaccard of the two
    masks (mean over every prompt and layer, the worst layer's mean over prompts, the worst single prompt and
    layer), which layers run dense on each side, and the KL each backend measures against its own dense model."""
    st = run(torch_backend, pairs, configs, priors, progress=progress, keep_masks=True)
    sl = run(llama_backend, pairs, configs, priors, progress=progress, keep_masks=True)
    tokens = sum(s.n_tokens for s in st)
    settings = []
    for c in configs:
        if c.method == "dense":
            continue
        j = np.array([[jaccard(x, y) for x, y in zip(a.masks[c], b.masks[c])] for a, b in zip(st, sl)])
        per_layer = j.mean(axis=0)
        settings.append({"label": c.label, "method": c.method, "prior": c.prior, "lambda": c.weight,
                         "density": c.density, "jaccard_mean": float(j.mean()), "jaccard_min": float(j.min()),
                         "jaccard_layer_min": float(per_layer.min()), "worst_layer": int(per_layer.argmin()),
                         "dense_layers_torch": [i for i, m in enumerate(st[0].masks[c]) if m is None],
                         "dense_layers_llama": [i for i, m in enumerate(sl[0].masks[c]) if m is None],
                         "kl_torch": sum(s.kl[c] for s in st) / tokens,
                         "kl_llama": sum(s.kl[c] for s in sl) / tokens})
    dense = next((c for c in configs if c.method == "dense"), None)
    out = {"n_prompts": len(st), "gen_tokens": max(len(c) for _, c in pairs), "settings": settings}
    if dense:
        out["ppl_dense_torch"] = math.exp(sum(s.nll[dense] for s in st) / tokens)
        out["ppl_dense_llama"] = math.exp(sum(s.nll[dense] for s in sl) / tokens)
    return out
