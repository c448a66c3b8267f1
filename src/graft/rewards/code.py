"""Generated Python run against tests in the sandbox; reward = fraction of tests passed.

Tests (the example's ``answer``, see ``parse_tests``):
    assert tests   Python source, or a JSON list of sources. Every top-level
                   ``assert`` is one test; other top-level statements (imports,
                   helpers) are setup, run in order, not counted. All run in
                   one process, in one namespace after the program (run with
                   ``__name__ == "__solution__"``, so a ``main()`` guard does not
                   fire).
    stdin/stdout   a JSON list of ``{"input": str, "output": str}``; each pair is
                   one fresh sandboxed run of the program as ``__main__``, the
                   output compared after stripping trailing whitespace on each
                   line and trailing blank lines. After the first timeout the
                   remaining pairs are not run (they count as failed): a program
                   that hangs once usually hangs again, and each costs ``wall_s``.

The program is the last fenced code block of the completion (```python or
```), or the whole completion when it has none.

Reward: ``passed / total`` (``partial=True``) or 1/0 (all or nothing).
Error: None when all pass, else the reason of the first failing test:
``syntax``, ``timeout``, ``memory``, ``output_limit``, ``runtime``, ``wrong_answer``.

What the sandbox does and does not stop: docs/verifiers.md. One thing it does
not try to stop: a program that deliberately inspects the harness (its frames,
its memory) can forge passing results; the sandbox protects the host, and the
reward against accidents and crude hacks (``sys.exit(0)``, ``os._exit``,
printing fake results), not against a program written to attack the grader.
"""

from __future__ import annotations

import ast
import json
import re
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

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


def parse_tests(tests) -> tuple[str, list]:
    """Reference tests -> ("assert", [[kind, source], ...]) or ("stdio", [(input, output), ...]).

    ``tests``: a list (assert sources, or {"input", "output"} dicts), a JSON string of one,
    or Python source. Raises ValueError on malformed tests (reference data, not a completion).
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
            items = [item for source in tests for item in _split_asserts(source)]
            return "assert", items
        raise ValueError("tests: a list of assert sources or of {input, output} objects")
    if isinstance(tests, str):
        return "assert", _split_asserts(tests)
    raise ValueError(f"tests: expected a string or a list, got {type(tests).__name__}")


def _split_asserts(source: str) -> list[list[str]]:
    """Top-level statements of trusted test source: asserts are tests, the rest setup (parse only)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"tests: not valid Python ({exc.msg}, line {exc.lineno})") from None
    items = [["test" if isinstance(node, ast.Assert) else "setup", ast.get_source_segment(source, node)]
             for node in tree.body]
    if not any(kind == "test" for kind, _ in items):
        raise ValueError("tests: no assert statement")
    return items


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


def _assert_results(run: RunResult, n_items: int) -> list[str]:
    """One reason ("ok" if passed) per item index, from the runner's events."""
    results: dict[int, str] = {}
    fallback = None
    for event in run.events:
        parts = event.split()
        if parts[0] == "compile":
            fallback = "syntax"
        elif parts[0] == "load":
            fallback = parts[1]
        elif parts[0] in ("test", "setup-step") and len(parts) == 3 and parts[1].isdigit():
            results.setdefault(int(parts[1]), parts[2])
    fallback = fallback or _terminal_reason(run)
    return [results.get(i, fallback) for i in range(n_items)]


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
            reasons = _assert_results(run, len(items))
            return [reason for (kind, _), reason in zip(items, reasons) if kind == "test"]
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
