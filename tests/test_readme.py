"""The README's first screen: its numbers are the measured results' (docs/results/*.json), rendered, never typed."""
import json

from conftest import REPO
from glass_gguf import readme


def test_the_readme_shows_the_rendering_of_the_results():
    block = readme.current_block((REPO / "README.md").read_text())
    assert block is not None, "README.md has lost its first-screen results markers"
    assert block == readme.block(), "README.md is stale: run python -m glass_gguf.readme"


def test_the_first_screen_comes_before_the_first_use(tmp_path):
    text = (REPO / "README.md").read_text()
    assert text.index(readme.BEGIN) < text.index("## Set up and try it") < text.index("## Using a GLASS GGUF")
    for line in ("    make demo", "    make test", ". .venv/bin/activate", ".venv/bin/glass-gguf"):
        assert line in text[:text.index("## Using a GLASS GGUF")], line


def test_a_row_per_measured_density_and_slower_than_dense_is_not_bold(tmp_path):
    speed = {"model": "m.gguf", "gen_tokens": 256, "swept": {"prior": "activation", "lambda": 0.5, "warmup": 24,
                                                               "refresh": 0, "layer_split": 0.0},
             "results": [{"density": d, "threads": 2, "glass": {"speedup": s}, "swept": {"speedup": s - 0.01}}
                         for d, s in ((0.9, 0.97), (0.5, 1.2))]}
    records = [{"method": m, "prior": p, "lambda": lam, "density": d, "warmup": w, "layer_split": 0.0, "kl": kl}
               for d in (0.5, 0.9) for m, p, lam, w, kl in (("griffin", None, 0.0, 0, 1.0 * d),
                                                            ("glass", "activation", 0.5, 0, 0.5 * d),
                                                            ("glass", "activation", 0.5, 24, 0.25 * d))]
    (tmp_path / "smollm2-135m-speed.json").write_text(json.dumps(speed))
    (tmp_path / "smollm2-135m-eval.json").write_text(json.dumps({"n_prompts": 24, "results": records}))
    rows = readme.model_rows("smollm2-135m", tmp_path)
    assert rows == ["| m (activation prior, lambda 0.5, W=24) | 0.5 | **1.20x** / **1.19x** | 0.500 / 0.250 / 0.125 |",
                    "|  | 0.9 | 0.97x / 0.96x | 0.900 / 0.450 / 0.225 |"]
    assert "expect about 0.97x there" in readme.render(tmp_path)
    assert readme.model_rows("gemma-3-270m", tmp_path) == []           # not measured: no rows
