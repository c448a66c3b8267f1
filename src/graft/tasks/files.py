"""A task read from a local JSONL file: one JSON object per line.

Each line needs ``prompt`` and ``answer`` (strings) and may have
``demonstration`` (a worked solution for SFT) and ``id``. The verifier is exact
match: the completion's last non-empty line, stripped, must equal the answer,
stripped. Richer graders (math, code, SQL) and other formats build on this.

The split: ``split_seed`` shuffles the rows, the first ``num_test`` are held
out, the rest (up to ``num_train``) train. A bad row is reported with its file
and line number.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from graft.errors import GraftError
from graft.tasks.base import Example, Score

_MAX_CHARS = 100_000


def iter_jsonl(path: Path):
    """(line number, object) for each non-blank line of a JSONL file.

    Raises GraftError naming ``path:line`` on invalid JSON or a line that is not a JSON object.
    The one reader of JSONL rows for tasks, ``graft verify`` and ``graft contamination``.
    """
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise GraftError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise GraftError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


def read_jsonl(path: Path) -> list[Example]:
    if not path.is_file():
        raise GraftError(f"task.path: file not found: {path}")
    examples = []
    for number, row in iter_jsonl(path):
        for field in ("prompt", "answer"):
            if not isinstance(row.get(field), str) or not row[field]:
                raise GraftError(f"{path}:{number}: field '{field}' is missing or not a non-empty string")
        demo = row.get("demonstration")
        if demo is not None and not isinstance(demo, str):
            raise GraftError(f"{path}:{number}: field 'demonstration' must be a string")
        meta = {"id": str(row.get("id", f"{path.stem}-{number}")), "line": number}
        examples.append(Example(row["prompt"], row["answer"], demo, meta))
    if not examples:
        raise GraftError(f"{path}: no rows")
    return examples


def split_rows(rows: list, path, num_train: int, num_test: int, split_seed: int) -> tuple[list, list]:
    """(train, test): rows shuffled by ``split_seed``, the first min(num_test, n // 2) held out,
    the rest (up to ``num_train``) train. The one split of every file-based task."""
    if len(rows) < 2:
        raise GraftError(f"{path}: needs at least 2 rows to hold some out for testing")
    order = list(range(len(rows)))
    random.Random(split_seed).shuffle(order)
    n_test = min(num_test, len(rows) // 2)
    return [rows[i] for i in order[n_test:]][:num_train], [rows[i] for i in order[:n_test]]


class JsonlTask:
    name = "jsonl"

    def __init__(self, path: str | None = None, num_train: int = 10000, num_test: int = 500,
                 split_seed: int = 0, difficulty: int = 1):
        if not path:
            raise GraftError("task.path: the jsonl task needs task.path=FILE.jsonl")
        self._train, self._test = split_rows(read_jsonl(Path(path)), path, num_train, num_test, split_seed)

    def train_examples(self) -> list[Example]:
        return self._train

    def test_examples(self) -> list[Example]:
        return self._test

    def score(self, example: Example, completion: str) -> Score:
        lines = [ln.strip() for ln in completion[-_MAX_CHARS:].splitlines() if ln.strip()]
        final = lines[-1] if lines else ""
        ok = final == example.answer.strip()
        return Score(reward=float(ok), correct=ok, parts={"correct": float(ok)})
