"""Short answers: exact match after normalisation, or a regular expression.

The final answer of a completion (``final_answer``): the last
``<answer>...</answer>``, else the last ``\\boxed{...}``, else the text after
the last "answer is" / "answer:", else the last non-empty line. It is then
normalised: whitespace runs become one space, ends are stripped, a trailing
period is dropped, and (``case_sensitive=False``) letters are case-folded.

``regex``: the reference ``answer`` is a Python regular expression that must
match the whole normalised final answer (``re.fullmatch``). Reference patterns
are trusted data; the answer they run on is capped at ``MAX_ANSWER_CHARS`` so
an ordinary pattern stays fast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from graft.rewards.base import Verdict, grade_serially
from graft.rewards.math import last_boxed
from graft.tasks.base import Example

MAX_ANSWER_CHARS = 1_000
_SAID = re.compile(r"answer\s*(?:is\s*:?|:)[ \t]*([^\n]+)", re.IGNORECASE)


def final_answer(completion: str) -> str | None:
    """The completion's final answer (see the module docstring), un-normalised, or None."""
    text = completion[-20 * MAX_ANSWER_CHARS:]
    close = text.rfind("</answer>")
    if close >= 0 and (open_ := text.rfind("<answer>", 0, close)) >= 0:
        return text[open_ + len("<answer>"):close]
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    said = None
    for said in _SAID.finditer(text):
        pass
    if said is not None:
        return said.group(1)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def normalise(text: str, case_sensitive: bool = False, whitespace: bool = True) -> str:
    """Collapse whitespace (if ``whitespace``), strip, drop one trailing period, case-fold."""
    if whitespace:
        text = re.sub(r"\s+", " ", text)
    text = text.strip()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text if case_sensitive else text.casefold()


class ExactGrader:
    """Final answer equal to the reference, both normalised."""

    name = "exact"

    def __init__(self, case_sensitive: bool = False, whitespace: bool = True):
        self.case_sensitive, self.whitespace = case_sensitive, whitespace

    def _answer(self, completion: str) -> str | None:
        found = final_answer(completion)
        if found is None or len(found) > MAX_ANSWER_CHARS:
            return None
        return normalise(found, self.case_sensitive, self.whitespace)

    def grade(self, completion: str, example: Example) -> Verdict:
        got = self._answer(completion)
        if got is None:
            return Verdict(0.0, "no_answer")
        ok = got == normalise(example.answer, self.case_sensitive, self.whitespace)
        return Verdict(float(ok), None if ok else "wrong_answer", {"answer": got[:80]})

    def grade_many(self, items: Sequence[tuple[str, Example]]) -> list[Verdict]:
        return grade_serially(self, items)

    def final_answer(self, completion: str) -> str | None:
        return self._answer(completion)


class RegexGrader(ExactGrader):
    """Final answer fully matched by the reference regular expression (``re.fullmatch``)."""

    name = "regex"

    def grade(self, completion: str, example: Example) -> Verdict:
        got = self._answer(completion)
        if got is None:
            return Verdict(0.0, "no_answer")
        try:
            pattern = re.compile(example.answer, 0 if self.case_sensitive else re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"regex grader: the reference is not a valid pattern ({exc})") from None
        ok = pattern.fullmatch(got) is not None
        return Verdict(float(ok), None if ok else "wrong_answer", {"answer": got[:80]})
