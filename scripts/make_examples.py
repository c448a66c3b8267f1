"""Write the shipped math and code examples: src/graft/data/{math/problems.jsonl, code/problems.jsonl}.

Math: word problems from a few templates with fixed numbers, each with its
final answer and a worked solution ending in ``\\boxed{answer}``. Code: small
function problems with assert tests and stdin/stdout problems with input/output
pairs, each with a reference solution in a fenced block. Everything is
printable ASCII (the built-in character tokenizer's alphabet). Deterministic:
re-running rewrites the same files. Run: ``python scripts/make_examples.py``.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "src" / "graft" / "data"


def _num(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"\\frac{{{x.numerator}}}{{{x.denominator}}}"


def math_problems() -> list[dict]:
    rows = []
    for a, b, c in [(12, 5, 3), (30, 12, 7), (7, 9, 2), (45, 20, 15), (18, 4, 6), (100, 37, 25)]:
        rows.append({
            "question": f"Mia has {a} apples. She buys {b} more and gives {c} to a friend. How many apples does she have now?",
            "answer": str(a + b - c),
            "solution": f"She starts with {a}. After buying: {a} + {b} = {a + b}. After giving: {a + b} - {c} = "
                        f"{a + b - c}. The answer is \\boxed{{{a + b - c}}}.",
        })
    for n, p in [(4, 3), (6, 5), (12, 2), (8, 7), (5, 11), (9, 4)]:
        rows.append({
            "question": f"A pencil costs {p} dollars. How much do {n} pencils cost, in dollars?",
            "answer": str(n * p),
            "solution": f"Each costs {p}, so {n} cost {n} * {p} = {n * p}. The answer is \\boxed{{{n * p}}}.",
        })
    for total, parts in [(3, 4), (5, 8), (7, 2), (10, 4), (9, 6), (2, 3)]:
        share = Fraction(total, parts)
        rows.append({
            "question": f"{total} pizzas are shared equally by {parts} friends. How many pizzas does each friend get? "
                        "Give a fraction or an integer.",
            "answer": _num(share),
            "solution": f"Each gets {total} / {parts} = {_num(share)} pizzas. The answer is \\boxed{{{_num(share)}}}.",
        })
    for price, pct in [(80, 25), (50, 10), (120, 50), (200, 15), (40, 75), (60, 20)]:
        new = Fraction(price * (100 - pct), 100)
        rows.append({
            "question": f"A coat costs {price} dollars. It is on sale for {pct}% off. What is the sale price in dollars?",
            "answer": _num(new),
            "solution": f"The discount is {pct}% of {price} = {_num(Fraction(price * pct, 100))}. "
                        f"{price} - {_num(Fraction(price * pct, 100))} = {_num(new)}. The answer is \\boxed{{{_num(new)}}}.",
        })
    for speed, hours in [(60, 3), (45, 2), (80, 5), (12, 4), (90, 2), (7, 6)]:
        rows.append({
            "question": f"A train moves at {speed} km per hour for {hours} hours. How many km does it travel?",
            "answer": str(speed * hours),
            "solution": f"Distance = speed * time = {speed} * {hours} = {speed * hours}. "
                        f"The answer is \\boxed{{{speed * hours}}}.",
        })
    for x, y in [(3, 4), (5, 12), (8, 15), (6, 8), (9, 12), (20, 21)]:
        h = int((x * x + y * y) ** 0.5)
        rows.append({
            "question": f"A right triangle has legs of length {x} and {y}. How long is its hypotenuse?",
            "answer": str(h),
            "solution": f"By Pythagoras, {x}^2 + {y}^2 = {x * x} + {y * y} = {h * h}, and the square root of "
                        f"{h * h} is {h}. The answer is \\boxed{{{h}}}.",
        })
    for i, row in enumerate(rows):
        row["id"] = f"math-{i}"
    return rows


def code_problems() -> list[dict]:
    f = [
        ("Write a function add(a, b) that returns the sum of two integers.",
         "def add(a, b):\n    return a + b",
         ["assert add(1, 2) == 3", "assert add(-4, 4) == 0", "assert add(10, 5) == 15"]),
        ("Write a function is_even(n) that returns True when n is even, else False.",
         "def is_even(n):\n    return n % 2 == 0",
         ["assert is_even(4) is True", "assert is_even(7) is False", "assert is_even(0) is True"]),
        ("Write a function reverse(s) that returns the string s reversed.",
         "def reverse(s):\n    return s[::-1]",
         ["assert reverse('abc') == 'cba'", "assert reverse('') == ''", "assert reverse('aba') == 'aba'"]),
        ("Write a function max_of(xs) that returns the largest number in a non-empty list.",
         "def max_of(xs):\n    best = xs[0]\n    for x in xs:\n        if x > best:\n            best = x\n    return best",
         ["assert max_of([1, 5, 3]) == 5", "assert max_of([-2, -9]) == -2", "assert max_of([7]) == 7"]),
        ("Write a function count_vowels(s) that counts the letters a, e, i, o, u in s (lower case).",
         "def count_vowels(s):\n    return sum(ch in 'aeiou' for ch in s)",
         ["assert count_vowels('hello') == 2", "assert count_vowels('xyz') == 0", "assert count_vowels('aeiou') == 5"]),
        ("Write a function factorial(n) that returns n! for n >= 0.",
         "def factorial(n):\n    out = 1\n    for k in range(2, n + 1):\n        out *= k\n    return out",
         ["assert factorial(0) == 1", "assert factorial(5) == 120", "assert factorial(10) == 3628800"]),
        ("Write a function fib(n) that returns the n-th Fibonacci number, with fib(0) = 0 and fib(1) = 1.",
         "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
         ["assert fib(0) == 0", "assert fib(1) == 1", "assert fib(10) == 55", "assert fib(20) == 6765"]),
        ("Write a function is_palindrome(s) that returns True when s reads the same backwards.",
         "def is_palindrome(s):\n    return s == s[::-1]",
         ["assert is_palindrome('racecar')", "assert not is_palindrome('abc')", "assert is_palindrome('')"]),
        ("Write a function unique_sorted(xs) that returns the distinct values of xs in increasing order.",
         "def unique_sorted(xs):\n    return sorted(set(xs))",
         ["assert unique_sorted([3, 1, 3, 2]) == [1, 2, 3]", "assert unique_sorted([]) == []"]),
        ("Write a function gcd(a, b) that returns the greatest common divisor of two positive integers.",
         "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a",
         ["assert gcd(12, 18) == 6", "assert gcd(7, 5) == 1", "assert gcd(100, 10) == 10"]),
    ]
    io = [
        ("Read two integers on one line and print their sum.",
         "a, b = map(int, input().split())\nprint(a + b)",
         [("1 2\n", "3\n"), ("-5 5\n", "0\n"), ("100 23\n", "123\n")]),
        ("Read a line of text and print it in upper case.",
         "print(input().upper())",
         [("hello\n", "HELLO\n"), ("MiXeD 1\n", "MIXED 1\n")]),
        ("Read an integer n, then print the numbers 1 to n, one per line.",
         "n = int(input())\nfor i in range(1, n + 1):\n    print(i)",
         [("3\n", "1\n2\n3\n"), ("1\n", "1\n")]),
        ("Read an integer n, then n integers on the next line; print their maximum.",
         "n = int(input())\nxs = list(map(int, input().split()))\nprint(max(xs))",
         [("3\n4 9 2\n", "9\n"), ("1\n-7\n", "-7\n")]),
        ("Read a line of words and print how many words it has.",
         "print(len(input().split()))",
         [("the quick brown fox\n", "4\n"), ("one\n", "1\n")]),
        ("Read an integer n and print YES if it is prime, else NO.",
         "n = int(input())\nok = n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))\nprint('YES' if ok else 'NO')",
         [("7\n", "YES\n"), ("12\n", "NO\n"), ("1\n", "NO\n"), ("97\n", "YES\n")]),
    ]
    rows = []
    for i, (question, solution, tests) in enumerate(f):
        rows.append({"id": f"code-f{i}", "question": question, "tests": tests,
                     "solution": f"```python\n{solution}\n```"})
    for i, (question, solution, pairs) in enumerate(io):
        rows.append({"id": f"code-io{i}", "question": question,
                     "tests": [{"input": a, "output": b} for a, b in pairs],
                     "solution": f"```python\n{solution}\n```"})
    return rows


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)


def code_verify_lines(problems: list[dict]) -> list[dict]:
    """Input for ``graft verify --task code``: per problem the reference solution and a wrong one,
    plus one syntax error and one infinite loop (the throughput in docs/verifiers.md is measured on it)."""
    lines = []
    for row in problems:
        lines.append({"id": f"{row['id']}-ref", "completion": row["solution"], "tests": row["tests"]})
        wrong = "```python\nprint(0)\n```" if isinstance(row["tests"][0], dict) else \
            "```python\n" + row["solution"].split("```python\n")[1].split("(")[0] + "(*args):\n    return None\n```"
        lines.append({"id": f"{row['id']}-wrong", "completion": wrong, "tests": row["tests"]})
    lines.append({"id": "syntax", "completion": "def add(a, b) return a + b", "tests": problems[0]["tests"]})
    lines.append({"id": "loop", "completion": "def add(a, b):\n    while True:\n        pass",
                  "tests": problems[0]["tests"]})
    return lines


if __name__ == "__main__":
    code = code_problems()
    write(DATA / "math" / "problems.jsonl", math_problems())
    write(DATA / "code" / "problems.jsonl", code)
    write(DATA / "code" / "verify.jsonl", code_verify_lines(code))
    print(f"wrote {DATA}/math/problems.jsonl, {DATA}/code/problems.jsonl and verify.jsonl")
