"""glass-gguf tune: the choice against a budget (fast, no model), and the command on SmolLM2 (slow)."""
import json

import pytest
from click.testing import CliRunner

from glass_gguf.frontier import Row
from glass_gguf.tune import NoCandidate, choose


def row(label, family, kl, speedup, density=1.0, token_fraction=1.0):
    base = "Q4_1 (model)" if family != "quant" or label == "Q4_1 (model)" else label
    method = {"quant": "dense", "two-level": "two-level"}.get(family, "glass")
    return Row(family=family, label=label, base=base, method=method, density=density, kl=kl, speedup=speedup,
               repeated=0.0, token_fraction=token_fraction)


ROWS = [
    row("Q4_1 (model)", "quant", 0.0, 1.0),
    row("Q3_K_M", "quant", 0.12, 1.25),
    row("GLASS @0.9", "glass", 0.03, 1.02, 0.9),
    row("GLASS @0.75", "glass", 0.09, 1.08, 0.75),
    row("GLASS @0.5", "glass", 0.50, 1.20, 0.5),
]


def test_max_kl_picks_the_fastest_glass_density_within_the_budget():
    c = choose(ROWS, max_kl=0.1)
    assert c.glass.density == 0.75 and not c.quant_better and c.quant is None
    assert c.advice == "GLASS at density 0.75: 1.08x, KL 0.0900 (KL <= 0.1)"


def test_the_advice_says_plainly_when_a_quantization_serves_the_budget_better():
    c = choose(ROWS, max_kl=0.2)
    assert c.glass.density == 0.75 and c.quant.label == "Q3_K_M" and c.quant_better
    assert "a dense quantization serves this budget better: Q3_K_M at 1.25x" in c.advice


def test_min_speedup_picks_the_closest_glass_density_that_is_fast_enough():
    c = choose(ROWS, min_speedup=1.05)
    assert c.glass.density == 0.75
    # Q3_K_M is fast enough too, but further from the model than GLASS @0.75
    assert c.quant.label == "Q3_K_M" and not c.quant_better


def test_a_budget_no_glass_density_meets_names_the_closest_and_the_rung_that_meets_it():
    with pytest.raises(NoCandidate, match=r"no GLASS density meets speed-up >= 1.22x on this device: the closest is "
                                          r"density 0.5 \(1.20x, KL 0.5000\); the dense quantization Q3_K_M meets "
                                          r"it \(1.25x, KL 0.1200\); nothing was written"):
        choose(ROWS, min_speedup=1.22)


def test_the_advice_names_the_switch_when_two_level_serves_the_budget_better():
    two_level = row("two-level @0.5 (f 0.5)", "two-level", 0.08, 1.15, 0.5, 0.5)
    c = choose(ROWS + [two_level], max_kl=0.1)
    # the file keeps the single-level choice: two-level is off by default, and the advice says how to switch it on
    assert c.glass.density == 0.75 and c.two_level is two_level and c.two_level_better
    assert c.advice.endswith("two-level decoding serves it better: two-level @0.5 (f 0.5) at 1.15x, KL 0.0800 (off "
                             "by default: run with GLASS_GGUF_TOKEN_FRACTION=0.5 and GLASS_GGUF_DENSITY=0.75, "
                             "docs/two-level.md)")
    slower = row("two-level @0.5 (f 0.5)", "two-level", 0.08, 1.05, 0.5, 0.5)
    c = choose(ROWS + [slower], max_kl=0.1)
    assert c.two_level is slower and not c.two_level_better and "two-level" not in c.advice


def test_exactly_one_budget():
    with pytest.raises(ValueError, match="exactly one budget"):
        choose(ROWS)
    with pytest.raises(ValueError, match="exactly one budget"):
        choose(ROWS, max_kl=0.1, min_speedup=1.1)


# -- the command (slow) ----------------------------------------------------------------------------------------------

TINY = ["--n-prompts", "2", "--gen-tokens", "24", "--densities", "0.5,0.9", "--ladder", "Q3_K_M",
        "--prior-tokens", "128", "--repeats", "1", "--warmup", "4"]


def test_tune_writes_a_glass_gguf_with_the_chosen_density(smollm2_path, tmp_path):
    from glass_gguf.cli import main
    from glass_gguf.prior_file import read_prior

    out = tmp_path / "tuned.glass.gguf"
    res = CliRunner().invoke(main, ["tune", str(smollm2_path), "--max-kl", "100", "-o", str(out), "--json",
                                    "--work-dir", str(tmp_path / "work"), *TINY])
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    chosen = record["choice"]["glass"]
    p = read_prior(out)
    assert p.density == pytest.approx(chosen["density"]) and p.warmup == 4 and p.lam == pytest.approx(0.5)
    assert record["output"] == str(out)
    # with a budget everything meets, the fastest GLASS density wins
    glass = [r for r in record["candidates"] if r["family"] == "glass"]
    assert chosen["speedup"] == max(r["speedup"] for r in glass)
    # two-level measured beside it where its selection fits (0.5 reads from a selection of 0.75; 0.9 cannot),
    # diverging from the model in its own way
    two_level = {r["label"]: r for r in record["candidates"] if r["family"] == "two-level"}
    assert list(two_level) == ["two-level @0.5 (f 0.5)"]
    glass_half = next(r for r in glass if r["density"] == 0.5)
    assert two_level["two-level @0.5 (f 0.5)"]["kl"] > 0
    assert two_level["two-level @0.5 (f 0.5)"]["kl"] != pytest.approx(glass_half["kl"], rel=1e-3)


def test_tune_refuses_a_budget_nothing_meets_and_writes_nothing(smollm2_path, tmp_path):
    from glass_gguf.cli import main

    out = tmp_path / "tuned.glass.gguf"
    res = CliRunner().invoke(main, ["tune", str(smollm2_path), "--min-speedup", "50", "-o", str(out),
                                    "--work-dir", str(tmp_path / "work"), *TINY])
    assert res.exit_code == 1
    assert "Error: no GLASS density meets speed-up >= 50x on this device: the closest is density" in res.output
    assert not out.exists() and not list(tmp_path.glob(".tuned*"))
