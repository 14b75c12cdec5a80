"""The speed-quality frontier: Pareto frontier, iso-quality headline and tables from rows (fast, no model), then the
whole measurement through the real build on SmolLM2 with tiny budgets (slow)."""
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from glass_gguf.frontier import (
    GROUPS, Row, fastest, headline, kl_and_nll, pareto, render_markdown, render_table, verdict,
)

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "frontier.md"
RESULT = REPO / "docs" / "results" / "smollm2-135m-frontier.json"


def row(label, family, kl, speedup, repeated=0.05, density=1.0, token_fraction=1.0):
    method = {"quant": "dense", "griffin": "griffin", "two-level": "two-level"}.get(family, "glass")
    return Row(family=family, label=label, base=label, method=method, density=density, kl=kl, speedup=speedup,
               repeated=repeated, token_fraction=token_fraction)


ROWS = [
    row("Q4_1 (model)", "quant", 0.0, 1.0, 0.04),
    row("Q3_K_M", "quant", 0.08, 1.20, 0.05),
    row("Q2_K", "quant", 0.40, 1.45, 0.20),
    row("GRIFFIN @0.5", "griffin", 0.90, 1.15, 0.30, 0.5),
    row("GLASS @0.9", "glass", 0.04, 1.03, 0.04, 0.9),
    row("GLASS @0.5", "glass", 0.60, 1.18, 0.08, 0.5),
    row("GLASS @0.75 on Q3_K_M", "glass+Q3_K_M", 0.15, 1.30, 0.06, 0.75),
]


def test_pareto_keeps_exactly_the_rows_nothing_beats():
    front = [r.label for r in pareto(ROWS)]
    # GRIFFIN @0.5 is slower and worse than Q3_K_M; GLASS @0.5 is slower than GLASS on Q3_K_M at a higher KL
    assert front == ["Q4_1 (model)", "GLASS @0.9", "Q3_K_M", "GLASS @0.75 on Q3_K_M", "Q2_K"]


def test_a_tie_in_both_coordinates_keeps_both_rows():
    a, b = row("a", "quant", 0.1, 1.2), row("b", "glass", 0.1, 1.2)
    assert {r.label for r in pareto([a, b])} == {"a", "b"}


def test_headline_names_the_fastest_candidate_of_each_group_within_each_budget():
    head = {h["budget"]: h for h in headline(ROWS, dense_repeated=0.04)}
    assert list(head) == ["KL <= 0.05", "KL <= 0.1", "KL <= 0.2", "repeats <= dense + 5 points"]
    kl01 = head["KL <= 0.1"]["best"]
    assert kl01["quantization"]["label"] == "Q3_K_M" and kl01["quantization"]["speedup"] == 1.20
    assert kl01["GRIFFIN"] is None
    assert kl01["GLASS"]["label"] == "GLASS @0.9"
    assert kl01["GLASS + quantization"] is None
    assert head["KL <= 0.2"]["overall"]["label"] == "GLASS @0.75 on Q3_K_M"
    # repeats at most 4% + 5 points = 9%: Q2_K (20%) and GRIFFIN (30%) are out
    rep = head["repeats <= dense + 5 points"]
    assert rep["value"] == pytest.approx(0.09)
    assert rep["best"]["quantization"]["label"] == "Q3_K_M"
    assert rep["best"]["GLASS"]["label"] == "GLASS @0.5"
    assert rep["overall"]["label"] == "GLASS @0.75 on Q3_K_M"


def test_the_verdict_says_when_glass_loses_to_a_quantization():
    lines = verdict(headline(ROWS, dense_repeated=0.04))
    assert lines[1] == "KL <= 0.1: GLASS loses to Q3_K_M at 1.20x (best GLASS GLASS @0.9 at 1.03x)."
    assert lines[2].startswith("KL <= 0.2: GLASS wins: GLASS @0.75 on Q3_K_M at 1.30x")


def test_two_level_is_its_own_group_and_counts_as_glass_in_the_verdict():
    two_level = row("two-level @0.5 (f 0.5)", "two-level", 0.09, 1.25, 0.05, 0.5, 0.5)
    head = {h["budget"]: h for h in headline(ROWS + [two_level], dense_repeated=0.04)}
    assert head["KL <= 0.05"]["best"]["two-level"] is None
    assert head["KL <= 0.1"]["best"]["two-level"]["label"] == "two-level @0.5 (f 0.5)"
    assert verdict([head["KL <= 0.1"]])[0] == ("KL <= 0.1: GLASS wins: two-level @0.5 (f 0.5) at 1.25x "
                                                "(best quantization Q3_K_M at 1.20x).")


def test_two_level_is_measured_where_its_selection_fits_in_the_model():
    from glass_gguf.frontier import FrontierConfig, candidates_for

    cfg = FrontierConfig(model=Path("m.gguf"), out_dir=Path("."), densities=(0.5, 0.75), token_fractions=(0.5, 0.75),
                         glass_on_rungs=False)
    files = {"model": {"label": "Q4_1 (model)", "bpw": 4.5}, "Q3_K_M": {"label": "Q3_K_M", "bpw": 3.9}}
    two_level = [c for c in candidates_for(cfg, files)["model"] if c.method == "two-level"]
    # a token reads density = selection x (1 + 2f) / 3 of the rows: 0.75 at f 0.5 would need a selection of 1.125
    assert [(c.label, round(c.selection_density, 4)) for c in two_level] == [
        ("two-level @0.5 (f 0.5)", 0.75), ("two-level @0.5 (f 0.75)", 0.6), ("two-level @0.75 (f 0.75)", 0.9)]
    assert all(c.with_prior for c in two_level)
    assert not any(c.method == "two-level" for c in candidates_for(cfg, files)["Q3_K_M"])


def test_a_budget_no_candidate_meets_is_reported_as_such():
    only_bad = [row("Q2_K", "quant", 0.4, 1.4), row("GLASS @0.5", "glass", 0.6, 1.2, density=0.5)]
    h = headline(only_bad, dense_repeated=0.0, budgets=(0.05,))[0]
    assert h["overall"] is None and all(v is None for v in h["best"].values())
    assert verdict([h])[0] == "KL <= 0.05: no candidate meets it."
    assert fastest(only_bad, lambda r: r.kl < 0.1) is None


def test_kl_is_the_exact_full_vocabulary_kl_in_float64():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(70, 50)).astype(np.float32), rng.normal(size=(70, 50)).astype(np.float32)
    targets = rng.integers(0, 50, size=70)
    p = np.exp(a.astype(np.float64)) / np.exp(a.astype(np.float64)).sum(-1, keepdims=True)
    q = np.exp(b.astype(np.float64)) / np.exp(b.astype(np.float64)).sum(-1, keepdims=True)
    kl, nll = kl_and_nll(a, b, targets, chunk=32)          # chunked: 32 + 32 + 6 rows
    assert kl == pytest.approx(float((p * np.log(p / q)).sum()), rel=1e-12)
    assert nll == pytest.approx(float(-np.log(q[np.arange(70), targets]).sum()), rel=1e-12)
    assert kl_and_nll(a, a, targets)[0] == pytest.approx(0.0, abs=1e-9)


def test_rows_survive_json_with_missing_values():
    r = Row.from_json(json.loads(json.dumps(ROWS[0].to_json())))
    assert r.label == "Q4_1 (model)" and math.isnan(r.tok_s) and r.rss_mb is None


def test_the_table_marks_the_pareto_rows_in_bold():
    result = {"candidates": [r.to_json() for r in ROWS]}
    table = render_table(result)
    assert "| **Q3_K_M** |" in table and "| GRIFFIN @0.5 |" in table
    assert len(table.splitlines()) == 2 + len(ROWS)


# -- the committed result and its page ------------------------------------------------------------------------------


def test_the_doc_block_is_replaced_by_the_rendering(tmp_path):
    from glass_gguf.frontier import update_doc

    result = {"model": "m.gguf", "model_type": "Q4_1", "reference": "the model itself (dense)",
              "source": {"kind": "the model itself"}, "imatrix": None,
              "setting": {"from": "options", "prior_kind": "activation", "prior_source": "s", "prior_tokens": 1,
                          "lambda": 0.5, "warmup": 24, "refresh": 0, "layer_scale": None},
              "protocol": {"n_prompts": 2, "prompts": "given", "gen_tokens": 16, "threads": 2, "rounds": 2,
                           "densities": [0.5], "rung_densities": [0.5]},
              "dense": {"tok_s": 90.0, "ttft_ms": 250.0, "repeated": 0.04},
              "candidates": [r.to_json() for r in ROWS]}
    result["headline"] = headline(ROWS, 0.04)
    result["verdict"] = verdict(result["headline"])
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- frontier:x begin -->\nold\n<!-- frontier:x end -->\nrest\n")
    update_doc(doc, "x", result)
    assert doc_block(doc.read_text(), "x") == render_markdown(result)
    assert doc.read_text().startswith("intro\n") and doc.read_text().endswith("end -->\nrest\n")


def doc_block(text: str, key: str) -> str:
    m = re.search(rf"<!-- frontier:{key} begin -->\n(.*?)<!-- frontier:{key} end -->", text, re.S)
    assert m, f"docs/frontier.md has no rendered block for {key}"
    return m.group(1)


COMMITTED = sorted((REPO / "docs" / "results").glob("*-frontier.json"))


def test_smollm2_has_a_committed_frontier():
    assert RESULT in COMMITTED


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_docs_frontier_md_shows_the_table_rendered_from_the_committed_json(path):
    result = json.loads(path.read_text())
    assert doc_block(DOC.read_text(), path.name.removesuffix("-frontier.json")) == render_markdown(result)


TWO_LEVEL = sorted((REPO / "docs" / "results").glob("*-frontier-two-level.json"))


@pytest.mark.parametrize("path", TWO_LEVEL, ids=lambda p: p.name)
def test_the_two_level_frontiers_are_rendered_and_complete(path):
    result = json.loads(path.read_text())
    key = path.name.removesuffix("-frontier-two-level.json") + "-two-level"
    assert doc_block(DOC.read_text(), key) == render_markdown(result)
    rows = [r for r in result["candidates"] if r["family"] == "two-level"]
    assert rows and all(0 < r["token_fraction"] < 1 for r in rows)
    assert {r["density"] for r in rows} <= {r["density"] for r in result["candidates"] if r["family"] == "glass"}
    assert path.with_suffix(".png").exists()


def test_both_small_models_have_a_two_level_frontier():
    assert {p.name for p in TWO_LEVEL} == {"smollm2-135m-frontier-two-level.json",
                                           "qwen2.5-coder-0.5b-frontier-two-level.json"}


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_the_committed_result_is_complete(path):
    result = json.loads(path.read_text())
    families = {r["family"] for r in result["candidates"]}
    assert {"quant", "griffin", "glass"} <= families and any(f.startswith("glass+") for f in families)
    assert [h["budget"] for h in result["headline"]][-1].startswith("repeats")
    # a frontier measured before two-level existed has no two-level group
    groups = set(GROUPS) if result["protocol"].get("token_fractions") else set(GROUPS) - {"two-level"}
    assert set(result["headline"][0]["best"]) == groups
    assert ("two-level" in families) == bool(result["protocol"].get("token_fractions"))
    assert path.with_suffix(".png").exists()


# -- the real measurement (slow) --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(smollm2_path, tmp_path_factory):
    """The whole frontier on SmolLM2 with tiny budgets: 2 prompts x 24 tokens, two rungs, one density."""
    from glass_gguf.frontier import FrontierConfig, run_frontier

    work = tmp_path_factory.mktemp("frontier")
    cfg = FrontierConfig(model=smollm2_path, out_dir=work, ladder=("Q8_0", "IQ3_S"), densities=(0.5,),
                         rung_densities=(0.5,), n_prompts=2, gen_tokens=24, prior_tokens=128, threads=2,
                         warmup=4, rss=False, progress=False)
    return cfg, run_frontier(cfg)


def test_frontier_measures_every_family_on_the_real_model(tiny_run):
    cfg, result = tiny_run
    rows = {r["label"]: r for r in result["candidates"]}
    assert set(rows) == {"Q4_1 (model)", "Q8_0", "IQ3_S", "GRIFFIN @0.5", "GLASS @0.5", "GLASS @0.5 on IQ3_S",
                         "two-level @0.5 (f 0.5)"}
    # the model against itself: no divergence, speed-up 1 by construction
    assert rows["Q4_1 (model)"]["kl"] == pytest.approx(0.0, abs=1e-9)
    assert rows["Q4_1 (model)"]["speedup"] == 1.0
    # a requantized rung diverges from the model, the 3-bit one more than the 8-bit one
    assert 0 < rows["Q8_0"]["kl"] < rows["IQ3_S"]["kl"]
    assert rows["IQ3_S"]["file_mb"] < rows["Q4_1 (model)"]["file_mb"] < rows["Q8_0"]["file_mb"]
    # GLASS with a 4-token warm-up is sparse from token 4 on: it diverges; Q8_0 (larger than the model) gets no GLASS
    assert rows["GLASS @0.5"]["kl"] > 0
    # two-level reads half the rows from a selection of 0.75, token by token: another divergence than GLASS's
    two_level = rows["two-level @0.5 (f 0.5)"]
    assert two_level["kl"] > 0 and two_level["kl"] != pytest.approx(rows["GLASS @0.5"]["kl"], rel=1e-3)
    assert two_level["token_fraction"] == 0.5 and two_level["density"] == 0.5
    assert not any(r["family"] == "glass+Q8_0" for r in result["candidates"])
    assert result["source"]["kind"].startswith("the model itself (Q4_1), requantized")
    assert all(r["speedup"] > 0 and r["tok_s"] > 0 for r in rows.values())


def test_a_second_run_reuses_the_cached_rows(tiny_run):
    from glass_gguf.frontier import run_frontier

    cfg, result = tiny_run
    started = time.monotonic()
    again = run_frontier(cfg)
    assert time.monotonic() - started < 30
    assert again["candidates"] == result["candidates"]
    # the result still says how long measuring took, not how long re-reading the cache did
    assert again["elapsed_s"] == result["elapsed_s"] > 0


def test_the_frontier_command_writes_json_plot_and_markdown(tiny_run, tmp_path):
    from glass_gguf.cli import main

    cfg, result = tiny_run
    out, png, md = tmp_path / "f.json", tmp_path / "f.png", tmp_path / "f.md"
    args = ["frontier", str(cfg.model), "-o", str(out), "--plot", str(png), "--markdown", str(md),
            "--ladder", "Q8_0,IQ3_S", "--densities", "0.5", "--rung-densities", "0.5", "--n-prompts", "2",
            "--gen-tokens", "24", "--prior-tokens", "128", "--warmup", "4", "--no-rss", "--work-dir", str(cfg.out_dir)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    written = json.loads(out.read_text())
    assert written["candidates"] == result["candidates"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert md.read_text() == render_markdown(written)
