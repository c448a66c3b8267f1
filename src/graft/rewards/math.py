"""Math answers: extract the final answer, then decide equivalence with math-verify.

Extraction (``extract_answer``), first rule that matches wins, searching only
the last ``TAIL_CHARS`` characters of the completion:
    1. ``<answer>...</answer>`` (the last pair; a ``\\boxed{}`` inside it wins);
    2. the last ``\\boxed{...}`` / ``\\fbox{...}``, braces balanced (nesting allowed);
    3. the last "answer is X", "answer: X" or "#### X" (X runs to the end of its line);
    4. the last number (``-1,234.5``, ``3/4``, ``12%``).

Equivalence is math-verify's ``verify(gold, target)`` (gold first: it is not
symmetric) on both answers wrapped in ``\\boxed{}``, which sidesteps its known
miss on bare ``\\dfrac{9}{7}`` (see shared REFERENCES, "Libraries' sharp
edges"). Extraction configs follow its README's advice for rewards,
``boxed_match_priority=0`` and ``nits`` off, with one departure:
``malformed_operators`` stays on, because without it valid LaTeX such as
``\\frac12`` and ``\\sqrt9`` parses to nothing. It therefore inherits
math-verify's own conventions, e.g. ``50%`` equals ``50`` and ``0.5``;
``x=2`` equals ``2``; floats are compared after rounding to 6 decimals (``1/3`` vs ``0.333`` is wrong, ``0.333333`` is right).

Time: math-verify's own timeout is ``SIGALRM`` (main thread only), so it is
disabled and each comparison runs in a worker process with a hard deadline
(``workers.TimedPool``): an overrun kills the worker and is graded
``timeout``. Before that, ``reject_reason`` refuses answers that are known to
blow up sympy or the LaTeX parser (towers of exponents, huge exponents or
factorials, deep nesting, long strings); the deadline is the backstop for
anything the filter misses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from graft.rewards.base import Verdict
from graft.rewards.workers import TimedPool
from graft.tasks.base import Example

TAIL_CHARS = 20_000     # only the end of a completion is searched for its answer
MAX_ANSWER_CHARS = 300  # a final answer longer than this is not an answer
MAX_DEPTH = 20          # brackets nested deeper than this are refused
MAX_POWERS = 6          # more ^ / ** than this in one answer is refused

_ANSWER_IS = re.compile(r"(?:answer\s*(?:is|:|=)|####)[ \t]*:?[ \t]*([^\n]+)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")  # "is 3. So" -> "3"; keeps "3.5"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?%?")
_TOWER = re.compile(r"(?:\^|\*\*)\s*[{(]?\s*[-+]?[\w.\\]+\s*[})]?\s*(?:\^|\*\*)")
_BIG_EXPONENT = re.compile(r"(?:\^|\*\*)\s*[{(]?\s*[-+]?\d{5,}")
_BIG_FACTORIAL = re.compile(r"\d{6,}\s*!")


def _balanced(text: str, start: int) -> str | None:
    """The text inside the brace group opening at ``text[start] == "{"``, or None if unclosed."""
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces kept), else None."""
    boxed, fbox = text.rfind("\\boxed"), text.rfind("\\fbox")
    if boxed < 0 and fbox < 0:
        return None
    i = boxed + len("\\boxed") if boxed > fbox else fbox + len("\\fbox")
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        return _balanced(text, i)
    word = re.match(r"[^\s$]+", text[i:])  # "\boxed 5"
    return word.group(0) if word else None


def _clean(answer: str) -> str:
    answer = answer.strip()
    for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(left) and answer.endswith(right) and len(answer) >= len(left) + len(right):
            answer = answer[len(left) : len(answer) - len(right)].strip()
    return answer.rstrip(".").strip()


def extract_answer(completion: str) -> str | None:
    """The completion's final answer as a string (see the module docstring), or None."""
    text = completion[-TAIL_CHARS:]
    close = text.rfind("</answer>")
    if close >= 0:
        open_ = text.rfind("<answer>", 0, close)
        if open_ >= 0:
            inner = text[open_ + len("<answer>") : close]
            boxed = last_boxed(inner)
            answer = _clean(boxed if boxed is not None else inner)
            return answer or None
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return _clean(boxed)
    said = None
    for said in _ANSWER_IS.finditer(text):
        pass
    if said is not None:
        value = _clean(_SENTENCE_END.split(said.group(1))[0])
        if value:
            return value
    number = None
    for number in _NUMBER.finditer(text):
        pass
    return number.group(0).rstrip(",") if number is not None else None


def reject_reason(answer: str) -> str | None:
    """Why an answer is refused before parsing (hostile or absurd), or None if it may be parsed."""
    if len(answer) > MAX_ANSWER_CHARS:
        return f"longer than {MAX_ANSWER_CHARS} characters"
    depth = deepest = 0
    for ch in answer:
        if ch in "({[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")}]":
            depth -= 1
    if deepest > MAX_DEPTH:
        return f"brackets nested deeper than {MAX_DEPTH}"
    if answer.count("^") + answer.count("**") > MAX_POWERS:
        return f"more than {MAX_POWERS} powers"
    if _TOWER.search(answer):
        return "tower of exponents"
    if _BIG_EXPONENT.search(answer):
        return "exponent with 5 or more digits"
    if _BIG_FACTORIAL.search(answer):
        return "factorial of a number with 6 or more digits"
    return None


def _normal(answer: str) -> str:
    return re.sub(r"\s+", "", answer).replace("\\!", "").replace("\\,", "")


def gold_answer(answer: str) -> str:
    """The reference in the form graded: its boxed content if it has one, else itself, cleaned."""
    boxed = last_boxed(answer)
    return _clean(boxed if boxed is not None else answer)


class MathGrader:
    """Final-answer equivalence through math-verify, each comparison bounded by ``timeout`` seconds.

    workers: processes doing comparisons (and threads feeding them in ``grade_many``).
    """

    name = "math"

    def __init__(self, timeout: float = 5.0, workers: int = 1):
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.timeout = float(timeout)
        self.workers = workers
        self.pool = TimedPool("graft.rewards._math_worker", workers)

    def grade(self, completion: str, example: Example) -> Verdict:
        pred = extract_answer(completion)
        if pred is None:
            return Verdict(0.0, "no_answer")
        why = reject_reason(pred)
        if why is not None:
            return Verdict(0.0, "rejected", {"answer": pred[:80], "why": why})
        gold = gold_answer(example.answer)
        if _normal(pred) == _normal(gold):  # fast path: identical up to spacing
            return Verdict(1.0, None, {"answer": pred})
        reply = self.pool.call({"gold": gold, "pred": pred}, self.timeout)
        if "error" in reply:
            return Verdict(0.0, reply["error"], {"answer": pred})
        ok = bool(reply["equal"])
        return Verdict(float(ok), None if ok else "wrong_answer", {"answer": pred})

    def grade_many(self, items: Sequence[tuple[str, Example]]) -> list[Verdict]:
        if self.workers == 1 or len(items) < 2:
            return [self.grade(c, e) for c, e in items]
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(lambda item: self.grade(*item), items))

    def final_answer(self, completion: str) -> str | None:
        return extract_answer(completion)

    def close(self) -> None:
        self.pool.close()
