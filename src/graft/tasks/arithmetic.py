"""Integer addition and subtraction, with worked column-by-column solutions.

Problems (difficulty d = at most d digits per operand, 1 <= d <= 6):
    a + b  or  a - b  with a, b drawn uniformly from [0, 10^d); for subtraction
    the operands are ordered so that a >= b, so every answer is a non-negative
    integer. Operations are equally likely.

Text formats (printable ASCII only):
    prompt          "47+85="          subtraction: "85-47="
    demonstration   "7+5+0=12,4+8+1=13 A:132"
                    "15-7-0=8,8-4-1=3 A:38"
        One step per column, right to left, comma-separated, then a space and
        the final answer. The shorter operand is padded with 0 digits.
        Addition step:    digit_a + digit_b + carry_in = column sum (0..19);
                          the sum's last digit is the answer digit, its tens
                          digit the carry into the next column.
        Subtraction step: top - digit_b - borrow_in = answer digit (0..9),
                          where top is digit_a, or digit_a + 10 when the column
                          borrows; a top >= 10 means the next column's
                          borrow_in is 1.
        Length: about 9 characters per digit of d plus the answer, e.g. 23
        characters for two-digit addition.
    verbose demonstration  (``demo_style="verbose"``; every demonstration, training and test)
                    "47+85: 7+5+0=12 digit 2 carry 1; 4+8+1=13 digit 3 carry 1; A:132"
                    "85-47: 15-7-0=8 digit 8 borrow 1; 8-4-1=3; A:38"
                    "7+5+0=12 digit 2 carry 1; 4+8+1=13 digit 3 carry 1; A:132"
        What a wordy teacher writes: the problem restated ("a op b: "), then the
        same steps, each followed by a check " digit D carry C" (subtraction:
        "borrow") that restates the column's answer digit and the carry / borrow
        out of it, and closed by "; ", then the same final answer. The teacher
        writes the restatement and each check independently with probability
        VERBOSE_P = 3/4, drawn with ``random.Random(f"verbose:{split_seed}:{id}")``
        for the example with meta id ``id`` (the same demonstrations in every
        run), so its length varies as a real teacher's does; the most common
        form (42%) has every piece. Every number is correct and implied by the
        plain steps, so the extra text can be dropped without losing the answer.
        Length: the restatement (up to 2d + 3 characters), 9-10 characters per
        column and 16-17 per check, then the answer; two digits: at most 64
        characters, 52 on average, 2.5x the plain form; six digits: under 200.
    hedging demonstration  (``demo_style="hedging"``; every demonstration, training and test)
                    "let me think. 7+5+0=12, next column. 4+8+1=13, that is all. A:132"
                    "7+5+0=12, next column. 4+8+1=13 A:132"
        What a hedging teacher writes: the plain steps with fixed filler phrases
        that say nothing about the problem: "let me think. " before the first
        step, ", next column. " instead of each "," between steps, ", that is
        all. " instead of the space before the answer; each phrase written
        independently with probability VERBOSE_P (the same draws as the verbose
        teacher's: ``random.Random(f"verbose:{split_seed}:{id}")``), so the most
        common form has every phrase. Unlike the verbose teacher's checks, the
        filler carries no number: dropping it cannot lose information.
        Length: two digits: at most 65 characters (every phrase), 52 on average,
        2.5x the plain form (as the verbose teacher's).
    recheck demonstration  (``demo_style="recheck"``; every demonstration, training and test)
                    "7+5+0=12,4+8+1=13 A:132. check 7+5+0=12,4+8+1=13 A:132"
        What an overthinking teacher writes: the plain solution, answer
        included, then up to RECHECKS = 2 verbatim repeats of it, each after
        ". check " and each written independently with probability VERBOSE_P
        (the same draws as the verbose teacher's), so the most common form has
        both. Everything after the first answer is ignored by the verifier
        (below): the repeats cost tokens and cannot change the reward, like the
        re-verification a reasoning model writes after it has found its answer.
        Length: two digits: at most 88 characters, 3x the plain form on average.
    final answer    the integer right after the first "A:" marker (spaces after
                    the marker are allowed, leading zeros are ignored); anything
                    after it is ignored.

Imperfect teacher (``teacher_error`` = p > 0, training demonstrations only): the teacher
forgets to pass a carry (addition) or a borrow (subtraction) to the next column with
probability p at each column that produces one, the carry out of the leftmost column
included; it writes the rest of the steps and the answer consistently with its slip, e.g.
47+85 with the first carry forgotten: "7+5+0=12,4+8+0=12 A:122". The slips are drawn with
``random.Random(split_seed * 1_000_003 + i)`` for the i-th training example, so every run sees
the same demonstrations. Test examples, prompts, answers and the verifier are unchanged: the
student is graded against the truth, not against its teacher. A verbose imperfect teacher makes
the same slips (same draws) and writes them in the verbose form.

Verifier: reward 1.0 when the final answer equals the reference, else 0.0.
parts = {"correct": 0/1, "format": 1 if the marker was followed by an integer}.
The steps are not checked: they are scaffolding for imitation, and RL is free
to keep or drop them. Only the first 512 characters of a completion are read.

Split: problems are drawn with ``random.Random(split_seed)``, skipping prompts
already drawn; the first ``num_test`` distinct prompts are the test set, the
next ``num_train`` the training set, so the test set does not depend on
``num_train``.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from graft.tasks.base import Example, Score

MARKER = "A:"
MAX_CHARS = 512  # completions are read up to here; the longest demonstration is 63 chars (< 200 verbose)
DEMO_STYLES = ("plain", "verbose", "hedging", "recheck")
VERBOSE_P = 0.75  # the verbose / hedging teacher writes each optional piece this often
# the hedging teacher's filler: before the first step, instead of each "," between steps, instead of the space
# before the answer
HEDGE_OPEN, HEDGE_NEXT, HEDGE_CLOSE = "let me think. ", ", next column. ", ", that is all. "
RECHECK, RECHECKS = ". check ", 2  # the overthinking teacher: what comes before each repeat, how many at most
_ANSWER = re.compile(r"A: *(-?\d{1,40})")  # 40 digits: far beyond any answer, cheap to parse


def problem_space(difficulty: int) -> int:
    """How many distinct prompts exist: ordered pairs for +, pairs with a >= b for -."""
    n = 10**difficulty
    return n * n + n * (n + 1) // 2


def solve(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


def _columns(a: int, op: str, b: int, error: float = 0.0, rng: random.Random | None = None
             ) -> tuple[list[tuple[str, int, int]], int]:
    """The teacher's column steps of ``a op b``, right to left, and its final answer.

    Each step is ``(text, answer digit, carry or borrow out)``; with ``error`` > 0 each carry /
    borrow it should pass on is forgotten with probability ``error`` (a draw from ``rng``), the
    carry out written in the step being the one passed on."""
    width = max(len(str(a)), len(str(b)))
    steps, carry = [], 0  # carry doubles as the borrow for subtraction
    for i in range(width):  # least significant column first
        da, db = (a // 10**i) % 10, (b // 10**i) % 10
        if op == "+":
            total = da + db + carry
            text, digit, carry = f"{da}+{db}+{carry}={total}", total % 10, total // 10
        else:
            top = da + 10 if da < db + carry else da
            digit = top - db - carry
            text, carry = f"{top}-{db}-{carry}={digit}", 1 if top >= 10 else 0
        if carry and error > 0 and rng.random() < error:  # the slip: the carry never reaches column i+1
            carry = 0
        steps.append((text, digit, carry))
    digits = [d for _, d, _ in steps] + ([carry] if op == "+" and carry else [])
    return steps, int("".join(str(d) for d in reversed(digits)))


def _write(a: int, op: str, b: int, steps: list[tuple[str, int, int]], answer: int, style: str,
           wordy: random.Random | None) -> str:
    if style == "plain":
        return ",".join(text for text, _, _ in steps) + f" {MARKER}{answer}"
    if style == "verbose":  # each optional piece with probability VERBOSE_P (all of them when wordy is None)
        def say() -> bool:
            return wordy is None or wordy.random() < VERBOSE_P

        out = "borrow" if op == "-" else "carry"
        head = f"{a}{op}{b}: " if say() else ""
        body = "".join(f"{text} digit {digit} {out} {carry}; " if say() else f"{text}; "
                       for text, digit, carry in steps)
        return f"{head}{body}{MARKER}{answer}"
    if style == "hedging":  # filler phrases, each with probability VERBOSE_P (all of them when wordy is None)
        def say(phrase: str, bare: str) -> str:
            return phrase if wordy is None or wordy.random() < VERBOSE_P else bare

        head = say(HEDGE_OPEN, "")
        body = "".join(text + (say(HEDGE_NEXT, ",") if i < len(steps) - 1 else say(HEDGE_CLOSE, " "))
                       for i, (text, _, _) in enumerate(steps))
        return f"{head}{body}{MARKER}{answer}"
    if style == "recheck":  # the plain solution, then each repeat of it with probability VERBOSE_P
        plain = _write(a, op, b, steps, answer, "plain", None)
        repeats = sum(wordy is None or wordy.random() < VERBOSE_P for _ in range(RECHECKS))
        return plain + f"{RECHECK}{plain}" * repeats
    raise ValueError(f"demo_style must be one of {', '.join(DEMO_STYLES)}, got {style!r}")


def demonstration(a: int, op: str, b: int, style: str = "plain", wordy: random.Random | None = None) -> str:
    """Column-by-column worked solution of ``a op b`` (a >= b for "-"), ending in `` A:<answer>``;
    ``style``: ``plain``, ``verbose``, ``hedging`` or ``recheck``; ``wordy``: the teacher's draws of which optional
    pieces it writes, None = all of them (module docstring)."""
    steps, answer = _columns(a, op, b)
    return _write(a, op, b, steps, answer, style, wordy)


def flawed_demonstration(a: int, op: str, b: int, error: float, rng: random.Random,
                         style: str = "plain", wordy: random.Random | None = None) -> str:
    """What an imperfect teacher writes for ``a op b``: each carry / borrow it should pass on is
    forgotten with probability ``error`` (module docstring). ``error=0`` gives ``demonstration``."""
    steps, answer = _columns(a, op, b, error, rng)
    return _write(a, op, b, steps, answer, style, wordy)


def final_answer(completion: str) -> int | None:
    """The integer after the first ``A:`` in the first MAX_CHARS characters, or None."""
    text = completion[:MAX_CHARS]
    cut = text.find(MARKER)
    match = _ANSWER.match(text, cut) if cut >= 0 else None
    return int(match[1]) if match else None


def draw_problem(rng: random.Random, difficulty: int) -> tuple[int, str, int]:
    hi = 10**difficulty - 1
    a, b, op = rng.randint(0, hi), rng.randint(0, hi), rng.choice("+-")
    if op == "-" and a < b:
        a, b = b, a
    return a, op, b


class ArithmeticTask:
    """Addition and subtraction of up-to-``difficulty``-digit integers (see module docstring)."""

    name = "arithmetic"

    def __init__(self, difficulty: int = 2, num_train: int = 10000, num_test: int = 500,
                 split_seed: int = 0, teacher_error: float = 0.0, demo_style: str = "plain"):
        if demo_style not in DEMO_STYLES:
            raise ValueError(f"demo_style must be one of {', '.join(DEMO_STYLES)}, got {demo_style!r}")
        if not 0.0 <= teacher_error <= 1.0:
            raise ValueError(f"teacher_error must be in [0, 1], got {teacher_error}")
        if not 1 <= difficulty <= 6:
            raise ValueError(f"arithmetic difficulty must be 1..6 (digits per operand), got {difficulty}")
        if num_train < 1 or num_test < 1:
            raise ValueError(f"num_train and num_test must be >= 1, got {num_train} and {num_test}")
        space = problem_space(difficulty)
        if num_train + num_test > space:
            raise ValueError(
                f"arithmetic difficulty {difficulty} has only {space} distinct problems, fewer than "
                f"num_train + num_test = {num_train} + {num_test} = {num_train + num_test}"
            )
        self.difficulty = difficulty
        self.demo_style = demo_style
        rng = random.Random(split_seed)
        seen: set[str] = set()
        problems: list[tuple[int, str, int]] = []
        while len(problems) < num_train + num_test:
            a, op, b = draw_problem(rng, difficulty)
            prompt = f"{a}{op}{b}="
            if prompt not in seen:
                seen.add(prompt)
                problems.append((a, op, b))
        self._split_seed = split_seed
        self._test = [self._example(p, f"arithmetic-test-{i}") for i, p in enumerate(problems[:num_test])]
        self._train = [self._example(p, f"arithmetic-train-{i}") for i, p in enumerate(problems[num_test:])]
        if teacher_error > 0:
            self._train = [
                replace(ex, demonstration=flawed_demonstration(
                    *p, teacher_error, random.Random(split_seed * 1_000_003 + i), demo_style, self._wordy(ex.meta["id"])))
                for i, (ex, p) in enumerate(zip(self._train, problems[num_test:], strict=True))
            ]

    def _wordy(self, ident: str) -> random.Random | None:
        """The verbose / hedging teacher's draws for the example ``ident`` (its own stream, apart from the slips')."""
        return random.Random(f"verbose:{self._split_seed}:{ident}") if self.demo_style != "plain" else None

    def _example(self, problem: tuple[int, str, int], ident: str) -> Example:
        a, op, b = problem
        return Example(
            prompt=f"{a}{op}{b}=",
            answer=str(solve(a, op, b)),
            demonstration=demonstration(a, op, b, self.demo_style, self._wordy(ident)),
            meta={"id": ident, "difficulty": self.difficulty, "a": a, "op": op, "b": b},
        )

    def train_examples(self) -> list[Example]:
        return list(self._train)

    def test_examples(self) -> list[Example]:
        return list(self._test)

    def final_answer(self, completion: str) -> str | None:
        """The completion's final answer in canonical form (what maj@k votes on), or None."""
        got = final_answer(completion)
        return None if got is None else str(got)

    def score(self, example: Example, completion: str) -> Score:
        got = final_answer(completion)
        ok = got is not None and got == int(example.answer)
        return Score(reward=float(ok), correct=ok,
                     parts={"correct": float(ok), "format": float(got is not None)})
