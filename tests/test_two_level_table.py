"""docs/two-level.md's tables are rendered from the eval JSON in docs/results, never typed by hand."""
import json

import pytest

from glass_gguf import two_level_table
from glass_gguf.doc_blocks import replace_block
from glass_gguf.evaluate import Record


def record(method, density, kl, lam=None, prior=None, f=1.0):
    return Record(method=method, prior=prior, lam=lam, density=density, ppl=10 + kl, kl=kl, n_prompts=2,
                  n_tokens=100, split="all", median_prompt_tokens=20, token_fraction=f).to_json()


def test_each_setting_is_set_against_the_oracle_and_glass_at_the_same_density():
    data = {"model": "m.gguf", "n_prompts": 2, "gen_tokens": 64, "backend": "torch", "mean_generated": 60.0,
            "results": [record("dense", 1.0, 0.0), record("oracle", 0.5, 0.2), record("glass", 0.5, 0.8, 0.5, "activation"),
                        record("two-level", 0.5, 0.1, 0.5, "activation", f=0.5)]}
    lines = two_level_table.render(data).splitlines()
    two_level = next(line for line in lines if "two-level-A" in line)
    # selection density 3 * 0.5 / (1 + 2 * 0.5) = 0.75; KL 0.1 is half the oracle's and an eighth of GLASS's
    assert two_level == "| 0.5 | two-level-A lambda=0.5 f=0.5 | 0.750 | 0.5 | 0.1000 | 10.100 | 0.50 | 0.12 |"
    assert [line.split(" | ")[1] for line in lines[4:]] == ["glass-A lambda=0.5", "two-level-A lambda=0.5 f=0.5",
                                                            "oracle"]


@pytest.mark.parametrize("path", two_level_table.quality_files(), ids=lambda p: p.name)
def test_the_committed_doc_matches_its_results(path):
    name = path.name.removesuffix("-two-level.json")
    text = two_level_table.DOC.read_text()
    expected = replace_block(text, "two-level:" + name, two_level_table.render(json.loads(path.read_text())))
    assert text == expected, "docs/two-level.md differs from its results: run python -m glass_gguf.two_level_table"


def test_the_kernel_table_sets_two_level_against_glass_at_the_same_bytes():
    data = {"model_shape": "shape", "threads": 1, "repeats": 3,
            "glass": {"density": 0.5, "k": 2560, "ms_per_token": 10.0, "mb_per_token": 106.7},
            "two_level": {"density": 0.5, "selection_density": 0.75, "token_fraction": 0.5, "k": 3840,
                          "kept_per_token": 1824, "ms_per_token": 17.0, "mb_per_token": 105.8, "gate_ms": 6.0,
                          "select_ms": 1.0, "up_ms": 4.0, "down_ms": 6.0}}
    text = two_level_table.render_kernel(data)
    assert "| 17.00 | 105.8 | 6.00 | 1.00 | 4.00 | 6.00 |" in text
    assert text.endswith("Two-level takes 1.70x GLASS's time for the same bytes.")


def test_the_committed_kernel_block_matches_its_results():
    path = two_level_table.RESULTS / "two-level-kernel.json"
    text = two_level_table.DOC.read_text()
    if path.exists():
        kernel = two_level_table.render_kernel(json.loads(path.read_text()))
        expected = replace_block(text, "two-level:kernel", kernel)
        assert text == expected, "docs/two-level.md differs from its results: run python -m glass_gguf.two_level_table"
    else:
        assert "<!-- two-level:kernel begin -->\n<!-- two-level:kernel end -->" in text
