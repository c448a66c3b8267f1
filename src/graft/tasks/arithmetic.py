"""Integer addition and subtraction with worked, column-by-column solutions.

Formats (difficulty d = digits per operand, each operand drawn from [0, 10^d)):
    prompt:         "47+85="                      (subtraction: "85-47=", always a >= b)
    demonstration:  "7+5+0=12,4+8+1=13,A:132"     one step per column, right to left:
                    digit + digit + carry = column sum; for subtraction
                    "15-7-0=8,8-4-1=3,A:38": digit (+10 when borrowing) - digit - borrow = digit
    final answer:   the integer after the last "A:"; reward 1 when it equals a + b (a - b), else 0.
"""

from __future__ import annotations

import random
import re

from graft.tasks.base import Example, Score

_ANSWER = re.compile(r"A:(-?\d{1,40})")
_MAX_CHARS = 4096


def _digits(x: int, width: int) -> list[int]:
    return [(x // 10**i) % 10 for i in range(width)]  # least significant first


def demonstration(a: int, op: str, b: int) -> str:
    width = max(len(str(a)), len(str(b)))
    steps, carry = [], 0
    for da, db in zip(_digits(a, width), _digits(b, width)):
        if op == "+":
            s = da + db + carry
            steps.append(f"{da}+{db}+{carry}={s}")
            carry = s // 10
        else:
            borrow_next = 1 if da - db - carry < 0 else 0
            top = da + 10 * borrow_next
            steps.append(f"{top}-{db}-{carry}={top - db - carry}")
            carry = borrow_next
    result = a + b if op == "+" else a - b
    return ",".join(steps) + f",A:{result}"


def final_answer(completion: str) -> int | None:
    found = _ANSWER.findall(completion[-_MAX_CHARS:])
    return int(found[-1]) if found else None


class ArithmeticTask:
    name = "arithmetic"

    def __init__(self, difficulty: int = 2, num_train: int = 10000, num_test: int = 500,
                 split_seed: int = 0):
        if not 1 <= difficulty <= 6:
            raise ValueError(f"difficulty must be 1..6 (digits per operand), got {difficulty}")
        n = 10**difficulty
        space = n * n + n * (n + 1) // 2  # ordered (a, b) pairs for +, plus a >= b pairs for -
        if num_train + num_test > space * 3 // 4:
            raise ValueError(
                f"num_train + num_test = {num_train + num_test} is too many distinct problems for "
                f"difficulty {difficulty} (at most {space * 3 // 4})"
            )
        self.difficulty = difficulty
        rng = random.Random(split_seed)
        seen: set[str] = set()
        items: list[Example] = []
        hi = 10**difficulty - 1
        while len(items) < num_train + num_test:
            a, b, op = rng.randint(0, hi), rng.randint(0, hi), rng.choice("+-")
            if op == "-" and a < b:
                a, b = b, a
            prompt = f"{a}{op}{b}="
            if prompt in seen:
                continue
            seen.add(prompt)
            answer = a + b if op == "+" else a - b
            items.append(Example(prompt, str(answer), demonstration(a, op, b),
                                 {"difficulty": difficulty}))
        self._test = [_with_id(ex, f"arithmetic-test-{i}") for i, ex in enumerate(items[:num_test])]
        self._train = [_with_id(ex, f"arithmetic-train-{i}") for i, ex in enumerate(items[num_test:])]

    def train_examples(self) -> list[Example]:
        return self._train

    def test_examples(self) -> list[Example]:
        return self._test

    def score(self, example: Example, completion: str) -> Score:
        got = final_answer(completion)
        ok = got is not None and str(got) == example.answer
        return Score(float(ok), ok, {"correct": float(ok), "format": float(got is not None)})


def _with_id(ex: Example, ident: str) -> Example:
    return Example(ex.prompt, ex.answer, ex.demonstration, {**ex.meta, "id": ident})
