"""The aggregation behind `graft eval` on hand-made verdicts (no model)."""

import pytest

from graft.eval.evaluate import Graded, answer_of, breakdown, summarize
from graft.tasks.arithmetic import ArithmeticTask
from graft.tasks.base import Example


def test_summarize_hand_made():
    # two examples; greedy: right, wrong; three samples each
    greedy = [Graded(0, True, 1.0, "5", 10), Graded(1, False, 0.0, "3", 20)]
    sampled = [
        Graded(0, True, 1.0, "5", 4), Graded(0, False, 0.0, "6", 6), Graded(0, True, 1.0, "5", 8),
        Graded(1, False, 0.0, "2", 2), Graded(1, False, 0.0, None, 2), Graded(1, True, 1.0, "4", 2),
    ]
    out = summarize(greedy, sampled, num_examples=2, samples=3, ks=[1, 2, 3])
    assert out["n"] == 2
    assert out["accuracy"] == 0.5
    assert out["sampled_accuracy"] == pytest.approx(3 / 6, abs=1e-15)
    assert out["completion_len"] == 15.0 and out["sampled_completion_len"] == 4.0
    # pass@1 = mean(c/n) = (2/3 + 1/3)/2; pass@2 = (1 + (1 - C(2,2)/C(3,2)))/2 = (1 + 2/3)/2
    assert out["pass@1"] == pytest.approx(0.5, abs=1e-15)
    assert out["pass@2"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-15)
    assert out["pass@3"] == 1.0
    # maj@3: example 0 votes 5,6,5 -> right; example 1 votes 2,4 (one abstains) -> tie, half right
    assert out["maj@3"] == pytest.approx((1 + 0.5) / 2, abs=1e-15)


def test_answer_of_uses_the_task_or_the_last_line():
    task = ArithmeticTask(difficulty=1, num_train=10, num_test=5)
    assert answer_of(task, "3+4+0=7 A:007 junk") == "7"
    assert answer_of(task, "no marker") is None
    assert answer_of(object(), "steps\n  42 \n\n") == "42"
    assert answer_of(object(), "  \n") is None


def test_breakdown_by_difficulty():
    examples = [Example("a", "1", meta={"difficulty": 1}), Example("b", "2", meta={"difficulty": 3}),
                Example("c", "3", meta={"difficulty": 1})]
    greedy = [Graded(0, True, 1.0, "1", 2), Graded(1, False, 0.0, "0", 4), Graded(2, False, 0.0, "0", 6)]
    sampled = [Graded(0, True, 1.0, "1", 1), Graded(0, True, 1.0, "1", 1),
               Graded(1, False, 0.0, "0", 1), Graded(1, True, 1.0, "2", 1),
               Graded(2, False, 0.0, "0", 1), Graded(2, False, 0.0, "9", 1)]
    out = breakdown(examples, greedy, sampled, samples=2, ks=[1, 2])
    assert out["accuracy"] == pytest.approx(1 / 3, abs=1e-15)
    assert set(out["by_difficulty"]) == {"1", "3"}
    easy, hard = out["by_difficulty"]["1"], out["by_difficulty"]["3"]
    assert easy["n"] == 2 and easy["accuracy"] == 0.5 and easy["pass@2"] == 0.5 and easy["completion_len"] == 4.0
    assert hard["n"] == 1 and hard["sampled_accuracy"] == 0.5 and hard["pass@2"] == 1.0
    assert hard["maj@2"] == 0.5  # a tie between "0" (wrong) and "2" (right)
