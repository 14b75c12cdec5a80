"""The PyTorch reference: masks follow method.py exactly, and masking h equals running the compacted FFN."""
import numpy as np
import pytest

from glass_gguf import method, reference
from glass_gguf.hf_model import decoder_layers, load_model
from glass_gguf.reference import Config

PROMPTS = ["Write a haiku about autumn leaves.",
           "Explain in two sentences why the sky is blue, then give one example of Rayleigh scattering."]


@pytest.fixture(scope="module")
def smollm2(smollm2_hf_dir):
    return load_model(smollm2_hf_dir, threads=1)


@pytest.fixture(scope="module")
def priors(smollm2):
    """A and I priors from the real model's activations on two HumanEval-like code snippets (numpy, method.py)."""
    model, tokenizer = smollm2
    text = "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n\nprint(add(2, 3))\n" * 3
    with reference.Sparsifier(model) as sp:
        h = reference.capture_activations(model, sp, tokenizer(text)["input_ids"])
    w_down = [layer.mlp.down_proj.weight.detach().numpy() for layer in decoder_layers(model)]
    return {"activation": [method.activation_prior(x) for x in h],
            "impact": [method.impact_prior(x, w) for x, w in zip(h, w_down)]}


def test_griffin_masks_equal_method_select_on_captured_activations(smollm2):
    model, tokenizer = smollm2
    ids = reference.chat_tokens(tokenizer, PROMPTS[1])
    with reference.Sparsifier(model) as sp:
        h = reference.capture_activations(model, sp, ids)          # independent path: raw h of every layer
        ss, rows = reference.prefill_statistics(model, sp, ids)
    assert rows == [len(ids)] * (len(h) - 1) + [0]
    masks = reference.select_masks(Config("griffin", 0.5), ss, rows)
    k = method.neurons_to_keep(h[0].shape[1], 0.5)
    for layer, x in enumerate(h[:-1]):
        expected = method.select(method.local_statistic(x), None, 0.0, k)
        np.testing.assert_array_equal(masks[layer], expected)


def test_the_last_layer_never_collects_and_selects_from_the_prior_alone(smollm2, priors):
    """The runtime's rule (its last FFN runs only on the rows that need logits): no statistic for the last layer,
    so GRIFFIN keeps it dense and GLASS takes the prior's top k there, whatever the prompt."""
    model, tokenizer = smollm2
    ids = reference.chat_tokens(tokenizer, PROMPTS[0])
    with reference.Sparsifier(model) as sp:
        ss, rows = reference.prefill_statistics(model, sp, ids)
    assert rows[-1] == 0 and not ss[-1].any() and rows[:-1] == [len(ids)] * (len(rows) - 1)
    griffin = reference.select_masks(Config("griffin", 0.5), ss, rows)
    assert griffin[-1] is None                          # prompt-only and no usable statistic: dense
    glass = reference.select_masks(Config("glass", 0.5, 0.5, "activation"), ss, rows, priors)
    k = method.neurons_to_keep(len(ss[-1]), 0.5)
    np.testing.assert_array_equal(glass[-1], method.top_k(method.ranks(priors["activation"][-1]), k))


def test_static_masks_are_prompt_independent_and_glass_masks_are_not(smollm2, priors):
    model, tokenizer = smollm2
    stats = []
    with reference.Sparsifier(model) as sp:
        for p in PROMPTS:
            ss, rows = reference.prefill_statistics(model, sp, reference.chat_tokens(tokenizer, p))
            stats.append(([s.copy() for s in ss], list(rows)))
    for kind in ("activation", "impact"):
        a, b = (reference.select_masks(Config("static", 0.6, prior=kind), ss, rows, priors) for ss, rows in stats)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    a, b = (reference.select_masks(Config("glass", 0.6, 0.5, "activation"), ss, rows, priors) for ss, rows in stats)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b))


def test_masking_h_equals_the_compacted_down_projection(smollm2):
    import torch

    model, tokenizer = smollm2
    ids = reference.chat_tokens(tokenizer, PROMPTS[0])
    down = decoder_layers(model)[3].mlp.down_proj
    seen = {}
    handle = down.register_forward_hook(lambda m, args, out: seen.update(h=args[0].detach(), y=out.detach()))
    keep = np.sort(np.random.default_rng(0).choice(down.in_features, 512, replace=False))
    masks = [None] * len(decoder_layers(model))
    masks[3] = keep
    start = len(ids) - 4
    try:
        with reference.Sparsifier(model) as sp, torch.inference_mode():
            sp.sparse([masks], start=start)
            model(torch.tensor([ids]), logits_to_keep=1)
    finally:
        handle.remove()
    h, y = seen["h"][0], seen["y"][0]         # h already masked by the pre-hook
    assert torch.all(h[start:][:, np.setdiff1d(np.arange(down.in_features), keep)] == 0)
    compact = h[start:, keep] @ down.weight[:, keep].T     # the runtime's compacted matrices
    torch.testing.assert_close(y[start:], compact, rtol=1e-5, atol=1e-5)
    assert torch.count_nonzero(h[:start]) > 0.9 * h[:start].numel()   # the prompt stays dense


def test_random_keeps_k_distinct_neurons_per_layer(smollm2):
    model, _ = smollm2
    n_layer = len(decoder_layers(model))
    ss, rows = [np.ones(1536)] * n_layer, [10] * n_layer
    masks = reference.select_masks(Config("random", 0.75), ss, rows, seed=3)
    k = method.neurons_to_keep(1536, 0.75)
    assert all(len(np.unique(m)) == k for m in masks)
    assert not np.array_equal(masks[0], reference.select_masks(Config("random", 0.75), ss, rows, seed=4)[0])


def test_config_validation():
    with pytest.raises(ValueError, match="prior"):
        Config("glass", 0.5, 0.5)
    with pytest.raises(ValueError, match="lambda"):
        Config("glass", 0.5, 1.5, "activation")
    with pytest.raises(ValueError, match="unknown method"):
        Config("topk", 0.5)


def test_a_batch_of_prompts_gets_each_prompt_its_own_greedy_answer(smollm2):
    """generate_dense_batch left-pads prompts of different lengths into one generate call: every answer is the one
    generate_dense gives the prompt alone (what evaluate.dense_continuations relies on to batch)."""
    model, tokenizer = smollm2
    prompts = [reference.chat_tokens(tokenizer, p) for p in PROMPTS]
    assert len(prompts[0]) != len(prompts[1])
    together = reference.generate_dense_batch(model, prompts, 12, tokenizer.pad_token_id)
    assert together == [reference.generate_dense(model, p, 12) for p in prompts]


def test_two_level_keeps_each_tokens_largest_gate_activations_inside_the_prompts_selection(smollm2, priors):
    """Every answer position reads the token's share of the superset GLASS chose at the larger density: the neurons
    method.token_select picks from act(gate) of that position, and nothing outside the superset."""
    import torch

    model, tokenizer = smollm2
    config = Config("two-level", 0.5, 0.5, "activation", token_fraction=0.5)
    assert config.superset_density == pytest.approx(0.75) and config.name == "two-level-A lambda=0.5 f=0.5"
    ids = reference.chat_tokens(tokenizer, PROMPTS[1])
    answer = reference.generate_dense(model, ids, 12)
    layer, mlp = 5, decoder_layers(model)[5].mlp
    seen = {}
    hooks = [mlp.down_proj.register_forward_hook(lambda m, args, out: seen.update(h=args[0].detach())),
             mlp.gate_proj.register_forward_hook(lambda m, args, out: seen.update(gate=mlp.act_fn(out).detach()))]
    try:
        with reference.Sparsifier(model) as sp, torch.inference_mode():
            ss, rows = reference.prefill_statistics(model, sp, ids)
            masks = reference.select_masks(config, ss, rows, priors)
            sp.sparse([masks], start=len(ids), token_fractions=[config.token_fraction])
            model(torch.tensor([ids + answer]), logits_to_keep=1)
    finally:
        for h in hooks:
            h.remove()
    superset = masks[layer]
    assert len(superset) == method.neurons_to_keep(mlp.down_proj.in_features, 0.75)
    keep = method.neurons_per_token(len(superset), 0.5)
    h, gate = seen["h"][0].float().numpy(), seen["gate"][0].float().numpy()  # h as down_proj received it
    for t in range(len(ids), len(ids) + len(answer)):
        expected = superset[method.token_select(gate[t, superset], keep)]
        np.testing.assert_array_equal(np.flatnonzero(h[t]), expected)
    assert np.count_nonzero(h[len(ids) - 1]) > 0.9 * h.shape[1]           # the prompt stays dense


def test_two_level_settings_are_checked():
    with pytest.raises(ValueError, match="token fraction"):
        Config("two-level", 0.5, 0.5, "activation")                        # f = 1 is plain GLASS
    with pytest.raises(ValueError, match="denser than the model"):
        Config("two-level", 0.9, 0.5, "activation", token_fraction=0.3)    # superset density 1.69
    with pytest.raises(ValueError, match="two-level only"):
        Config("glass", 0.5, 0.5, "activation", token_fraction=0.5)
