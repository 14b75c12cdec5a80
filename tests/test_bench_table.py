"""docs/runtime.md's speed and memory-limit tables are renderings of the committed results (never typed by hand)."""
import shutil

from glass_gguf import bench_table


def test_runtime_doc_tables_are_rendered_from_the_results(tmp_path):
    doc = tmp_path / "runtime.md"
    shutil.copy(bench_table.DOC, doc)
    changed = bench_table.update(doc)
    assert not changed, "docs/runtime.md differs from its results: run python -m glass_gguf.bench_table"
    text = doc.read_text()
    assert text.count("| Qwen2.5-Coder-0.5B |") >= 3  # the bench matrix of issue 23 is there
