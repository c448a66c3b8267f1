"""exact / regex graders, the grader registry and the weighted combination with a format reward."""

import pytest

from graft.rewards import Combined, format_reward, make_grader
from graft.rewards.exact import ExactGrader, RegexGrader, final_answer, normalise
from graft.tasks.base import Example, Score


def test_final_answer_and_normalise():
    assert final_answer("think...\n<answer> Paris </answer>") == " Paris "
    assert final_answer("so \\boxed{blue}") == "blue"
    assert final_answer("The answer is: New  York.\n") == "New  York."
    assert final_answer("line one\nline two\n\n") == "line two"
    assert final_answer("") is None
    assert normalise("  New \n York. ") == "new york"
    assert normalise("New York", case_sensitive=True) == "New York"


@pytest.mark.parametrize("completion,answer,reward", [
    ("The answer is Paris.", "paris", 1.0),
    ("<answer>PARIS</answer>", "Paris", 1.0),
    ("I think\nLyon", "Paris", 0.0),
    ("answer: new   york", "New York", 1.0),
])
def test_exact(completion, answer, reward):
    assert ExactGrader().grade(completion, Example("q", answer)).reward == reward


def test_exact_case_sensitive_and_no_answer():
    assert ExactGrader(case_sensitive=True).grade("paris", Example("q", "Paris")).reward == 0.0
    assert ExactGrader().grade("   \n", Example("q", "x")).error == "no_answer"


def test_regex():
    g = RegexGrader()
    assert g.grade("answer: 3.14", Example("q", r"3\.14\d*")).reward == 1.0
    assert g.grade("answer: 3.2", Example("q", r"3\.14\d*")).error == "wrong_answer"
    assert g.grade("<answer>Yes</answer>", Example("q", "yes|y")).reward == 1.0
    with pytest.raises(ValueError, match="not a valid pattern"):
        g.grade("x", Example("q", "(unclosed"))


def test_make_grader_by_name():
    assert make_grader("exact").name == "exact"
    assert make_grader("regex", case_sensitive=True).case_sensitive
    with pytest.raises(ValueError, match="unknown grader 'nope'"):
        make_grader("nope")
    with pytest.raises(ValueError, match="grader exact"):
        make_grader("exact", bogus=1)


def test_format_reward():
    assert format_reward("<think>a</think> <answer>4</answer>", "think_answer") == 1.0
    assert format_reward("x <think>a</think><answer>4</answer>", "think_answer") == 0.0
    assert format_reward("so \\boxed{4}", "boxed") == 1.0
    assert format_reward("```python\nprint(1)\n```", "code_fence") == 1.0


def test_combined_weights_and_parts():
    combo = Combined([(ExactGrader(), 1.0), (RegexGrader(), 0.5)], format="answer_tags", format_weight=0.2)
    got = combo.score("<answer>Paris</answer>", Example("q", "paris"))
    # exact: 1, regex "paris" fullmatches "paris": 1, format: 1  ->  1 + 0.5 + 0.2
    assert got == Score(reward=1.7, correct=True, parts={"correct": 1.0, "exact": 1.0, "regex": 1.0, "format": 1.0})
    wrong = combo.score("Lyon", Example("q", "paris"))
    assert wrong == Score(reward=0.0, correct=False, parts={"correct": 0.0, "exact": 0.0, "regex": 0.0, "format": 0.0})
    with pytest.raises(ValueError, match="unknown format"):
        Combined([(ExactGrader(), 1.0)], format="nope")
