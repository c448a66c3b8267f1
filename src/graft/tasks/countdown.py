"""Countdown: reach a target from given numbers with + - * /, each number used at most once.

Formats (difficulty k = how many numbers are given, 2..5; numbers 1..20):
    prompt:         "4,7,9>55:"                       numbers, then the target
    demonstration:  "9-4=5,7*5=35"                    one operation per step, comma-separated;
                    each operand is a given number or an earlier step's result, each used once
    verified:       by a hand-written parser (never eval): every step's arithmetic is right,
                    results are non-negative integers (division exact), operands available,
                    and the last step's result equals the target. Reward 1 if so, else 0.
The demonstration is the construction that made the problem (a solution by
design), not necessarily the shortest one.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from graft.tasks.base import Example, Score

_STEP = re.compile(r"^\s*(\d{1,9})\s*([-+*/])\s*(\d{1,9})\s*=\s*(\d{1,12})\s*$")
_MAX_CHARS = 512
_MAX_STEPS = 16


def apply(x: int, op: str, y: int) -> int | None:
    """x op y if it is a non-negative integer, else None."""
    if op == "+":
        return x + y
    if op == "-":
        return x - y if x >= y else None
    if op == "*":
        return x * y
    return x // y if y and x % y == 0 else None


def check(numbers: tuple[int, ...], target: int, completion: str) -> tuple[bool, int]:
    """(solved, number of valid steps before the first invalid one)."""
    text = completion[:_MAX_CHARS].strip()
    available = Counter(numbers)
    valid, last = 0, None
    for raw in text.split(",")[:_MAX_STEPS] if text else []:
        m = _STEP.match(raw)
        if not m:
            return False, valid
        x, op, y, z = int(m[1]), m[2], int(m[3]), int(m[4])
        if apply(x, op, y) != z:
            return False, valid
        for operand in (x, y):
            if available[operand] <= 0:
                return False, valid
            available[operand] -= 1
        available[z] += 1
        valid, last = valid + 1, z
    return (valid > 0 and last == target), valid


def construct(rng: random.Random, k: int) -> tuple[tuple[int, ...], int, str]:
    """Random numbers and a random way of combining all of them: (numbers, target, steps)."""
    while True:
        numbers = tuple(rng.randint(1, 20) for _ in range(k))
        pool, steps = list(numbers), []
        while len(pool) > 1:
            i, j = rng.sample(range(len(pool)), 2)
            x, y = pool[i], pool[j]
            ops = [op for op in "+-*/" if apply(x, op, y) not in (None, 0)]
            op = rng.choice(ops) if ops else "+"
            z = apply(x, op, y)
            steps.append(f"{x}{op}{y}={z}")
            pool = [v for n, v in enumerate(pool) if n not in (i, j)] + [z]
        if 1 <= pool[0] <= 999:
            return numbers, pool[0], ",".join(steps)


class CountdownTask:
    name = "countdown"

    def __init__(self, difficulty: int = 3, num_train: int = 10000, num_test: int = 500,
                 split_seed: int = 0):
        if not 2 <= difficulty <= 5:
            raise ValueError(f"difficulty must be 2..5 (how many numbers), got {difficulty}")
        limit = {2: 1500, 3: 60000}.get(difficulty, 10**6)
        if num_train + num_test > limit:
            raise ValueError(f"num_train + num_test = {num_train + num_test} is too many distinct "
                             f"problems for difficulty {difficulty} (at most {limit})")
        rng = random.Random(split_seed)
        seen: set[str] = set()
        items: list[Example] = []
        while len(items) < num_train + num_test:
            numbers, target, steps = construct(rng, difficulty)
            prompt = ",".join(map(str, numbers)) + f">{target}:"
            if prompt in seen:
                continue
            seen.add(prompt)
            kind = "test" if len(items) < num_test else "train"
            index = len(items) if kind == "test" else len(items) - num_test
            items.append(Example(prompt, str(target), steps, {
                "id": f"countdown-{kind}-{index}", "difficulty": difficulty,
                "numbers": numbers, "target": target,
            }))
        self._test, self._train = items[:num_test], items[num_test:]

    def train_examples(self) -> list[Example]:
        return self._train

    def test_examples(self) -> list[Example]:
        return self._test

    def score(self, example: Example, completion: str) -> Score:
        solved, steps = check(example.meta["numbers"], example.meta["target"], completion)
        return Score(float(solved), solved, {"correct": float(solved), "format": float(steps > 0),
                                             "valid_steps": float(steps)})
