"""The soak benchmark's plan and its fresh-context references (no model needed; the soak itself runs against
llama-server in tests/test_native.py)."""
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
