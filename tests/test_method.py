"""method.py, the specification of the selection, against hand-worked examples and an independent brute-force oracle.

No model and no build: small numpy arrays. Lambdas and densities are float32-exact (0.25, 0.5, 0.75 ...) unless a
test is about float32 rounding, so the tests hold whether method.py computes with the float or the double.
"""
from fractions import Fraction

import numpy as np
import pytest

from glass_gguf import method


def test_ranks_put_the_largest_score_first_and_break_ties_by_index():
    #                     neuron:  0    1    2    3    4
    ranks = method.ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0]))
    np.testing.assert_array_equal(ranks, [0, 4, 1, 3, 2])


def test_aggregate_weights_the_global_rank_by_lambda():
    r_glob, r_loc = np.array([0, 1, 2, 3]), np.array([3, 2, 1, 0])
    np.testing.assert_array_equal(method.aggregate(r_glob, r_loc, 0.25), [2.25, 1.75, 1.25, 0.75])
    np.testing.assert_array_equal(method.aggregate(r_glob, r_loc, 0.0), r_loc)     # GRIFFIN
    np.testing.assert_array_equal(method.aggregate(r_glob, r_loc, 1.0), r_glob)    # static


def test_top_k_keeps_the_smallest_aggregated_ranks_and_the_smaller_index_on_ties():
    a = np.array([2.0, 0.5, 1.0, 0.5, 1.0])
    np.testing.assert_array_equal(method.top_k(a, 3), [1, 2, 3])     # 1.0 at neurons 2 and 4: neuron 2 wins


@pytest.mark.parametrize("n_ff, density, k", [
    (96, 0.5, 64),      # 48 lies halfway between 32 and 64: rounds up
    (96, 0.25, 32),     # 24 -> 32
    (96, 0.75, 64),     # 72 -> 64
    (96, 0.9375, 96),   # 90 -> 96 (at most n_ff)
    (96, 0.0625, 32),   # 6 -> 0, but at least 32
    (96, 1.0, 96),
    (1000, 0.5, 512),   # 500 -> 512
    (1000, 0.75, 736),  # 750 -> 736
    (1000, 0.625, 640),  # 625 -> 640
    (1000, 0.048, 64),  # 48 (to float precision) lies halfway: up
    (1000, 1.0, 1000),
])
def test_neurons_to_keep_rounds_half_up_to_a_multiple_of_32(n_ff, density, k):
    assert method.neurons_to_keep(n_ff, density) == k


# --- select_layers against a brute-force oracle --------------------------------------------------------------------


def oracle_rank(scores):
    """r(j) = how many neurons come before j: a larger score, or the same score and a smaller index."""
    n = len(scores)
    return [sum(1 for i in range(n) if scores[i] > scores[j] or (scores[i] == scores[j] and i < j)) for j in range(n)]


def oracle_k(n_ff, density):
    """density * n_ff to the nearest multiple of 32, halves up, within [32, n_ff] (exact rational arithmetic)."""
    exact = Fraction(density) * n_ff
    k = 32 * int(exact / 32 + Fraction(1, 2))
    return n_ff if density == 1 else min(n_ff, max(32, k))


def oracle_select(ss, rows, prior, full_rows, lam, density):
    n = len(ss)
    local = rows == full_rows and rows > 0
    if not local and prior is None:
        return None
    r_loc = oracle_rank([float(np.sqrt(x)) for x in ss]) if local else None
    r_glob = oracle_rank([float(x) for x in prior]) if prior is not None else None
    if r_glob is None:
        a = r_loc
    elif r_loc is None:
        a = r_glob
    else:
        a = [Fraction(lam) * g + (1 - Fraction(lam)) * loc for g, loc in zip(r_glob, r_loc)]
    order = sorted(range(n), key=lambda j: (a[j], j))
    return sorted(order[: oracle_k(n, density)])


@pytest.mark.parametrize("lam", [0.0, 0.25, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("density", [0.25, 0.5, 0.75])
def test_select_layers_equals_the_brute_force_oracle(lam, density):
    rng = np.random.default_rng(int(lam * 100 + density * 1000))
    n_ff = 96
    # small integer scores: many ties, in the prompt's statistic and in the prior
    sum_squares = [rng.integers(0, 6, n_ff).astype(np.float64) for _ in range(5)]
    priors = [rng.integers(1, 5, n_ff).astype(np.float32) for _ in range(5)]
    priors[1] = priors[3] = None
    rows = [12, 12, 12, 4, 0]    # layer 3 saw fewer rows than the fullest (the last layer's case); 4 saw none
    got = method.select_layers(sum_squares, rows, priors, lam, density)
    for layer in range(5):
        expected = oracle_select(sum_squares[layer], rows[layer], priors[layer], 12, lam, density)
        if expected is None:
            assert got[layer] is None, layer
        else:
            np.testing.assert_array_equal(got[layer], expected, err_msg=f"layer {layer}")
    assert got[3] is None              # fewer rows and no prior: dense
    np.testing.assert_array_equal(got[2], oracle_select(sum_squares[2], 12, priors[2], 12, lam, density))


def test_a_layer_with_fewer_rows_selects_from_its_prior_alone():
    prior = np.arange(64, dtype=np.float32)           # neuron 63 is the most important
    got = method.select_layers([np.ones(64), np.ones(64)], [8, 1], [None, prior], 0.5, 0.5)
    np.testing.assert_array_equal(got[1], np.arange(32, 64))


def test_select_refuses_bad_settings():
    with pytest.raises(ValueError):
        method.select(np.ones(64), None, 1.5, 32)
    with pytest.raises(ValueError):
        method.neurons_to_keep(64, 0.0)


def test_lambda_is_float32():
    """The runtime gets lambda as a C float: method.py must select with float32(lambda) too.

    0.3 as a double lies below 3/10 and float32(0.3) above it, so two neurons whose rank differences are 7 (global)
    and -3 (local) tie at exactly 3/10 and are ordered one way by each (0.1 cannot show it: both of its roundings lie
    above 1/10). Seed 1 puts such a pair on the top-k boundary."""
    rng = np.random.default_rng(1)
    ss = [rng.permutation(64).astype(np.float64) + 1]
    prior = [(rng.permutation(64) + 1).astype(np.float32)]
    lam32 = float(np.float32(0.3))
    assert oracle_select(ss[0], 5, prior[0], 5, 0.3, 0.5) != oracle_select(ss[0], 5, prior[0], 5, lam32, 0.5)
    np.testing.assert_array_equal(method.select_layers(ss, [5], prior, 0.3, 0.5)[0],
                                  oracle_select(ss[0], 5, prior[0], 5, lam32, 0.5))


def test_the_schedule_collects_the_warm_up_then_every_refresh_th_position():
    collected = method.collected_positions(12, warmup=3, refresh=4)
    assert np.flatnonzero(collected).tolist() == [0, 1, 2, 6, 10]
    assert not method.collected_positions(5, 0, 0).any()
    assert method.schedule_segments(8, 3, 4) == [(0, 3, True), (3, 6, False), (6, 7, True), (7, 8, False)]
    assert method.schedule_segments(4, 0, 0) == [(0, 4, False)]


def test_a_refresh_keeps_the_old_set_unless_enough_neurons_change():
    old = np.arange(0, 64)
    two_new = np.concatenate([np.arange(2, 64), [100, 101]])
    assert method.refreshed(old, two_new, 64, 0.05) is old          # 2 of 64 changed: 3.1% <= 5%
    assert method.refreshed(old, two_new, 64, 0.03) is two_new      # 3.1% > 3%
    assert method.refreshed(None, two_new, 64, 0.05) is two_new     # a layer that ran dense takes the new set


# -- per-layer density ------------------------------------------------------------------------------------------------

def _priors(rng, n_layer=6, n_ff=256):
    """Priors from flat (layer 0) to concentrated (last layer): a few neurons carry more of the mass each layer."""
    return [rng.random(n_ff) ** (1 + 3 * i) for i in range(n_layer)]


def test_layer_density_is_the_float32_product_capped_at_one():
    assert method.layer_density(0.5, None) == 0.5
    assert method.layer_density(0.5, 1.25) == 0.625
    assert method.layer_density(0.6, 1.1) == float(np.float32(0.6) * np.float32(1.1))   # not 0.66 (float64)
    assert method.layer_density(0.75, 2.0) == 1.0


def test_the_split_gives_flat_layers_more_neurons_and_keeps_the_total():
    priors = _priors(np.random.default_rng(0))
    for strength in (0.5, 1.0, 2.0):
        scale = method.layer_scale(priors, 0.5, strength)
        assert scale == sorted(scale, reverse=True), "the flattest layer (0) gets the largest factor"
        kept = sum(method.neurons_to_keep(256, method.layer_density(0.5, s)) for s in scale)
        assert abs(kept - 6 * 128) <= 6 * 32 // 2, "rounding each layer to 32 neurons is the only difference"
    assert method.layer_scale(priors, 0.5, 0.0) == [1.0] * 6
    reverse = method.layer_scale(priors, 0.5, -1.0)
    assert reverse == sorted(reverse), "a negative strength favours the concentrated layers instead"


def test_the_split_caps_a_layer_at_density_one_and_gives_the_rest_to_the_others():
    priors = _priors(np.random.default_rng(1))
    scale = method.layer_scale(priors, 0.9, 4.0)
    densities = [method.layer_density(0.9, s) for s in scale]
    assert densities[0] == 1.0
    assert np.mean(densities) == pytest.approx(0.9, abs=1e-3)


def test_select_layers_keeps_each_layers_own_k():
    rng = np.random.default_rng(2)
    priors = _priors(rng, n_layer=3)
    sums = [rng.random(256) for _ in range(3)]
    chosen = method.select_layers(sums, [10, 10, 10], priors, 0.5, 0.5, scale=[1.5, 1.0, 0.5])
    assert [len(c) for c in chosen] == [192, 128, 64]
    assert np.array_equal(chosen[1], method.select_layers(sums, [10] * 3, priors, 0.5, 0.5)[1])


# -- two-level decoding -----------------------------------------------------------------------------------------------

def test_a_two_level_density_is_the_share_of_rows_a_token_reads():
    # the superset's gate rows, plus the token's share of its up and down rows: D * (1 + 2 f) / 3
    assert method.superset_density(0.5, 0.5) == pytest.approx(0.75)
    assert method.superset_density(0.5, 1.0) == pytest.approx(0.5)       # f = 1 is GLASS itself
    assert method.superset_density(0.6, 0.25) == pytest.approx(1.2)      # more than the model: Config refuses it
    with pytest.raises(ValueError, match="token fraction"):
        method.superset_density(0.5, 0.0)


def test_a_token_keeps_its_share_rounded_half_up_and_at_least_one():
    assert method.neurons_per_token(1152, 0.5) == 576
    assert method.neurons_per_token(3, 0.5) == 2                          # 1.5 rounds up
    assert method.neurons_per_token(10, 0.01) == 1


def test_a_token_keeps_its_largest_gate_activations_by_magnitude_ties_to_the_smaller_position():
    gate = np.array([0.1, -3.0, 2.0, -2.0, 0.5])
    np.testing.assert_array_equal(method.token_select(gate, 2), [1, 2])  # |-3| first; 2.0 ties -2.0, position 2 wins
    np.testing.assert_array_equal(method.token_select(gate, 3), [1, 2, 3])
