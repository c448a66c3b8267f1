"""ArithmeticTask: formats, verifier, split determinism and disjointness."""

import re

import pytest
from draws import Always, Draws

from graft.tasks import TASKS, Example, make_task
from graft.tasks.arithmetic import MAX_CHARS, ArithmeticTask, demonstration, final_answer


@pytest.fixture(scope="module")
def task() -> ArithmeticTask:
    return ArithmeticTask()  # the defaults the quickstart uses


def _example(a: int, op: str, b: int) -> Example:
    answer = a + b if op == "+" else a - b
    return Example(f"{a}{op}{b}=", str(answer), demonstration(a, op, b), {"id": "hand"})


def test_demonstrations_by_hand():
    assert demonstration(47, "+", 85) == "7+5+0=12,4+8+1=13 A:132"
    assert demonstration(85, "-", 47) == "15-7-0=8,8-4-1=3 A:38"
    assert demonstration(7, "+", 85) == "7+5+0=12,0+8+1=9 A:92"  # shorter operand padded with 0
    assert demonstration(100, "-", 1) == "10-1-0=9,10-0-1=9,1-0-1=0 A:99"
    assert demonstration(0, "-", 0) == "0-0-0=0 A:0"


def test_every_demonstration_verifies(task):
    for ex in task.train_examples() + task.test_examples():
        score = task.score(ex, ex.demonstration)
        assert score.correct and score.reward == 1.0, ex
        assert score.parts == {"correct": 1.0, "format": 1.0}


def test_text_is_printable_ascii_and_short(task):
    examples = task.train_examples()
    for ex in examples:
        for text in (ex.prompt, ex.demonstration, ex.answer):
            assert all(32 <= ord(ch) <= 126 for ch in text), text
    assert max(len(ex.demonstration) for ex in examples) <= 23
    assert len(ArithmeticTask(difficulty=6, num_train=50, num_test=5).train_examples()[0].demonstration) <= 63


def test_hand_written_completions():
    task = ArithmeticTask(difficulty=2, num_train=5, num_test=5)
    ex = _example(47, "+", 85)
    assert task.score(ex, "A:132").correct
    assert task.score(ex, "A: 132").correct
    assert task.score(ex, "A:0132").correct  # the value counts, not leading zeros
    assert task.score(ex, "7+5+0=12,4+8+1=13 A:132 and then some text A:5").correct
    wrong = task.score(ex, "7+5+0=12,4+8+1=12 A:122")
    assert not wrong.correct and wrong.reward == 0.0 and wrong.parts == {"correct": 0.0, "format": 1.0}
    assert not task.score(ex, "A:13").correct
    assert not task.score(ex, "A:1320").correct
    assert not task.score(ex, "A:122 A:132").correct  # only the first answer counts
    assert task.score(_example(85, "-", 47), "15-7-0=8,8-4-1=3 A:38").correct


@pytest.mark.parametrize("completion", [
    "", "132", "A:", "A:x132", "a:132", "\n\n", "~!@#$%^&*()", "A:-", "A:" + "9" * 5000,
    "1" * 100_000, "A:" * 50_000, "x" * 100_000 + "A:132", "\x00\uffff A", "A:" + "1" * 41,
])
def test_malformed_completions_score_zero(completion):
    task = ArithmeticTask(difficulty=2, num_train=5, num_test=5)
    score = task.score(_example(47, "+", 85), completion)
    assert score.reward == 0.0 and not score.correct and score.parts["correct"] == 0.0


def test_format_part():
    task = ArithmeticTask(difficulty=2, num_train=5, num_test=5)
    ex = _example(47, "+", 85)
    assert task.score(ex, "the answer is 132").parts["format"] == 0.0
    assert task.score(ex, "A:77").parts["format"] == 1.0
    assert final_answer("x A:-12 y") == -12 and final_answer("A:") is None


def test_same_seed_same_examples_other_seed_differs():
    a = ArithmeticTask(num_train=300, num_test=50, split_seed=3)
    b = ArithmeticTask(num_train=300, num_test=50, split_seed=3)
    c = ArithmeticTask(num_train=300, num_test=50, split_seed=4)
    assert a.train_examples() == b.train_examples() and a.test_examples() == b.test_examples()
    assert [e.prompt for e in a.train_examples()] != [e.prompt for e in c.train_examples()]
    assert [e.prompt for e in a.test_examples()] != [e.prompt for e in c.test_examples()]


def test_test_set_does_not_depend_on_num_train():
    small, big = ArithmeticTask(num_train=10, num_test=40), ArithmeticTask(num_train=2000, num_test=40)
    assert small.test_examples() == big.test_examples()


def test_train_and_test_are_disjoint_and_unique(task):
    train = [ex.prompt for ex in task.train_examples()]
    test = [ex.prompt for ex in task.test_examples()]
    assert len(train) == 10000 and len(test) == 500
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert not set(train) & set(test)
    ids = [ex.meta["id"] for ex in task.train_examples() + task.test_examples()]
    assert len(set(ids)) == len(ids) and ids[-1] == "arithmetic-test-499"
    assert all(ex.meta["difficulty"] == 2 for ex in task.test_examples())


def test_difficulty_changes_the_problems():
    for d in (1, 3, 6):
        examples = ArithmeticTask(difficulty=d, num_train=100, num_test=20).train_examples()
        operands = [int(x) for ex in examples for x in ex.prompt[:-1].replace("-", "+").split("+")]
        assert max(operands) < 10**d and max(operands) >= 10 ** (d - 1)
        assert all(ex.meta["difficulty"] == d for ex in examples)


def test_too_few_problems_or_bad_difficulty_raise():
    ArithmeticTask(difficulty=1, num_train=100, num_test=55)  # all 155 problems of difficulty 1
    with pytest.raises(ValueError, match="only 155 distinct problems.*100 \\+ 56 = 156"):
        ArithmeticTask(difficulty=1, num_train=100, num_test=56)
    for bad in (0, 7):
        with pytest.raises(ValueError, match="difficulty"):
            ArithmeticTask(difficulty=bad)


def test_registry():
    assert TASKS["arithmetic"] is ArithmeticTask
    assert isinstance(make_task("arithmetic", difficulty=1, num_train=10, num_test=5), ArithmeticTask)
    with pytest.raises(ValueError, match="unknown task 'nope'; choose one of: arithmetic, countdown"):
        make_task("nope")


# --------------------------------------------------------------------------- imperfect teacher


def test_flawed_demonstrations_by_hand():
    from graft.tasks.arithmetic import flawed_demonstration

    slip, keep = Always(0.0), Always(0.99)  # random() < error: 0.0 always slips, 0.99 never (error 0.6)
    assert flawed_demonstration(47, "+", 85, 0.6, keep) == demonstration(47, "+", 85)
    assert flawed_demonstration(47, "+", 85, 0.6, slip) == "7+5+0=12,4+8+0=12 A:22"  # both carries lost
    assert flawed_demonstration(85, "-", 47, 0.6, slip) == "15-7-0=8,8-4-0=4 A:48"  # borrow not passed on
    assert flawed_demonstration(100, "-", 1, 0.6, slip) == "10-1-0=9,0-0-0=0,1-0-0=1 A:109"
    assert flawed_demonstration(12, "+", 34, 1.0, slip) == demonstration(12, "+", 34)  # nothing to forget
    assert flawed_demonstration(47, "+", 85, 0.0, slip) == demonstration(47, "+", 85)  # error 0: no slips


def test_teacher_error_changes_training_demonstrations_only():
    clean, flawed = ArithmeticTask(num_train=2000, num_test=100), ArithmeticTask(
        num_train=2000, num_test=100, teacher_error=0.6)
    assert flawed.test_examples() == clean.test_examples()
    pairs = list(zip(clean.train_examples(), flawed.train_examples(), strict=True))
    assert all(c.prompt == f.prompt and c.answer == f.answer for c, f in pairs)
    wrong = [f for _, f in pairs if not flawed.score(f, f.demonstration).correct]
    # a problem with at least one carry/borrow slips with probability >= 0.6; about half the problems have one
    assert 0.25 < len(wrong) / len(pairs) < 0.5
    again = ArithmeticTask(num_train=2000, num_test=100, teacher_error=0.6)  # seeded by split_seed
    assert [e.demonstration for e in again.train_examples()] == [e.demonstration for e in flawed.train_examples()]
    with pytest.raises(ValueError, match="teacher_error"):
        ArithmeticTask(teacher_error=1.5)


def test_teacher_error_config_key(tmp_path):
    from graft.config import build_config
    from graft.errors import GraftError
    from graft.tasks.build import build_task

    cfg = build_config({}, ["task.teacher_error=0.6", "task.num_train=500", "task.num_test=50"])
    task = build_task(cfg.task)
    assert any(not task.score(e, e.demonstration).correct for e in task.train_examples())
    # a task class without a modelled slip (the user's task of examples/my_task.py) refuses it
    cfg = build_config({}, ["task.name=examples.my_task:ReverseTask", "task.teacher_error=0.5"])
    with pytest.raises(GraftError, match="task.teacher_error"):
        build_task(cfg.task)


# --------------------------------------------------------------------------- verbose teacher


def test_verbose_demonstrations_by_hand():
    from graft.tasks.arithmetic import flawed_demonstration

    full = "47+85: 7+5+0=12 digit 2 carry 1; 4+8+1=13 digit 3 carry 1; A:132"
    assert demonstration(47, "+", 85, "verbose") == full  # no draws: every optional piece
    assert demonstration(47, "+", 85, "verbose", Always(0.0)) == full  # draws < 3/4: written
    assert demonstration(47, "+", 85, "verbose", Always(0.75)) == "7+5+0=12; 4+8+1=13; A:132"
    # the draws: restatement, then one check per column, right to left
    assert demonstration(85, "-", 47, "verbose", Draws(0.1, 0.9, 0.2)) == "85-47: 15-7-0=8; 8-4-1=3 digit 3 borrow 0; A:38"
    assert demonstration(85, "-", 47, "verbose", Draws(0.9, 0.1, 0.9)) == "15-7-0=8 digit 8 borrow 1; 8-4-1=3; A:38"
    assert demonstration(7, "+", 85, "verbose") == "7+85: 7+5+0=12 digit 2 carry 1; 0+8+1=9 digit 9 carry 0; A:92"
    assert demonstration(0, "-", 0, "verbose") == "0-0: 0-0-0=0 digit 0 borrow 0; A:0"
    assert demonstration(12, "+", 34) == "2+4+0=6,1+3+0=4 A:46"  # plain is the default
    # the imperfect teacher writes its slip in the verbose form too: the carry it passes on is 0
    assert (flawed_demonstration(47, "+", 85, 0.6, Always(0.0), "verbose")
            == "47+85: 7+5+0=12 digit 2 carry 0; 4+8+0=12 digit 2 carry 0; A:22")
    with pytest.raises(ValueError, match="demo_style"):
        demonstration(1, "+", 2, "terse")


def test_every_verbose_demonstration_verifies_and_is_longer():
    plain, verbose = ArithmeticTask(), ArithmeticTask(demo_style="verbose")
    assert [e.prompt for e in verbose.train_examples()] == [e.prompt for e in plain.train_examples()]
    assert verbose.test_examples()[0].demonstration == ArithmeticTask(demo_style="verbose").test_examples()[0].demonstration
    examples = verbose.train_examples() + verbose.test_examples()
    for ex in examples:
        score = verbose.score(ex, ex.demonstration)
        assert score.correct and score.parts == {"correct": 1.0, "format": 1.0}, ex
        assert ex.demonstration.endswith(f"; A:{ex.answer}")
        assert all(32 <= ord(ch) <= 126 for ch in ex.demonstration)
    lengths = [len(e.demonstration) for e in examples]
    ratio = sum(lengths) / sum(len(e.demonstration) for e in plain.train_examples() + plain.test_examples())
    assert max(lengths) == 64 and 2.4 < ratio < 2.6
    restated = sum(e.demonstration.startswith(e.prompt[:-1] + ": ") for e in examples) / len(examples)
    every_piece = sum(e.demonstration.count("digit") == len(e.demonstration.split(";")) - 1 and
                      e.demonstration.startswith(e.prompt[:-1] + ": ") for e in examples) / len(examples)
    assert 0.73 < restated < 0.77 and 0.40 < every_piece < 0.45  # 3/4, and (3/4)^3 for most problems
    sloppy = ArithmeticTask(teacher_error=0.6, demo_style="verbose")  # the same pieces, with the slips
    pairs = list(zip(verbose.train_examples(), sloppy.train_examples(), strict=True))
    assert all(v.demonstration.count("digit") == f.demonstration.count("digit") for v, f in pairs)
    assert 0.25 < sum(v.demonstration != f.demonstration for v, f in pairs) / len(pairs) < 0.5
    six = ArithmeticTask(difficulty=6, num_train=300, num_test=5, demo_style="verbose")
    assert max(len(e.demonstration) for e in six.train_examples()) < 200 < MAX_CHARS
    with pytest.raises(ValueError, match="demo_style"):
        ArithmeticTask(demo_style="terse")


def test_hedging_demonstrations_by_hand():
    full = "let me think. 7+5+0=12, next column. 4+8+1=13, that is all. A:132"
    assert demonstration(47, "+", 85, "hedging") == full  # no draws: every phrase
    assert demonstration(47, "+", 85, "hedging", Always(0.0)) == full
    assert demonstration(47, "+", 85, "hedging", Always(0.75)) == demonstration(47, "+", 85)  # none: the plain form
    # the draws: the opening phrase, then one per gap after a step, left to right
    assert demonstration(85, "-", 47, "hedging", Draws(0.9, 0.1, 0.9)) == "15-7-0=8, next column. 8-4-1=3 A:38"
    assert demonstration(85, "-", 47, "hedging", Draws(0.1, 0.9, 0.2)) == "let me think. 15-7-0=8,8-4-1=3, that is all. A:38"
    assert demonstration(0, "-", 0, "hedging") == "let me think. 0-0-0=0, that is all. A:0"


def test_every_hedging_demonstration_verifies_has_no_more_numbers_and_is_longer():
    plain, hedging = ArithmeticTask(), ArithmeticTask(demo_style="hedging")
    pairs = list(zip(plain.train_examples() + plain.test_examples(),
                     hedging.train_examples() + hedging.test_examples(), strict=True))
    for p, h in pairs:
        assert h.prompt == p.prompt and hedging.score(h, h.demonstration).correct
        assert re.findall(r"\d+", h.demonstration) == re.findall(r"\d+", p.demonstration)  # filler carries no number
        unhedged = h.demonstration.replace("let me think. ", "").replace(", next column. ", ",").replace(
            ", that is all. ", " ")
        assert unhedged == p.demonstration  # the filler removed: the plain demonstration
    ratio = sum(len(h.demonstration) for _, h in pairs) / sum(len(p.demonstration) for p, _ in pairs)
    assert 2.4 < ratio < 2.6 and max(len(h.demonstration) for _, h in pairs) == 65
    opened = sum(h.demonstration.startswith("let me think. ") for _, h in pairs) / len(pairs)
    assert 0.73 < opened < 0.77  # each phrase with probability 3/4


def test_recheck_demonstrations_by_hand():
    plain = "7+5+0=12,4+8+1=13 A:132"
    assert demonstration(47, "+", 85, "recheck") == f"{plain}. check {plain}. check {plain}"  # no draws: both repeats
    assert demonstration(47, "+", 85, "recheck", Always(0.75)) == plain  # none
    assert demonstration(85, "-", 47, "recheck", Draws(0.9, 0.1)) == "15-7-0=8,8-4-1=3 A:38. check 15-7-0=8,8-4-1=3 A:38"


def test_every_recheck_demonstration_is_the_plain_one_repeated_and_scores_on_its_first_answer():
    plain, recheck = ArithmeticTask(), ArithmeticTask(demo_style="recheck")
    pairs = list(zip(plain.train_examples() + plain.test_examples(),
                     recheck.train_examples() + recheck.test_examples(), strict=True))
    counts = [0, 0, 0]
    for p, r in pairs:
        assert r.prompt == p.prompt and recheck.score(r, r.demonstration).correct
        parts = r.demonstration.split(". check ")
        assert set(parts) == {p.demonstration} and len(parts) <= 3
        counts[len(parts) - 1] += 1
        wrong = p.demonstration.replace(f"A:{p.answer}", "A:-1")  # a first answer that is wrong ...
        assert not recheck.score(r, f"{wrong}. check {p.demonstration}").correct  # ... is not mended by a repeat
    shares = [c / len(pairs) for c in counts]  # Binomial(2, 3/4): 1/16, 6/16, 9/16
    assert abs(shares[0] - 1 / 16) < 0.01 and abs(shares[1] - 6 / 16) < 0.02 and abs(shares[2] - 9 / 16) < 0.02
    ratio = sum(len(r.demonstration) for _, r in pairs) / sum(len(p.demonstration) for p, _ in pairs)
    assert 2.9 < ratio < 3.1 and max(len(r.demonstration) for _, r in pairs) <= 88


def test_demo_style_config_key():
    from graft.config import ConfigError, build_config
    from graft.errors import GraftError
    from graft.tasks.build import build_task

    cfg = build_config({}, ["task.demo_style=verbose", "task.num_train=50", "task.num_test=10"])
    task = build_task(cfg.task)
    assert all(e.demonstration.endswith(f"; A:{e.answer}") for e in task.train_examples())
    first = build_task(build_config({}, ["task.num_train=50", "task.num_test=10"]).task).train_examples()[0]
    assert first.demonstration == demonstration(*_operands(task.train_examples()[0]))  # plain by default
    with pytest.raises(GraftError, match="task.demo_style"):
        build_task(build_config({}, ["task.name=countdown", "task.demo_style=verbose"]).task)
    with pytest.raises(ConfigError, match="demo_style"):
        build_config({}, ["task.demo_style=terse"])


def _operands(ex: Example) -> tuple[int, str, int]:
    return ex.meta["a"], ex.meta["op"], ex.meta["b"]
