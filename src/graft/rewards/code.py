"""Generated Python run against tests in the sandbox; reward = fraction of tests passed.

Tests (the example's ``answer``, see ``parse_tests``):
    assert tests   Python source, or a JSON list of sources (joined by newlines). Every
                   top-level ``assert`` is one test; other top-level statements (imports,
                   helpers) are setup, run in order, not counted. The program runs first,
                   with ``__name__ == "__solution__"`` (a ``main()`` guard does not fire).
                   The tests themselves run in the sandbox's judge, not in the program's
                   process: only the calls to the program (``solve(1)`` of ``assert solve(1)
                   == 1``) are evaluated there, and their results come back as plain data
                   (``graft.rewards.asserts``, ``_sandbox_protocol``), so the program can
                   neither see what it is compared with nor decide a comparison.
    stdin/stdout   a JSON list of ``{"input": str, "output": str}``; each pair is
                   one fresh sandboxed run of the program as ``__main__``, the
                   output compared here after stripping trailing whitespace on each
                   line and trailing blank lines. After the first timeout the
                   remaining pairs are not run (they count as failed): a program
                   that hangs once usually hangs again, and each costs ``wall_s``.

The program is the last fenced code block of the completion (```python or
```), or the whole completion when it has none.

Reward: ``passed / total`` (``partial=True``) or 1/0 (all or nothing).
Error: None when all pass, else the reason of the first failing test:
``syntax``, ``timeout``, ``memory``, ``output_limit``, ``runtime``, ``wrong_answer``.
A program value that is not plain data (an object with its own ``__eq__``, a
subclass of ``int``, a numpy scalar) is ``wrong_answer``.

What the sandbox does and does not stop, and the grader's threat model: docs/verifiers.md.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import signal
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from graft.rewards.asserts import split_tests
from graft.rewards.base import Verdict
from graft.rewards.sandbox import Limits, RunResult, run_program
from graft.tasks.base import Example

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
MAX_CODE_CHARS = 100_000
_KILLED_BY_TIME = {128 + signal.SIGXCPU, 128 + signal.SIGKILL, -signal.SIGKILL}


def extract_code(completion: str) -> str:
    """The last fenced code block, else the whole completion (capped at MAX_CODE_CHARS)."""
    blocks = _FENCE.findall(completion[-4 * MAX_CODE_CHARS:])
    return (blocks[-1] if blocks else completion)[:MAX_CODE_CHARS]


_split_cached = functools.lru_cache(maxsize=4096)(split_tests)  # RL grades many completions per test


def parse_tests(tests) -> tuple[str, object]:
    """Reference tests -> ("assert", plan) or ("stdio", [(input, output), ...]).

    ``tests``: a list (assert sources, or {"input", "output"} dicts), a JSON string of one,
    or Python source. The plan is ``asserts.split_tests``'s (cached: do not modify it).
    Raises ValueError on tests that are malformed or cannot be graded soundly (reference
    data, not a completion).
    """
    if isinstance(tests, str) and tests.lstrip().startswith("["):
        try:
            tests = json.loads(tests)
        except json.JSONDecodeError:
            pass  # Python source that starts with a list literal
    if isinstance(tests, list):
        if not tests:
            raise ValueError("tests: empty list")
        if all(isinstance(t, dict) for t in tests):
            pairs = []
            for i, t in enumerate(tests):
                if not isinstance(t.get("input"), str) or not isinstance(t.get("output"), str):
                    raise ValueError(f"tests[{i}]: needs string 'input' and 'output'")  # noqa: TRY004
                pairs.append((t["input"], t["output"]))
            return "stdio", pairs
        if all(isinstance(t, str) for t in tests):
            for i, source in enumerate(tests):
                try:
                    ast.parse(source)
                except SyntaxError as exc:
                    raise ValueError(f"tests[{i}]: not valid Python ({exc.msg}, line {exc.lineno})") from None
            tests = "\n".join(tests)
        else:
            raise ValueError("tests: a list of assert sources or of {input, output} objects")
    if isinstance(tests, str):
        try:
            return "assert", _split_cached(tests)
        except ValueError as exc:
            raise ValueError(f"tests: {exc}") from None
    raise ValueError(f"tests: expected a string or a list, got {type(tests).__name__}")


def same_output(got: str, expected: str) -> bool:
    """Equal up to trailing whitespace on each line and trailing blank lines."""
    def norm(text: str) -> list[str]:
        lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines
    return norm(got) == norm(expected)


def _terminal_reason(run: RunResult) -> str:
    """Why a run ended without reporting every test."""
    if run.stopped:
        return run.stopped
    if run.exit_code in _KILLED_BY_TIME:
        return "timeout"
    if "MemoryError" in run.stderr:
        return "memory"
    return "runtime"


def _assert_results(run: RunResult, n_tests: int) -> list[str]:
    """One reason ("ok" if passed) per test, from the judge's report; ValueError for a bad test."""
    results: dict[int, str] = {}
    for event in run.events:
        kind, _, rest = event.partition(" ")
        if kind == "bad_test":
            line, _, message = rest.partition(" ")
            raise ValueError(f"tests: line {line}: {message}")
        if kind == "judge_error":  # a bug of the grader's, never a pass: the tests it did not judge fail
            warnings.warn(f"code grader: the sandbox's judge failed ({rest}); unjudged tests count as failed",
                          RuntimeWarning, stacklevel=3)
        index, _, reason = rest.partition(" ")
        if kind == "test" and index.isdigit():
            results.setdefault(int(index), reason)
    fallback = _terminal_reason(run)
    return [reason if (reason := results.get(j)) not in (None, "lost") else fallback for j in range(n_tests)]


class CodeGrader:
    """Sandboxed Python against assert or stdin/stdout tests.

    limits:  sandbox limits per run (see ``sandbox.Limits``; ``wall_s`` etc. may be passed directly).
    workers: completions graded in parallel by ``grade_many``.
    partial: reward = fraction of tests passed (True) or all-or-nothing (False).
    isolate: use namespaces when available (turn off only to measure their cost).
    """

    name = "code"

    def __init__(self, workers: int = 1, partial: bool = True, isolate: bool = True,
                 limits: Limits | None = None, **limit_overrides):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers, self.partial, self.isolate = workers, partial, isolate
        try:
            self.limits = Limits(**{**(limits.__dict__ if limits else {}), **limit_overrides})
        except TypeError as exc:
            raise ValueError(f"code grader: {exc}") from None

    def run_tests(self, code: str, tests) -> list[str]:
        """One result per test, "ok" or a reason. ValueError if ``tests`` is malformed."""
        mode, items = parse_tests(tests)
        if mode == "assert":
            run = run_program({"mode": "assert", "code": code, "tests": items}, self.limits, self.isolate)
            return _assert_results(run, sum(item["kind"] == "test" for item in items["items"]))
        results: list[str] = []
        for stdin, expected in items:
            if results and results[-1] in ("timeout", "syntax"):
                results.append(results[-1])  # not run again: see the module docstring
                continue
            run = run_program({"mode": "stdio", "code": code, "input": stdin}, self.limits, self.isolate)
            ended = run.events[-1].split() if run.events else []
            if run.stopped:
                results.append(run.stopped)
            elif ended[:1] == ["compile"]:
                results.append("syntax")
            elif ended[:2] == ["exit", "ok"]:
                results.append("ok" if same_output(run.stdout, expected) else "wrong_answer")
            elif ended[:1] == ["exit"]:
                results.append(ended[1])
            else:
                results.append(_terminal_reason(run))
        return results

    def grade(self, completion: str, example: Example) -> Verdict:
        results = self.run_tests(extract_code(completion), example.answer)
        passed = sum(r == "ok" for r in results)
        failed = [r for r in results if r != "ok"]
        if self.partial:
            reward = passed / len(results)
        else:
            reward = float(not failed)
        return Verdict(reward, failed[0] if failed else None, {"passed": passed, "total": len(results)})

    def grade_many(self, items: Sequence[tuple[str, Example]]) -> list[Verdict]:
        if self.workers == 1 or len(items) < 2:
            return [self.grade(c, e) for c, e in items]
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(lambda item: self.grade(*item), items))
