"""The soak benchmark's plan and its fresh-context references (no model needed; the soak itself runs against
llama-server in tests/test_native.py)."""
import json

from glass_gguf.soak import conversation_so_far, request_plan

QUESTIONS = [{"turns": [f"q{i} first", f"q{i} second"]} for i in range(4)]


def ask(plan):
    return [[{"role": "user", "content": QUESTIONS[q]["turns"][turn]}] for q, turn in plan]


def test_every_third_question_gets_its_second_turn_right_after_the_first():
    assert request_plan(QUESTIONS, 8) == [(0, 0), (1, 0), (2, 0), (2, 1), (3, 0), (0, 0), (1, 0), (1, 1)]


def test_a_fresh_context_replays_the_first_turn_its_second_turn_found_in_the_cache():
    plan = request_plan(QUESTIONS, 8)
    asked = ask(plan)
    assert conversation_so_far(plan, asked, 3) == [asked[2], asked[3]]
    assert conversation_so_far(plan, asked, 2) == [asked[2]]


def test_a_second_turn_after_another_question_is_compared_with_itself_alone():
    plan = [(0, 0), (1, 0), (0, 1)]
    asked = ask(plan)
    assert conversation_so_far(plan, asked, 2) == [asked[2]]


def test_the_soak_table_renders_each_results_file(tmp_path):
    from glass_gguf.soak_table import update

    result = {"model": "/m/smollm2.glass.gguf", "server": "llama-server", "requests": 300, "two_turn_requests": 75,
              "max_tokens": 48, "rss_after_warmup_mb": 150.2, "rss_end_mb": 152.9, "rss_growth_after_warmup_pct": 1.8,
              "answers_differing_from_fresh": 0, "sparse_selections": 300, "seconds": 1500.0}
    (tmp_path / "smollm2-soak-llama-server.json").write_text(json.dumps(result))
    doc = tmp_path / "deploying.md"
    doc.write_text("before\n<!-- soak begin -->\nold\n<!-- soak end -->\nafter\n")
    update(doc, tmp_path)
    text = doc.read_text()
    assert "old" not in text and text.startswith("before") and text.endswith("after\n")
    assert "| smollm2.glass.gguf | llama-server | 300 (75) | 48 | 300 | 0 | 150 / 153 | +1.8% | 25 |" in text
