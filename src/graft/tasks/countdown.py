"""Countdown: reach a target from given numbers with + - * /, each number used at most once.

Problems (difficulty k = how many numbers are given, 2 <= k <= 5):
    k numbers drawn uniformly from 1..25 (repeats allowed), and a target made by
    combining all k of them in a random order with random operations. The
    target is in 1..999 and is never one of the given numbers, so every
    solution needs at least one step.

Rules: a step combines two available values with + - * /; every result must
be a non-negative integer (so a - b needs a >= b, and a / b must divide
exactly, b > 0). The given numbers are available at the start; a step consumes
its two operands and makes its result available. Each given number and each
intermediate result can therefore be used at most once.

Text formats (printable ASCII only):
    prompt          "24,20,13->17:"          the numbers in drawn order, "->", the target, ":"
    demonstration   "24-20=4,13+4=17 A:17"
        Steps "a<op>b=r" separated by ",", then a space, "A:" and the target.
        The demonstration is a shortest solution, found by an iterative-
        deepening brute-force search (``solve``); within a step the larger
        operand comes first. About 20 characters at difficulty 3, 27 at 5.
    final answer    the integer right after the first "A:" marker.

Verifier (a hand-written parser; no eval): only the first 512 characters are
read. Everything before the first "A:" (all of it, if there is no "A:") is
split on "," into at most 16 steps, each of which must read
``<int> <op> <int> = <int>`` (spaces allowed, at most 9 digits per number),
op one of + - * /. A completion is correct when it has at least one step,
every step's arithmetic holds under the rules above, every operand is still
available when used, the last step's result equals the target, and the final
answer equals the target. reward = 1.0 if correct else 0.0;
parts = {"correct": 0/1, "format": 1 if "A:" is followed by an integer,
"valid_steps": 1 if there is at least one step and every step is valid}.

Imperfect teacher (``teacher_error`` = p > 0, training demonstrations only): a teacher weak
at multiplication. Each ``*`` step of the shortest solution is written with its result one too
high with probability p; the later steps use the value it wrote, recomputed with the same
operations (larger operand first; a subtraction of equal values gives 0, an inexact division is
written as the floor, a division by 0 as 0), and the answer is the last step's result. E.g. 13,7,6->97 with its slip:
"13*7=92,92+6=98 A:98" (true solution "13*7=91,91+6=97 A:97"). The slips are drawn with
``random.Random(split_seed * 1_000_003 + i)`` for the i-th training example, so every run sees
the same demonstrations. Test examples, prompts, answers and the verifier are unchanged: the
student is graded against the truth, not against its teacher. At difficulty 3 about 48% of the
shortest solutions have a multiplication.

Split: problems are drawn with ``random.Random(split_seed)``, skipping prompts
already drawn; the first ``num_test`` distinct prompts are the test set, the
next ``num_train`` the training set. If the generator stops finding new prompts
(difficulty 2 has only 1,868), the constructor raises ValueError. Generating
10,500 problems takes ~0.4 s at difficulty 3 and ~6 s at 5 (the solver).
"""

from __future__ import annotations

import random
import re
from collections import Counter

from graft.tasks.base import Example, Score

Step = tuple[int, str, int, int]  # (a, op, b, result)

MARKER = "A:"
LOW, HIGH = 1, 25  # range of the given numbers
MAX_TARGET = 999
MAX_CHARS = 512  # completions are read up to here
MAX_STEPS = 16
PATIENCE = 2000  # consecutive repeated prompts after which the problem space counts as exhausted
_STEP = re.compile(r" *(\d{1,9}) *([-+*/]) *(\d{1,9}) *= *(\d{1,9}) *")
_ANSWER = re.compile(r"A: *(\d{1,9})")


def apply(a: int, op: str, b: int) -> int | None:
    """``a op b`` if it is a non-negative integer under the rules, else None."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b if a >= b else None
    if op == "*":
        return a * b
    if op == "/":
        return a // b if b > 0 and a % b == 0 else None
    return None


def _moves(a: int, b: int) -> list[tuple[str, int]]:
    """Useful results of combining a >= b: skips a result of 0 or one equal to an operand
    (x*1, x/1, x+0, x-0), which never shortens a solution to a positive target."""
    out = [("+", a + b), ("-", a - b), ("*", a * b)]
    if b > 0 and a % b == 0:
        out.append(("/", a // b))
    return [(op, r) for op, r in out if r != 0 and r != a and r != b]


def _pairs(pool: tuple[int, ...]):
    """Each distinct pair of values (a >= b) in a pool sorted largest first, with the rest of the pool."""
    for i in range(len(pool)):
        if i > 0 and pool[i] == pool[i - 1]:
            continue  # pairs with this value were yielded already
        for j in range(i + 1, len(pool)):
            if j > i + 1 and pool[j] == pool[j - 1]:
                continue
            yield pool[i], pool[j], pool[:i] + pool[i + 1 : j] + pool[j + 1 :]


def _last_step(x: int, y: int, target: int) -> Step | None:
    """The step that combines x and y into the target, if there is one (the hot loop: no lists)."""
    a, b = (x, y) if x >= y else (y, x)
    if a + b == target:
        return a, "+", b, target
    if a - b == target:
        return a, "-", b, target
    if a * b == target:
        return a, "*", b, target
    if b > 0 and a == b * target:
        return a, "/", b, target
    return None


def solve(numbers: tuple[int, ...], target: int) -> list[Step] | None:
    """A shortest list of steps reaching ``target``, or None if there is none.

    Iterative deepening over the multiset of available values, kept sorted largest
    first (so a step's larger operand comes first). Two savings keep difficulty 5
    fast: in a shortest solution the last step uses the result of the step before
    it (else that step could be dropped), so two steps from the end only the new
    result is tried as an operand; and ``dead`` remembers (values, depth) states
    that failed, which different orders of the same steps revisit.
    """
    dead: set[tuple[tuple[int, ...], int]] = set()

    def search(pool: tuple[int, ...], depth: int) -> list[Step] | None:
        if (pool, depth) in dead:
            return None
        for a, b, rest in _pairs(pool):
            if depth == 1:
                last = _last_step(a, b, target)
                if last is not None:
                    return [last]
                continue
            for op, r in _moves(a, b):
                if depth == 2:
                    for c in set(rest):
                        last = _last_step(r, c, target)
                        if last is not None:
                            return [(a, op, b, r), last]
                    continue
                found = search(tuple(sorted(rest + (r,), reverse=True)), depth - 1)
                if found is not None:
                    return [(a, op, b, r), *found]
        dead.add((pool, depth))
        return None

    start = tuple(sorted(numbers, reverse=True))
    for depth in range(1, len(numbers)):
        found = search(start, depth)
        if found is not None:
            return found
    return None


def demonstration(steps: list[Step]) -> str:
    return ",".join(f"{a}{op}{b}={r}" for a, op, b, r in steps) + f" {MARKER}{steps[-1][3]}"


def flawed_steps(steps: list[Step], error: float, rng) -> list[Step]:
    """The imperfect teacher's version of ``steps`` (module docstring): each ``*`` step's result is
    one too high with probability ``error`` (one ``rng.random()`` draw per ``*`` step, in order),
    and the later steps are recomputed from the values actually written."""
    written: dict[int, int] = {}  # a true intermediate value -> the value the teacher wrote for it
    out: list[Step] = []
    for a, op, b, r in steps:
        # an operand the teacher already got wrong (a given number equal to that true value is taken
        # for it: rare, and the demonstration is wrong either way)
        a, b = written.pop(a, a), written.pop(b, b)
        if a < b:
            a, b = b, a
        if op == "/":
            new = a // b if b else 0  # b is 0 only after a slip made a subtraction of equal values
        elif op == "-":
            new = a - b
        else:
            new = apply(a, op, b)
        if op == "*" and rng.random() < error:
            new += 1
        if new != r:
            written[r] = new
        out.append((a, op, b, new))
    return out


def check(numbers: tuple[int, ...], target: int, completion: str) -> dict[str, float]:
    """Parse and verify a completion; returns the score parts (see module docstring)."""
    text = completion[:MAX_CHARS]
    cut = text.find(MARKER)
    answer = _ANSWER.match(text, cut) if cut >= 0 else None
    parts = {"correct": 0.0, "format": float(answer is not None), "valid_steps": 0.0}
    body = (text[:cut] if cut >= 0 else text).strip()
    raw_steps = body.split(",") if body else []
    if not raw_steps or len(raw_steps) > MAX_STEPS:
        return parts
    available = Counter(numbers)
    last = None
    for raw in raw_steps:
        m = _STEP.fullmatch(raw)
        if m is None:
            return parts
        a, op, b, r = int(m[1]), m[2], int(m[3]), int(m[4])
        if apply(a, op, b) != r:
            return parts
        available[a] -= 1
        available[b] -= 1
        if available[a] < 0 or available[b] < 0:
            return parts  # an operand not given, or already used
        available[r] += 1
        last = r
    parts["valid_steps"] = 1.0
    solved = answer is not None and int(answer[1]) == target and last == target
    parts["correct"] = float(solved)
    return parts


def draw_problem(rng: random.Random, k: int) -> tuple[tuple[int, ...], int]:
    """k random numbers and a target made by combining all of them at random."""
    while True:
        numbers = tuple(rng.randint(LOW, HIGH) for _ in range(k))
        pool = list(numbers)
        while len(pool) > 1:
            x = pool.pop(rng.randrange(len(pool)))
            y = pool.pop(rng.randrange(len(pool)))
            a, b = max(x, y), min(x, y)
            pool.append(rng.choice([r for op in "+-*/" if (r := apply(a, op, b)) is not None]))
        target = pool[0]
        if 1 <= target <= MAX_TARGET and target not in numbers:
            return numbers, target


def prompt_of(numbers: tuple[int, ...], target: int) -> str:
    return ",".join(map(str, numbers)) + f"->{target}:"


class CountdownTask:
    """Reach the target from ``difficulty`` given numbers (see module docstring)."""

    name = "countdown"

    def __init__(self, difficulty: int = 3, num_train: int = 10000, num_test: int = 500,
                 split_seed: int = 0, teacher_error: float = 0.0):
        if not 0.0 <= teacher_error <= 1.0:
            raise ValueError(f"teacher_error must be in [0, 1], got {teacher_error}")
        if not 2 <= difficulty <= 5:
            raise ValueError(f"countdown difficulty must be 2..5 (how many numbers), got {difficulty}")
        if num_train < 1 or num_test < 1:
            raise ValueError(f"num_train and num_test must be >= 1, got {num_train} and {num_test}")
        self.difficulty = difficulty
        rng = random.Random(split_seed)
        want = num_train + num_test
        problems: dict[str, tuple[tuple[int, ...], int]] = {}  # prompt -> problem, in draw order
        misses = 0
        while len(problems) < want:
            numbers, target = draw_problem(rng, difficulty)
            prompt = prompt_of(numbers, target)
            if prompt in problems:
                misses += 1
                if misses >= PATIENCE:
                    raise ValueError(
                        f"countdown difficulty {difficulty}: found only {len(problems)} distinct "
                        f"problems, fewer than num_train + num_test = {num_train} + {num_test} = {want}"
                    )
                continue
            misses = 0
            problems[prompt] = (numbers, target)
        drawn = list(problems.values())
        solutions = [solve(*problem) for problem in drawn]  # solved once: the teacher's slips start from these
        self._test = [self._example(p, steps, f"countdown-test-{i}")
                      for i, (p, steps) in enumerate(zip(drawn[:num_test], solutions[:num_test], strict=True))]
        self._train = [
            self._example(p, flawed_steps(steps, teacher_error, random.Random(split_seed * 1_000_003 + i))
                          if teacher_error > 0 else steps, f"countdown-train-{i}")
            for i, (p, steps) in enumerate(zip(drawn[num_test:], solutions[num_test:], strict=True))
        ]

    def _example(self, problem: tuple[tuple[int, ...], int], steps: list[Step], ident: str) -> Example:
        numbers, target = problem
        assert steps is not None, (numbers, target)  # the target was built from these numbers
        return Example(
            prompt=prompt_of(numbers, target),
            answer=str(target),
            demonstration=demonstration(steps),
            meta={"id": ident, "difficulty": self.difficulty, "numbers": numbers, "target": target},
        )

    def train_examples(self) -> list[Example]:
        return list(self._train)

    def test_examples(self) -> list[Example]:
        return list(self._test)

    def final_answer(self, completion: str) -> str | None:
        """The integer after the first "A:" (what maj@k votes on), or None."""
        text = completion[:MAX_CHARS]
        cut = text.find(MARKER)
        match = _ANSWER.match(text, cut) if cut >= 0 else None
        return str(int(match[1])) if match else None

    def score(self, example: Example, completion: str) -> Score:
        parts = check(example.meta["numbers"], example.meta["target"], completion)
        ok = parts["correct"] == 1.0
        return Score(reward=float(ok), correct=ok, parts=parts)
