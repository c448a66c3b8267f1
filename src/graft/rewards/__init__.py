"""Verifiers: a grader per kind of answer, chosen by name (``task.grader``), and their combination.

    math   final-answer equivalence via math-verify, time-bounded in worker processes
    code   generated Python against tests in a sandboxed subprocess (partial credit)
    sql    generated SQL against a read-only SQLite database, result sets compared
    exact  normalised exact match of the final answer
    regex  the final answer fully matched by a reference pattern
"""

import importlib

from graft.rewards.base import REASONS, Grader, Verdict
from graft.rewards.combine import FORMATS, Combined, format_reward

# name -> "module:class"; imported on first use (math pulls in sympy, code nothing heavy)
GRADERS = {
    "code": "graft.rewards.code:CodeGrader",
    "exact": "graft.rewards.exact:ExactGrader",
    "math": "graft.rewards.math:MathGrader",
    "regex": "graft.rewards.exact:RegexGrader",
    "sql": "graft.rewards.sql:SqlGrader",
}


def make_grader(name: str, **options) -> Grader:
    """A grader by name; ``options`` go to its constructor. ValueError names a bad name or option."""
    if name not in GRADERS:
        raise ValueError(f"unknown grader {name!r}; choose one of {', '.join(GRADERS)}")
    module, cls = GRADERS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)(**options)
    except TypeError as exc:
        raise ValueError(f"grader {name}: {exc}") from None


__all__ = ["FORMATS", "GRADERS", "REASONS", "Combined", "Grader", "Verdict", "format_reward",
           "make_grader"]
