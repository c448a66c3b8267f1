"""CountdownTask: solver, verifier (hand-written cases, hostile text), split."""

import time

import pytest
from draws import Always

from graft.tasks import TASKS, Example, make_task
from graft.tasks.countdown import CountdownTask, check, demonstration, solve


@pytest.fixture(scope="module")
def task() -> CountdownTask:
    return CountdownTask()  # difficulty 3, 10000 train, 500 test


def _example(numbers: tuple[int, ...], target: int) -> Example:
    return Example(",".join(map(str, numbers)) + f"->{target}:", str(target), None,
                   {"id": "hand", "numbers": numbers, "target": target, "difficulty": len(numbers)})


SMALL = CountdownTask(difficulty=3, num_train=5, num_test=5)


def _score(numbers, target, completion):
    return SMALL.score(_example(numbers, target), completion)


def test_solver_finds_a_shortest_solution():
    assert solve((3, 7, 25), 35) == [(25, "+", 7, 32), (32, "+", 3, 35)]
    assert demonstration(solve((3, 7, 25), 35)) == "25+7=32,32+3=35 A:35"
    assert len(solve((3, 7, 25), 22)) == 1  # 25-3, though all three could be used
    assert len(solve((2, 3, 4), 24)) == 2  # no single step reaches 24
    assert solve((1, 1), 5) is None
    assert solve((6, 2, 2, 7), 8) == [(6, "+", 2, 8)]


def test_every_demonstration_verifies(task):
    for ex in task.train_examples() + task.test_examples():
        score = task.score(ex, ex.demonstration)
        assert score.correct and score.reward == 1.0, ex
        assert score.parts == {"correct": 1.0, "format": 1.0, "valid_steps": 1.0}


def test_examples_are_well_formed(task):
    lengths = []
    for ex in task.train_examples():
        numbers, target = ex.meta["numbers"], ex.meta["target"]
        assert isinstance(numbers, tuple) and len(numbers) == 3 and all(1 <= n <= 25 for n in numbers)
        assert 1 <= target <= 999 and target not in numbers and ex.answer == str(target)
        assert ex.prompt == ",".join(map(str, numbers)) + f"->{target}:"
        for text in (ex.prompt, ex.demonstration):
            assert all(32 <= ord(ch) <= 126 for ch in text), text
        lengths.append(len(ex.demonstration))
    assert max(lengths) <= 30 and sum(lengths) / len(lengths) < 25


def test_hand_written_correct_completions():
    assert _score((3, 7, 25), 35, "25+7=32,32+3=35 A:35").correct
    assert _score((3, 7, 25), 35, "3+7=10,10+25=35 A:35").correct  # any valid order
    assert _score((3, 7, 25), 35, " 25 + 7 = 32 , 32 + 3 = 35  A: 35 trailing text").correct
    assert _score((4, 6, 6), 1, "6/6=1 A:1").correct  # a repeated number may be used as often as given
    assert _score((2, 3, 4), 24, "3*2=6,6*4=24 A:24").correct
    assert _score((5, 5, 9), 9, "5-5=0,9+0=9 A:9").correct  # zero is a non-negative integer


@pytest.mark.parametrize("completion, valid_steps", [
    ("25+25=50,50-15=35 A:35", 0.0),   # reuses a given number
    ("6/6=1,1+1=2 A:2", 0.0),          # reuses an intermediate result
    ("25+10=35 A:35", 0.0),            # 10 is not given
    ("25+7=33,33+3=36 A:35", 0.0),     # wrong arithmetic in a step
    ("25+7=32,32+3=36 A:36", 0.0),     # wrong arithmetic, answer agrees with the bad step
    ("25/3=8,8+7=15 A:15", 0.0),       # division is not exact
    ("3-7=0,25+7=32 A:32", 0.0),       # negative intermediate
    ("25+7=32 A:32", 1.0),             # valid steps, wrong final value
    ("25+7=32,32+3=35 A:32", 1.0),     # final answer disagrees with the last step
    ("25+7=32,32+3=35 A:36", 1.0),
    ("25+7=32,32+3=35", 1.0),          # no final-answer marker
    ("A:35", 0.0),                     # no steps
    ("25+7=32,,32+3=35 A:35", 0.0),    # empty step
    ("25+7=32,32+3=35,35*1=35,", 0.0),  # trailing comma, no marker
    ("25 plus 7=32,32+3=35 A:35", 0.0),
    ("25+7=32;32+3=35 A:35", 0.0),     # wrong separator
    ("(25+7)+3=35 A:35", 0.0),         # expressions are not steps
    ("25+7+3=35 A:35", 0.0),
])
def test_hand_written_wrong_completions(completion, valid_steps):
    numbers, target = ((6, 4, 6), 2) if completion.startswith("6/") else ((3, 7, 25), 35)
    score = _score(numbers, target, completion)
    assert not score.correct and score.reward == 0.0
    assert score.parts["valid_steps"] == valid_steps


def test_parts_format():
    assert check((3, 7, 25), 35, "25+7=32 A:32")["format"] == 1.0
    assert check((3, 7, 25), 35, "25+7=32,32+3=35")["format"] == 0.0


@pytest.mark.parametrize("completion", [
    "", "\n", "A:", "A:x", "35", ",,,,", "=", "+-*/", "1/0=0 A:0", "0/0=0 A:0", "a:35",
    "9" * 100_000, "25+7=32," * 20_000 + " A:35", "A:" * 50_000, "1+" * 50_000 + "=1 A:1",
    "x" * 100_000 + "25+7=32,32+3=35 A:35", "99999999999*99999999999=1 A:1", "\x00\uffff\t",
    ",".join(["25+7=32"] * 17) + " A:35",
])
def test_hostile_completions_score_zero_quickly(completion):
    start = time.perf_counter()
    score = _score((3, 7, 25), 35, completion)
    assert score.reward == 0.0 and not score.correct
    # a guard against a verifier that scans the whole text (100k characters, quadratically), not a speed
    # target: reading only the first 512 characters takes ~1e-4 s, a loaded machine included
    assert time.perf_counter() - start < 1.0


def test_same_seed_same_examples_other_seed_differs():
    a = CountdownTask(num_train=200, num_test=50, split_seed=3)
    b = CountdownTask(num_train=200, num_test=50, split_seed=3)
    c = CountdownTask(num_train=200, num_test=50, split_seed=4)
    assert a.train_examples() == b.train_examples() and a.test_examples() == b.test_examples()
    assert [e.prompt for e in a.train_examples()] != [e.prompt for e in c.train_examples()]
    assert [e.prompt for e in a.test_examples()] != [e.prompt for e in c.test_examples()]


def test_train_and_test_are_disjoint_and_unique(task):
    train = [ex.prompt for ex in task.train_examples()]
    test = [ex.prompt for ex in task.test_examples()]
    assert len(train) == 10000 and len(test) == 500
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert not set(train) & set(test)
    ids = [ex.meta["id"] for ex in task.train_examples() + task.test_examples()]
    assert len(set(ids)) == len(ids) and ids[0] == "countdown-train-0"


def test_difficulty_changes_the_problems():
    for k in (2, 4, 5):
        task = CountdownTask(difficulty=k, num_train=50, num_test=10)
        for ex in task.train_examples():
            assert len(ex.meta["numbers"]) == k and ex.meta["difficulty"] == k
            assert len(ex.demonstration.split(",")) <= k - 1
            assert task.score(ex, ex.demonstration).correct


def test_too_few_problems_or_bad_difficulty_raise():
    with pytest.raises(ValueError, match="difficulty 2: found only 1867 distinct problems.*= 2500"):
        CountdownTask(difficulty=2, num_train=2000, num_test=500)
    for bad in (1, 6):
        with pytest.raises(ValueError, match="difficulty"):
            CountdownTask(difficulty=bad)


def test_registry():
    assert TASKS["countdown"] is CountdownTask
    assert isinstance(make_task("countdown", num_train=10, num_test=5), CountdownTask)


# --------------------------------------------------------------------------- imperfect teacher


def test_flawed_steps_by_hand():
    from graft.tasks.countdown import flawed_steps

    slip, keep = Always(0.0), Always(0.99)
    steps = solve((13, 7, 6), 97)
    assert demonstration(steps) == "13*7=91,91+6=97 A:97"
    assert demonstration(flawed_steps(steps, 0.6, slip)) == "13*7=92,92+6=98 A:98"  # carried into the next step
    assert flawed_steps(steps, 0.6, keep) == steps
    assert flawed_steps(steps, 0.0, slip) == steps  # error 0: no slips
    sub = [(25, "*", 4, 100), (100, "-", 1, 99)]
    assert demonstration(flawed_steps(sub, 1.0, slip)) == "25*4=101,101-1=100 A:100"
    no_mul = [(25, "+", 7, 32), (32, "+", 3, 35)]
    assert flawed_steps(no_mul, 1.0, slip) == no_mul  # the teacher only slips on multiplications
    # a later operation made invalid by the slip: the teacher writes the floor of the division
    div = [(3, "*", 2, 6), (12, "/", 6, 2)]
    assert demonstration(flawed_steps(div, 1.0, slip)) == "3*2=7,12/7=1 A:1"
    # the slipped value smaller than the other operand of a subtraction becomes the larger: reordered
    flip = [(2, "*", 2, 4), (5, "-", 4, 1)]
    assert flawed_steps(flip, 1.0, slip) == [(2, "*", 2, 5), (5, "-", 5, 0)]


def test_teacher_error_changes_training_demonstrations_only():
    clean = CountdownTask(num_train=2000, num_test=100)
    flawed = CountdownTask(num_train=2000, num_test=100, teacher_error=0.6)
    assert flawed.test_examples() == clean.test_examples()
    pairs = list(zip(clean.train_examples(), flawed.train_examples(), strict=True))
    assert all(c.prompt == f.prompt and c.answer == f.answer for c, f in pairs)
    changed = [(c, f) for c, f in pairs if c.demonstration != f.demonstration]
    assert all("*" in c.demonstration for c, _ in changed)  # only solutions with a multiplication
    assert all(not flawed.score(f, f.demonstration).correct for _, f in changed)  # each slip is a wrong answer
    # about 48% of the solutions multiply, each slips with probability 0.6 (one multiplication, mostly)
    assert 0.24 < len(changed) / len(pairs) < 0.36
    again = CountdownTask(num_train=2000, num_test=100, teacher_error=0.6)  # seeded by split_seed
    assert [e.demonstration for e in again.train_examples()] == [e.demonstration for e in flawed.train_examples()]
    with pytest.raises(ValueError, match="teacher_error"):
        CountdownTask(teacher_error=-0.1)


def test_teacher_error_config_key():
    from graft.config import build_config
    from graft.tasks.build import build_task

    cfg = build_config({}, ["task.name=countdown", "task.teacher_error=0.6", "task.num_train=500",
                            "task.num_test=50"])
    task = build_task(cfg.task)
    assert any(not task.score(e, e.demonstration).correct for e in task.train_examples())
