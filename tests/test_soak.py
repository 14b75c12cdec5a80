"""The soak benchmark's plan and its fresh-context references (no model needed; the soak itself runs against
llama-server in tests/test_native.py)."""
import json

from glass_gguf.soak import conversation_so_far, prompt_cache_mb, request_plan

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
              "answers_differing_from_fresh": 0, "sparse_selections": 300, "seconds": 1500.0,
              "prompt_cache_after_warmup_mb": 20.0, "prompt_cache_end_mb": 22.5,
              "rss_growth_after_warmup_without_prompt_cache_pct": 0.2}
    (tmp_path / "smollm2-soak-llama-server.json").write_text(json.dumps(result))
    doc = tmp_path / "deploying.md"
    doc.write_text("before\n<!-- soak begin -->\nold\n<!-- soak end -->\nafter\n")
    update(doc, tmp_path)
    text = doc.read_text()
    assert "old" not in text and text.startswith("before") and text.endswith("after\n")
    assert ("| smollm2.glass.gguf | llama-server | 300 (75) | 48 | 300 | 0 | 150 / 153 | +1.8% | 20 / 22 | +0.2% | "
            "not recorded | 25 |") in text
    assert not (tmp_path / "soak.png").exists()   # a run without per-request RSS has nothing to draw


def test_growth_is_measured_from_the_last_request_that_went_further_into_the_context():
    from glass_gguf.soak import growth_after_high_water

    positions = [100, 300, 120, 500, 200, 480, 150]
    rss = [200.0, 250.0, 250.0, 300.0, 300.0, 301.0, 303.0]
    assert growth_after_high_water(positions, rss, warmup=2) == (4, 1.0)   # 300 -> 303 MB after request 4's 500
    assert growth_after_high_water(positions, rss, warmup=5) == (5, 1.0)   # none went further after the warm-up


def test_a_soak_with_per_request_rss_gets_its_plot(tmp_path):
    from glass_gguf.soak_table import update

    result = {"model": "/m/smollm2.glass.gguf", "server": "llama_cpp.server", "requests": 4, "two_turn_requests": 1,
              "max_tokens": 48, "warmup_requests": 2, "rss_after_warmup_mb": 250.0, "rss_end_mb": 303.0,
              "rss_growth_after_warmup_pct": 21.2, "answers_differing_from_fresh": 0, "sparse_selections": 4,
              "seconds": 60.0, "prompt_cache_after_warmup_mb": 0.0, "prompt_cache_end_mb": 0.0,
              "rss_growth_after_warmup_without_prompt_cache_pct": 21.2, "furthest_position_request": 3,
              "furthest_position": 500, "rss_growth_after_furthest_position_pct": 1.0,
              "positions_by_request": [100, 300, 500, 200], "rss_mb_by_request": [200.0, 250.0, 300.0, 303.0]}
    (tmp_path / "smollm2-soak-py.json").write_text(json.dumps(result))
    doc = tmp_path / "deploying.md"
    doc.write_text("<!-- soak begin -->\n<!-- soak end -->\n")
    update(doc, tmp_path)
    assert "| +21.2% | 0 / 0 | +21.2% | +1.0% (3) | 1 |" in doc.read_text()
    assert (tmp_path / "soak.png").read_bytes()[:4] == b"\x89PNG"


LLAMA_SERVER_LOG = """\
0.00.688.668 I srv        update:  - cache state: 0 prompts, 0.000 MiB (limits: 8192.000 MiB, 2048 tokens, 8589934592 est)
0.00.688.982 I slot   operator(): id  0 | task 0 | new prompt, n_ctx_slot = 2048, n_keep = 0, task.n_tokens = 53
0.02.067.409 I srv        update:  - cache state: 1 prompts, 2.199 MiB (limits: 8192.000 MiB, 2048 tokens, 372512 est)
0.02.067.644 I slot   operator(): id  0 | task 49 | new prompt, n_ctx_slot = 2048, n_keep = 0, task.n_tokens = 78
0.03.488.584 I srv        update:  - cache state: 2 prompts, 4.948 MiB (limits: 8192.000 MiB, 2048 tokens, 372526 est)
0.03.488.901 I slot   operator(): id  0 | task 98 | new prompt, n_ctx_slot = 2048, n_keep = 0, task.n_tokens = 87
"""


def test_the_prompt_cache_is_what_llama_server_reported_when_the_request_started():
    assert prompt_cache_mb(LLAMA_SERVER_LOG, 1) == 0.0
    assert prompt_cache_mb(LLAMA_SERVER_LOG, 2) == 2.199
    assert prompt_cache_mb(LLAMA_SERVER_LOG, 3) == 4.948
    assert prompt_cache_mb("llama_cpp.server has no prompt cache lines", 3) == 0.0
