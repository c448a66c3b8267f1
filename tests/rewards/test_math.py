"""Math grader: answer extraction, a hand-labelled equivalence table, hostile answers, the timed pool."""

import sys
import time

import pytest

from graft.rewards.math import MathGrader, extract_answer, reject_reason
from graft.rewards.workers import TimedPool
from graft.tasks.base import Example

LIMIT = 3.0  # seconds per comparison in these tests


@pytest.fixture(scope="module")
def grader():
    g = MathGrader(timeout=LIMIT, workers=1)
    yield g
    g.close()


@pytest.mark.parametrize("text,expected", [
    ("so the result is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{\\{1, \\{2\\}\\}} and more text", "\\{1, \\{2\\}\\}"),  # nested braces kept
    ("first \\boxed{1} then \\boxed{2}", "2"),                       # the last box
    ("\\fbox{7}", "7"),
    ("\\boxed 5", "5"),
    ("The answer is 42. Done.", "42"),
    ("The answer is 3.5.", "3.5"),
    ("Answer: $x = 2$", "x = 2"),
    ("blah\n#### 1,234", "1,234"),
    ("<answer>-7</answer>", "-7"),
    ("<answer>so \\boxed{9}</answer>", "9"),
    ("I got 3 apples and -4.5 pears", "-4.5"),
    ("about 12% of them", "12%"),
    ("no digits here", None),
    ("\\boxed{unclosed", None),  # unclosed box, no number either
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


# (gold, completion's answer, equivalent?) -- labelled by hand, not by running the grader.
TABLE = [
    # fractions
    ("1/2", "0.5", True),
    ("\\frac{1}{2}", "0.5", True),
    ("\\dfrac{9}{7}", "9/7", True),
    ("0.75", "3/4", True),
    ("-0.5", "-\\frac12", True),
    ("\\frac{2}{4}", "\\frac{1}{2}", True),
    ("\\frac{3}{5}", "\\frac{5}{3}", False),
    ("1/3", "0.333333", True),   # math-verify rounds floats to 6 decimals
    ("1/3", "0.333", False),
    # decimals
    ("-3", "-3.0", True),
    ("12", "12.00", True),
    ("2.5", "2.50", True),
    ("3.14", "\\pi", False),
    ("0.1", "0.01", False),
    # percentages (math-verify: a percentage also matches its bare number, as in GSM8K answers)
    ("50\\%", "0.5", True),
    ("50%", "50", True),
    ("25\\%", "0.25", True),
    ("\\frac{3}{4}", "75\\%", True),
    ("20\\%", "0.02", False),
    # intervals
    ("(1,2]", "(1, 2]", True),
    ("[0,1]", "[0, 1]", True),
    ("[1,2)", "(1,2)", False),
    ("(-\\infty, 3)", "(-\\infty,3]", False),
    ("x \\in [2,5]", "[2,5]", True),
    ("(-\\infty, 0) \\cup (1, \\infty)", "(-\\infty,0)\\cup(1,\\infty)", True),
    ("[-1, 1]", "[-1, 1)", False),
    # sets
    ("\\{1,2,3\\}", "\\{3,2,1\\}", True),
    ("\\{1,2\\}", "\\{1,2,3\\}", False),
    ("\\{-1, 1\\}", "\\{1, -1\\}", True),
    ("1,2,3", "3,2,1", True),
    # LaTeX vs plain
    ("\\frac{\\pi}{2}", "\\pi/2", True),
    ("\\sqrt{8}", "2\\sqrt{2}", True),
    ("2\\sqrt{3}", "\\sqrt{12}", True),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),
    ("x^2+1", "1+x^2", True),
    ("10^{3}", "1000", True),
    ("2^{10}", "1024", True),
    ("2^{10}", "1000", False),
    ("1.5", "\\frac{3}{2}", True),
    ("1,000", "1000", True),
    ("\\text{yes}", "yes", True),
    ("2", "x=2", True),
    # negatives
    ("2", "-2", False),
    ("-5", "5", False),
    ("-7", "- 7", True),
    ("-\\frac{1}{3}", "-1/3", True),
    ("-\\frac{1}{3}", "\\frac{1}{3}", False),
]


def test_table_is_big_enough():
    assert len(TABLE) >= 40 and sum(1 for *_, eq in TABLE if not eq) >= 10


@pytest.mark.parametrize("gold,pred,equivalent", TABLE)
def test_equivalence_table(grader, gold, pred, equivalent):
    verdict = grader.grade(f"Let me think. The final result is \\boxed{{{pred}}}.", Example("q", gold))
    assert verdict.correct is equivalent, verdict
    assert verdict.reward == (1.0 if equivalent else 0.0)
    assert verdict.error == (None if equivalent else "wrong_answer")


def test_gold_with_box_and_missing_answer(grader):
    assert grader.grade("\\boxed{4}", Example("q", "so \\boxed{4}")).correct
    assert grader.grade("I do not know", Example("q", "4")).error == "no_answer"


HOSTILE = [
    ("tower", "\\boxed{9^9^9^9}", "rejected"),
    ("braced tower", "\\boxed{9^{9^{9^{9}}}}", "rejected"),
    ("python tower", "answer: 9**9**9**9", "rejected"),
    ("huge exponent", "\\boxed{2^{999999999}}", "rejected"),
    ("huge factorial", "\\boxed{99999999!}", "rejected"),
    ("deep nesting", "\\boxed{" + "(" * 5_000 + "1" + ")" * 5_000 + "}", "rejected"),
    ("deep braces", "<answer>" + "{" * 5_000 + "1" + "}" * 5_000 + "</answer>", "rejected"),
    # 10,000 deep: longer than the searched tail, so the box is cut off and the last number (1) is read
    ("deeper nesting", "\\boxed{" + "(" * 10_000 + "1" + ")" * 10_000 + "}", "wrong_answer"),
    ("deeper braces", "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}", "wrong_answer"),
    ("megabyte answer", "\\boxed{" + "1" * 1_000_000 + "}", "rejected"),
    ("megabyte text", "x" * 1_000_000 + " answer is \\frac{", "wrong_answer"),
    ("malformed latex", "\\boxed{\\frac{1}{\\sqrt{}}}", "wrong_answer"),
    ("unbalanced", "\\boxed{\\left( 1 + \\right]}", "wrong_answer"),
    ("binary junk", "\\boxed{\x00\x01\x02\\\\\\}", "wrong_answer"),
]


@pytest.mark.parametrize("name,completion,reason", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_answers_are_graded_within_the_limit(grader, name, completion, reason):
    grader.grade("\\boxed{1}", Example("q", "1"))  # worker warm: its start-up is not the call's time
    start = time.monotonic()
    verdict = grader.grade(completion, Example("q", "2"))
    assert time.monotonic() - start < LIMIT + 1.0
    assert verdict.reward == 0.0 and verdict.error == reason


def test_reject_reason_leaves_ordinary_answers_alone():
    for ok in ("x^2 + y^2", "10^{12}", "2004!", "\\frac{\\sqrt{3}}{2}", "(1, 2]"):
        assert reject_reason(ok) is None, ok


def test_grade_many_in_parallel_matches_serial():
    g = MathGrader(timeout=LIMIT, workers=2)
    try:
        items = [(f"\\boxed{{{p}}}", Example("q", gold)) for gold, p, _ in TABLE[:8]]
        assert [v.correct for v in g.grade_many(items)] == [eq for *_, eq in TABLE[:8]]
    finally:
        g.close()


SLOW_WORKER = '''
import time
from graft.rewards.workers import serve

def handle(request):
    if request.get("sleep"):
        time.sleep(request["sleep"])
    if request.get("crash"):
        import os
        os._exit(3)
    return {"echo": request["x"]}

serve(handle)
'''


def test_timed_pool_kills_an_overrunning_worker_and_replaces_it(tmp_path, monkeypatch):
    (tmp_path / "slowpoke.py").write_text(SLOW_WORKER)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{':'.join(sys.path)}")
    pool = TimedPool("slowpoke", workers=1)
    try:
        assert pool.call({"x": 1}, timeout=30) == {"echo": 1}
        start = time.monotonic()
        assert pool.call({"x": 2, "sleep": 60}, timeout=0.5) == {"error": "timeout"}
        assert time.monotonic() - start < 2.0
        assert pool.call({"x": 3, "crash": True}, timeout=30) == {"error": "runtime"}
        assert pool.call({"x": 4}, timeout=30) == {"echo": 4}  # a fresh worker took over
        assert len(pool._all) == 1
    finally:
        pool.close()


# Hedges: completions that name several candidates, or none, hoping one is taken. Found by trying
# (see docs/verifiers.md): math-verify commits to one value per answer, so none is paid for more
# than one gold. Each is graded against every gold of its row; the expected payouts are by hand.
HEDGES = [
    ("\\boxed{1 or 2}", ["1", "2"], []),
    ("\\boxed{1 \\text{ or } 2}", ["1", "2"], []),
    ("\\boxed{1, 2, 3, 4, 5}", ["1", "3", "5"], []),
    ("\\boxed{\\{1,2,3\\}}", ["1", "2"], []),
    ("\\boxed{x \\in \\{1,2\\}}", ["1", "2"], []),
    ("\\boxed{2 \\pm 1}", ["1", "3"], []),
    ("\\boxed{1 \\leq x \\leq 3}", ["2"], []),
    ("\\boxed{[1,3]}", ["2"], []),
    ("\\boxed{1}\\boxed{2}", ["1", "2"], ["2"]),                     # the last box is the answer
    ("The answer is 1}\\boxed{2}\\boxed{3", ["1", "2", "3"], []),   # braces injected into the wrapper
    ("<answer>1}, {2</answer>", ["1", "2"], ["1"]),                  # the same: only the first is read
    ("answer: $1$ or $2$", ["1", "2"], []),
    ("\\boxed{1 \\lor 2}", ["1", "2"], ["2"]),
    ("\\boxed{\\mathbb{R}}", ["2", "0"], []),
    ("\\boxed{(-\\infty,\\infty)}", ["2"], []),
    ("\\boxed{x}", ["2", "x=2"], []),
    ("\\boxed{\\text{any}}", ["2"], []),
    ("\\boxed{nan}", ["2"], []),
    ("\\boxed{\\emptyset}", ["2", "\\{1,2\\}"], []),
]


@pytest.mark.parametrize("completion,golds,paid", HEDGES, ids=[h[0] for h in HEDGES])
def test_hedges_are_paid_for_at_most_one_answer(grader, completion, golds, paid):
    assert [gold for gold in golds if grader.grade(completion, Example("q", gold)).correct] == paid
