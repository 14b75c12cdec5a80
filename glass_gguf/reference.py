"""GLASS selection applied to a Hugging Face model in PyTorch: the oracle and the evaluation baseline.

The FFN intermediate h (the input of every `mlp.down_proj`, docs/design.md) is observed by a forward pre-hook:

    collect  dense; the first `prompt_len` positions add their local statistic sum_t (h_t/||h_t||)^2 per layer
    sparse   positions from `start` on keep only the chosen neurons (h[j] = 0 for the others); earlier positions
             (the prompt, already prefilled densely) stay dense

Masking h before down_proj is exactly what the runtime's compaction computes (up to float summation order).
The neuron sets come from glass_gguf.method (select_layers), the specification the C++ runtime follows too. One
last-layer rule, the runtime's: the last FFN runs only on the rows that need logits (one row during generation,
every row under `logits_all=True`), so its statistic would depend on the client; it never collects, and
select_layers gives it the prior's selection (GLASS, static) or keeps it dense (GRIFFIN, the oracle: no prior).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import method
from .errors import SettingError
from .hf_model import gated_mlps
from .settings import check_density, check_lambda

METHODS = ("dense", "griffin", "static", "glass", "two-level", "random", "oracle")
WITH_PRIOR = ("static", "glass", "two-level")
PRIOR_TAGS = {"activation": "A", "impact": "I"}   # the letter of A-GLASS and I-GLASS in setting names


@dataclass(frozen=True)
class Config:
    """One sparsification setting. prior is "activation" | "impact" for static and glass, None otherwise.

    warmup and refresh are the runtime's generation schedule (method.collected_positions) for griffin and glass;
    "oracle" selects from the dense continuation's own statistic (GRIFFIN's rule on the answer, not the prompt):
    what no runtime can know in advance, the yardstick of how much of the gap a setting closes.
    "two-level" is GLASS's selection at a larger density (method.superset_density) inside which every decoded
    token keeps the share token_fraction with the largest |act(gate)|; its density is the average share of the
    FFN's rows a token reads (docs/two-level.md).
    """

    method: str
    density: float = 1.0
    lam: float | None = None
    prior: str | None = None
    warmup: int = 0
    refresh: int = 0
    min_change: float = 0.05
    layer_split: float = 0.0   # per-layer density from the prior's concentration (method.layer_scale); 0 uniform
    token_fraction: float = 1.0  # two-level: the share of the selected neurons each decoded token keeps

    def __post_init__(self):
        if self.method not in METHODS:
            raise SettingError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.method in WITH_PRIOR and self.prior is None:
            raise SettingError(f"{self.method} needs a prior kind")
        if self.method in ("glass", "two-level"):
            if self.lam is None:
                raise SettingError("glass needs a lambda in [0, 1], got None")
            check_lambda(self.lam)
        check_density(self.density)
        if self.method == "two-level":
            if not 0.0 < self.token_fraction < 1.0:
                raise SettingError(f"two-level needs a token fraction in (0, 1), got {self.token_fraction}")
            if self.superset_density > 1.0:
                raise SettingError(f"two-level at density {self.density:g} with token fraction "
                                   f"{self.token_fraction:g} needs a selection denser than the model "
                                   f"({self.superset_density:.3f}): raise the token fraction or lower the density")
        elif self.token_fraction != 1.0:
            raise SettingError(f"a token fraction applies to two-level only, not {self.method}")
        if (self.warmup or self.refresh) and self.method not in ("griffin", "glass", "two-level"):
            raise SettingError(f"warm-up and refresh apply to griffin and glass, not {self.method}")
        if self.warmup < 0 or self.refresh < 0 or self.refresh == 1:
            raise SettingError(f"warm-up must be >= 0 and refresh 0 (off) or >= 2, got {self.warmup} and {self.refresh}")
        if self.layer_split and self.method not in ("glass", "two-level"):
            raise SettingError(f"a per-layer density split needs the prior: glass only, not {self.method}")

    def layer_scale(self, priors: dict[str, list[np.ndarray]] | None) -> list[float] | None:
        """The per-layer density factors of this setting (None: every layer at the density)."""
        if not self.layer_split:
            return None
        return method.layer_scale(list(priors[self.prior]), self.superset_density, self.layer_split)

    @property
    def superset_density(self) -> float:
        """The density of the prompt's selection: the density itself, or two-level's larger one."""
        if self.method != "two-level":
            return self.density
        return method.superset_density(self.density, self.token_fraction)

    @property
    def scheduled(self) -> bool:
        return bool(self.warmup or self.refresh)

    @property
    def weight(self) -> float | None:
        """The lambda handed to method.select_layers (None for dense, random and the oracle)."""
        return {"griffin": 0.0, "static": 1.0, "glass": self.lam, "two-level": self.lam}.get(self.method)

    @property
    def name(self) -> str:
        """The setting without its density, e.g. "glass-A lambda=0.5": one line of a plot, one row of a table."""
        tag = PRIOR_TAGS.get(self.prior, "")
        schedule = (f" W={self.warmup}" if self.warmup else "") + (f" R={self.refresh}" if self.refresh else "")
        schedule += f" split={self.layer_split:g}" if self.layer_split else ""
        if self.method == "static":
            return f"static-{tag}"
        if self.method == "glass":
            return f"glass-{tag} lambda={self.lam:g}{schedule}"
        if self.method == "two-level":
            return f"two-level-{tag} lambda={self.lam:g} f={self.token_fraction:g}{schedule}"
        return self.method + schedule

    @property
    def label(self) -> str:
        """The setting with its density, e.g. "glass-A lambda=0.5 @0.75" (dense has no density)."""
        return "dense" if self.method == "dense" else f"{self.name} @{self.density:g}"

    @classmethod
    def of(cls, method: str, prior: str | None, weight: float | None, density: float, warmup: int = 0,
           refresh: int = 0, layer_split: float = 0.0, token_fraction: float = 1.0) -> "Config":
        """The setting behind a result's fields (weight is the lambda handed to select_layers)."""
        return cls(method, density, weight if method in ("glass", "two-level") else None, prior, warmup, refresh,
                   layer_split=layer_split, token_fraction=token_fraction)


def select_masks(
    config: Config,
    sum_squares: list[np.ndarray],
    rows: list[int],
    priors: dict[str, list[np.ndarray]] | None = None,
    seed: int = 0,
) -> list[np.ndarray | None]:
    """Kept neuron indices per layer (None = dense) for `config`, from a prefill's statistics and the priors.

    GRIFFIN is prompt-only: it gets no prior, so a layer whose local statistic is unusable (see
    method.select_layers) stays dense. Random keeps k uniformly drawn neurons per layer (seeded).
    """
    if config.method == "dense":
        return [None] * len(sum_squares)
    if config.method == "oracle":   # sum_squares of the dense continuation, not of the prompt
        return method.select_layers(sum_squares, rows, [None] * len(sum_squares), 0.0, config.density)
    if config.method == "random":
        rng = np.random.default_rng(seed)
        return [np.sort(rng.choice(len(ss), method.neurons_to_keep(len(ss), config.density), replace=False))
                for ss in sum_squares]
    layer_priors: list[np.ndarray | None] = [None] * len(sum_squares)
    if config.method != "griffin":
        if not priors or config.prior not in priors:
            raise SettingError(f"{config.label} needs the {config.prior} prior")
        layer_priors = list(priors[config.prior])
    return method.select_layers(sum_squares, rows, layer_priors, config.weight, config.superset_density,
                                config.layer_scale(priors))


class Sparsifier:
    """Forward pre-hooks on every FFN down projection of an HF causal LM (llama, qwen2, gemma ... `mlp.down_proj`).

    Use as a context manager (removes the hooks on exit) or call close().
    """

    # The runtime's rule is False: the last layer never collects. True reproduces the rule this reference had
    # before (every prompt row of the last layer collected), for measuring what that difference did.
    collects_last_layer = False

    def __init__(self, model):
        mlps = gated_mlps(model)
        self.downs = [m.down_proj for m in mlps]
        self.n_ff = self.downs[0].in_features
        self.state = "off"
        self._prompt_len = 0
        self._start = 0
        self._collect_start = 0
        self._masks: list | None = None
        self._token_keep: list[list[int | None]] | None = None   # two-level: [layer][batch row] neurons per token
        self._gates: list = [None] * len(mlps)                     # two-level: act(gate) of the current forward
        self._captured: list[list[np.ndarray]] | None = None
        self.sum_squares = [np.zeros(d.in_features) for d in self.downs]
        self.rows = [0] * len(self.downs)
        self._hooks = [d.register_forward_pre_hook(self._make_hook(i)) for i, d in enumerate(self.downs)]
        self._hooks += [m.gate_proj.register_forward_hook(self._make_gate_hook(i, m.act_fn))
                        for i, m in enumerate(mlps)]

    # -- states ---------------------------------------------------------------------------------------------------
    def off(self) -> None:
        self.state, self._masks, self._captured, self._token_keep = "off", None, None, None
        self._gates = [None] * len(self.downs)

    def collect(self, prompt_len: int, start: int = 0) -> None:
        """Dense; the next forward adds the statistic of its positions [start, prompt_len) (batch of one) to every
        layer but the last, which never collects (the runtime's rule, module docstring)."""
        self.state, self._prompt_len = "collect", int(prompt_len)
        self._collect_start = int(start)
        self.sum_squares = [np.zeros(d.in_features) for d in self.downs]
        self.rows = [0] * len(self.downs)

    def capture(self) -> list[list[np.ndarray]]:
        """Dense; every forward appends each layer's h (float32, [tokens, n_ff]) to the returned lists."""
        self.state = "capture"
        self._captured = [[] for _ in self.downs]
        return self._captured

    def sparse(self, masks: list[list[np.ndarray | None]], start: int,
               token_fractions: list[float] | None = None) -> None:
        """masks[b][layer]: kept neurons for batch row b (None = dense layer); positions >= start are masked.
        token_fractions[b] < 1 makes row b two-level: each position keeps that share of its layer's kept neurons,
        those with the largest |act(gate)| (method.neurons_per_token, method.token_select)."""
        import torch

        per_layer = []
        for layer, down in enumerate(self.downs):
            m = torch.ones(len(masks), 1, down.in_features, dtype=down.weight.dtype)
            for b, layer_masks in enumerate(masks):
                keep = layer_masks[layer]
                if keep is not None:
                    m[b, 0].zero_()
                    m[b, 0, torch.as_tensor(np.asarray(keep, dtype=np.int64))] = 1.0
            per_layer.append(m)
        self.state, self._masks, self._start, self._token_keep = "sparse", per_layer, int(start), None
        fractions = token_fractions or [1.0] * len(masks)
        if any(f < 1.0 for f in fractions):
            self._token_keep = [[None if f >= 1.0 or m[layer] is None else method.neurons_per_token(len(m[layer]), f)
                                 for m, f in zip(masks, fractions)] for layer in range(len(self.downs))]

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def __enter__(self) -> "Sparsifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the hook -------------------------------------------------------------------------------------------------
    def _make_hook(self, layer: int):
        last = len(self.downs) - 1

        def hook(module, args):
            (h,) = args
            if self.state == "collect":
                if layer == last and not self.collects_last_layer:
                    return None
                rows = h[0, self._collect_start: self._prompt_len]
                self.sum_squares[layer] += method.local_sum_squares(rows.detach().double().numpy())
                self.rows[layer] += rows.shape[0]
            elif self.state == "capture":
                self._captured[layer].append(h.detach().reshape(-1, h.shape[-1]).float().numpy().copy())
            elif self.state == "sparse":
                m = self._masks[layer]
                if self._token_keep is not None:
                    m = self._per_token(layer, m, h.shape[1])
                out = h.clone()
                out[:, self._start:] = out[:, self._start:] * m
                return (out,)
            return None

        return hook

    def _make_gate_hook(self, layer: int, act_fn):
        def hook(module, args, out):
            if self.state == "sparse" and self._token_keep is not None:
                self._gates[layer] = act_fn(out.detach())
            return None

        return hook

    def _per_token(self, layer: int, mask, positions: int):
        """Two-level masks [batch, positions - start, n_ff]: within the row's kept neurons, each position keeps
        the neurons_per_token largest |act(gate)|; rows without a token fraction keep their mask."""
        import torch

        gate = self._gates[layer][:, self._start:positions].abs()
        out = mask.expand(-1, gate.shape[1], -1).clone()
        for b, keep in enumerate(self._token_keep[layer]):
            if keep is None:
                continue
            # outside the selection the score is -1, below every |act(gate)|; topk's order among equal values is
            # not method.token_select's index order, which matters only for exact ties of float activations
            scores = torch.where(mask[b, 0] > 0, gate[b], torch.full_like(gate[b], -1.0))
            top = torch.topk(scores, keep, dim=-1).indices
            out[b].zero_()
            out[b].scatter_(-1, top, 1.0)
        return out


# what follows a prompt for a base model (no chat template): the blank line after which a completion answers
BASE_PROMPT_END = "\n\n"


def chat_tokens(tokenizer, prompt: str) -> list[int]:
    """The prompt as one user turn with the model's chat template and the assistant header. A base model (no
    template, such as Gemma 3 270M) gets the plain text and a blank line, as `llama-completion -p` would."""
    if not getattr(tokenizer, "chat_template", None):
        return [int(t) for t in tokenizer(prompt + BASE_PROMPT_END)["input_ids"]]
    enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        tokenize=True)
    ids = enc["input_ids"] if hasattr(enc, "keys") else enc
    return [int(t) for t in ids]


def generate_dense(model, prompt_ids: list[int], n: int) -> list[int]:
    """Greedy dense continuation of up to n tokens (stops after an end-of-sequence token)."""
    import torch

    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=n, do_sample=False,
                             attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long))
    return [int(t) for t in out[0, len(prompt_ids):]]


def generate_dense_batch(model, prompts: list[list[int]], n: int, pad_id: int) -> list[list[int]]:
    """Greedy dense continuations of several prompts in one left-padded batch, each as generate_dense gives it
    (up to and with its end-of-sequence token). Decoding reads every weight once per step for the whole batch, so
    eight prompts cost little more than one on a CPU (fp32 decoding is bound by memory bandwidth)."""
    import torch

    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=n, do_sample=False, pad_token_id=pad_id)
    answers = []
    for row in out[:, width:].tolist():
        end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
        answers.append([int(t) for t in row[:end]])
    return answers


def prefill_statistics(model, sparsifier: Sparsifier, prompt_ids: list[int]):
    """(sum_squares, rows) of a dense prefill of the prompt: what the runtime collects in COLLECT state."""
    import torch

    sparsifier.collect(len(prompt_ids))
    with torch.inference_mode():
        model(torch.tensor([prompt_ids]), logits_to_keep=1)
    sparsifier.off()
    return sparsifier.sum_squares, sparsifier.rows


def capture_activations(model, sparsifier: Sparsifier, ids: list[int]) -> list[np.ndarray]:
    """h of every layer ([tokens, n_ff] float32) for one dense forward over ids."""
    import torch

    captured = sparsifier.capture()
    with torch.inference_mode():
        model(torch.tensor([ids]), logits_to_keep=1)
    sparsifier.off()
    return [np.concatenate(c) for c in captured]


def decode_scheduled(model, sparsifier: Sparsifier, prompt_ids: list[int], inputs: list[int], config: Config,
                     priors=None):
    """A teacher-forced answer decoded the way the runtime's schedule decodes it (method.collected_positions):
    the prompt dense, then runs of generated positions that are either dense and collected (warm-up, refresh) or
    sparse under the selection made from every row collected before them, a layer keeping its previous set when
    the change is small (method.refreshed). The last layer never collects generated rows, as in the runtime.
    Returns (log-probabilities [len(inputs), vocab] after each input token, the last selection)."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache()
    sparsifier.collect(len(prompt_ids))
    with torch.inference_mode():
        model(torch.tensor([prompt_ids]), cache=cache, use_cache=True, logits_to_keep=1)
    sparsifier.off()
    sums = [s.copy() for s in sparsifier.sum_squares]
    rows = list(sparsifier.rows)
    masks, logps = None, []
    scale = config.layer_scale(priors) or [None] * len(sums)
    keep = [method.neurons_to_keep(len(s), method.layer_density(config.superset_density, f))
            for s, f in zip(sums, scale)]
    with torch.inference_mode():
        for start, end, collected in method.schedule_segments(len(inputs), config.warmup, config.refresh):
            chunk = torch.tensor([inputs[start:end]])
            if collected:
                captured = sparsifier.capture()
                logits = model(chunk, cache=cache, use_cache=True).logits
                for layer in range(len(sums) - 1):
                    sums[layer] = sums[layer] + method.local_sum_squares(np.concatenate(captured[layer]))
                    rows[layer] += end - start
            else:
                new = select_masks(config, sums, rows, priors)
                masks = new if masks is None else [
                    method.refreshed(old, fresh, k, config.min_change) for old, fresh, k in zip(masks, new, keep)]
                sparsifier.sparse([masks], start=0, token_fractions=[config.token_fraction])
                logits = model(chunk, cache=cache, use_cache=True).logits
            sparsifier.off()
            logps.append(torch.log_softmax(logits[0].float(), -1))
    return torch.cat(logps), masks
