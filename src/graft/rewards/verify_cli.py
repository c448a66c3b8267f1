"""``graft verify --task {math,code,sql,exact,regex} FILE.jsonl [--workers N]``: grade completions offline.

Input: one JSON object per line, with ``completion`` (string) and
    math / exact / regex   ``answer``     (string or number; regex: a pattern)
    code                   ``tests``      (assert source, a list of asserts, or a list of {input, output})
    sql                    ``db`` + ``reference`` (SQLite file, relative to FILE's folder; reference query)
and optionally ``id``, echoed back.

Output (stdout): one JSON object per input line, in order,
``{"line": N, "id": ..., "reward": r, "error": null | reason}``, then one
summary object ``{"summary": {"count", "mean_reward", "correct", "errors":
{reason: count}, "seconds", "per_second"}}``. A failing completion is a
reward, never a crash. A malformed input line (bad JSON, missing or mistyped
field, tests that do not parse, a reference query that fails) stops the
command before any grading with one ``error: FILE:LINE: ...`` line and exit
code 2.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

from graft.errors import GraftError
from graft.tasks.base import Example
from graft.tasks.files import iter_jsonl

TASKS = ("math", "code", "sql", "exact", "regex")
_PARALLEL = ("math", "code", "sql")  # graders that take `workers`


def add_parser(sub) -> None:
    """Register ``graft verify`` on the CLI's subparsers."""
    p = sub.add_parser("verify", help="grade completions in a JSONL file: a reward per line, then a summary")
    p.add_argument("--task", required=True, choices=TASKS, help="which verifier")
    p.add_argument("file", help="JSONL: completion plus answer | tests | db + reference per line")
    p.add_argument("--workers", type=int, default=1, help="completions graded in parallel (math, code, sql)")
    p.set_defaults(func=run)


def _field(row: dict, name: str, where: str, kinds: tuple[type, ...]):
    value = row.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, kinds):
        wanted = " or ".join(k.__name__ for k in kinds)
        raise GraftError(f"{where}: field '{name}' is missing or not a {wanted}")
    return value


def read_items(path: Path, task: str) -> list[tuple[int, object, str, Example]]:
    """(line, id, completion, example) per non-blank line; GraftError naming the first bad line."""
    if not path.is_file():
        raise GraftError(f"{path}: file not found")
    items = []
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        completion = _field(row, "completion", where, (str,))
        meta: dict = {}
        if task == "code":
            from graft.rewards.code import parse_tests

            tests = _field(row, "tests", where, (str, list))
            try:
                parse_tests(tests)
            except ValueError as exc:
                raise GraftError(f"{where}: field 'tests': {exc}") from None
            answer = tests if isinstance(tests, str) else json.dumps(tests)
        elif task == "sql":
            db = Path(_field(row, "db", where, (str,)))
            meta["db"] = str(db if db.is_absolute() else path.parent / db)
            answer = _field(row, "reference", where, (str,))
        else:
            answer = str(_field(row, "answer", where, (str, int, float)))
        items.append((number, row.get("id"), completion, Example("", answer, None, meta)))
    if not items:
        raise GraftError(f"{path}: no lines to verify")
    return items


def _check_references(grader, task: str, items, path: Path) -> None:
    """References that cannot be graded (a failing SQL reference, a bad pattern) are input errors."""
    if task not in ("sql", "regex"):
        return
    import re

    for number, _, _, example in items:
        try:
            if task == "sql":
                grader.reference_rows(example.meta["db"], example.answer)
            else:
                re.compile(example.answer)
        except (ValueError, re.error) as exc:
            field = "reference" if task == "sql" else "answer"
            raise GraftError(f"{path}:{number}: field '{field}': {exc}") from None


def run(args) -> int:
    from graft.rewards import make_grader

    if args.workers < 1:
        raise GraftError(f"--workers must be >= 1, got {args.workers}")
    path = Path(args.file)
    items = read_items(path, args.task)
    grader = make_grader(args.task, **({"workers": args.workers} if args.task in _PARALLEL else {}))
    try:
        _check_references(grader, args.task, items, path)
        start = time.perf_counter()
        verdicts = grader.grade_many([(completion, example) for _, _, completion, example in items])
        seconds = time.perf_counter() - start
    finally:
        getattr(grader, "close", lambda: None)()
    out = sys.stdout
    for (number, ident, _, _), verdict in zip(items, verdicts):
        record = {"line": number, **({"id": ident} if ident is not None else {}),
                  "reward": round(verdict.reward, 6), "error": verdict.error}
        out.write(json.dumps(record) + "\n")
    errors = Counter(v.error for v in verdicts if v.error is not None)
    summary = {
        "count": len(verdicts),
        "mean_reward": round(sum(v.reward for v in verdicts) / len(verdicts), 6),
        "correct": sum(v.correct for v in verdicts),
        "errors": dict(sorted(errors.items())),
        "seconds": round(seconds, 3),
        "per_second": round(len(verdicts) / seconds, 2) if seconds > 0 else None,
    }
    out.write(json.dumps({"summary": summary}) + "\n")
    out.flush()
    return 0
