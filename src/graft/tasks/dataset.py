"""The ``dataset`` task: rows from a local file, a prompt template, and a grader chosen by name.

Sources (``task.path``; ``graft:data/...`` names the examples shipped in the package), by suffix:
    .jsonl / .ndjson   one JSON object per line          (located as file:LINE)
    .csv               a header row, then one row a line  (file:LINE, the physical line)
    .parquet           any Parquet file, via pyarrow       (file: row N, 1-based)
    a directory        ``datasets.save_to_disk`` output; a DatasetDict uses its "train" split

Fields (``task.columns`` maps a field to the column that holds it; unmapped
fields are read from the column of the same name):
    prompt         the prompt text (unless ``task.template`` builds it)
    answer         what the grader checks against: a final answer (math, exact),
                   a pattern (regex), tests (code: source, or a list / JSON list of
                   asserts or {input, output} pairs), the reference query (sql)
    demonstration  optional worked solution for SFT
    id             optional stable id (default: file stem + location)
    db             sql only: the SQLite file, relative to the data file's folder

Reward: ``task.grader``'s, or a function of the user's (``task.reward: package.module:function``,
``graft.rewards.function``; docs/tasks.md) in its place; with a function, ``answer`` is needed only
when the grader still decides ``correct`` (``task.reward_correct_at: null``), and a TRL-style
function gets each row's other columns (``meta["columns"]``: every column but the prompt column).

Prompt: ``task.template`` is ``str.format`` over the row's columns (e.g.
``"Question: {question}\\nAnswer:"``); with ``task.chat_template`` the result
becomes the user turn of the model tokenizer's chat template, when the model
has one (``render_prompt``). A bad row stops loading with one line naming the
file, the line or row and the field.
"""

from __future__ import annotations

import csv
import json
import re
import string
from collections.abc import Iterator
from pathlib import Path

from graft.errors import GraftError
from graft.tasks.base import Example, Score
from graft.tasks.files import iter_jsonl, split_rows

FIELDS = ("prompt", "answer", "demonstration", "id", "db")
_MAX_FIELD_CHARS = 1_000_000


def resolve_path(path: str | Path) -> Path:
    """``graft:data/...`` names a file shipped inside the package; anything else is a plain path."""
    text = str(path)
    if text.startswith("graft:"):
        from importlib import resources

        return Path(str(resources.files("graft") / text[len("graft:"):]))
    return Path(path)


def iter_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(location, row) for every row of a JSONL, CSV or Parquet file or a saved ``datasets`` directory."""
    if not path.exists():
        raise GraftError(f"task.path: not found: {path}")
    suffix = path.suffix.lower()
    if path.is_dir():
        yield from _saved_dataset_rows(path)
    elif suffix in (".jsonl", ".ndjson"):
        for number, row in iter_jsonl(path):
            yield f"{path}:{number}", row
    elif suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            try:
                for row in reader:
                    if None in row:
                        raise GraftError(f"{path}:{reader.line_num}: more cells than header columns")
                    yield f"{path}:{reader.line_num}", row
            except csv.Error as exc:
                raise GraftError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds; all mean "unreadable"
            raise GraftError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
        for i, row in enumerate(table.to_pylist(), start=1):
            yield f"{path}: row {i}", row
    else:
        raise GraftError(f"task.path: {path}: unknown format (expected .jsonl, .csv, .parquet or a directory "
                         "written by datasets.save_to_disk)")


def _saved_dataset_rows(path: Path) -> Iterator[tuple[str, dict]]:
    try:
        import datasets
    except ImportError:
        raise GraftError(f"task.path: {path} is a directory; reading it needs `pip install datasets`") from None
    try:
        data = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise GraftError(f"task.path: {path}: not a saved datasets directory ({exc})") from None
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data:
            raise GraftError(f"task.path: {path} holds splits {sorted(data)}; expected a 'train' split")
        data = data["train"]
    for i, row in enumerate(data, start=1):
        yield f"{path}: row {i}", row


def template_fields(template: str) -> list[str]:
    """Column names a ``str.format`` template uses; GraftError if it is malformed."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise GraftError(f"task.template: {exc}") from None


def render_prompt(text: str, tokenizer=None) -> str:
    """``text`` as the user turn of the tokenizer's chat template (HF tokenizers that have one), else as is."""
    hf = getattr(tokenizer, "hf", None)
    if hf is None or not getattr(hf, "chat_template", None):
        return text
    return hf.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)


def _text(value, where: str, field: str, required: bool) -> str | None:
    """A cell as text: strings as is, numbers via str, lists/dicts as JSON; None/'' -> error or None."""
    if value is None or value == "":
        if required:
            raise GraftError(f"{where}: field '{field}' is missing or empty")
        return None
    if isinstance(value, bool):
        raise GraftError(f"{where}: field '{field}' must be text, got a boolean")
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if not isinstance(value, str):
        raise GraftError(f"{where}: field '{field}' must be text, got {type(value).__name__}")
    if len(value) > _MAX_FIELD_CHARS:
        raise GraftError(f"{where}: field '{field}' is longer than {_MAX_FIELD_CHARS} characters")
    return value


def load_examples(path: str | Path, columns: dict[str, str] | None = None, template: str | None = None,
                  grader: str | None = "exact", keep_columns: bool = False) -> list[Example]:
    """Every row as an ``Example``; GraftError on the first bad row (file, line/row, field).
    ``grader=None``: no grader reads the answers, so ``answer`` may be missing (then ""). ``keep_columns``:
    ``meta["columns"]`` holds the row's columns but the prompt column (TRL-style reward functions')."""
    path = resolve_path(path)
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise GraftError(f"task.columns: unknown field(s) {unknown}; map any of {', '.join(FIELDS)}")
    col = {field: columns.get(field, field) for field in FIELDS}
    fields_used = template_fields(template) if template is not None else []
    examples = []
    for where, row in iter_rows(path):
        if template is not None:
            for name in fields_used:
                if name not in row:
                    raise GraftError(f"{where}: field '{name}' (used by task.template) is missing")
            try:
                prompt = template.format(**{k: "" if v is None else v for k, v in row.items()})
            except (IndexError, KeyError, ValueError) as exc:
                raise GraftError(f"{where}: task.template cannot be filled ({exc})") from None
        else:
            prompt = _text(row.get(col["prompt"]), where, col["prompt"], required=True)
        answer = _text(row.get(col["answer"]), where, col["answer"], required=grader is not None) or ""
        demo = _text(row.get(col["demonstration"]), where, col["demonstration"], required=False)
        meta = {"id": _text(row.get(col["id"]), where, col["id"], required=False) or f"{path.stem}-{len(examples)}",
                "where": where}
        if keep_columns:
            meta["columns"] = {k: v for k, v in row.items() if template is not None or k != col["prompt"]}
        if grader == "sql":
            db = _text(row.get(col["db"]), where, col["db"], required=True)
            db_path = Path(db) if Path(db).is_absolute() else path.parent / db
            if not db_path.is_file():
                raise GraftError(f"{where}: field '{col['db']}': database not found: {db_path}")
            meta["db"] = str(db_path)
        _check_reference(grader, answer, where, col["answer"])
        examples.append(Example(prompt, answer, demo, meta))
    if not examples:
        raise GraftError(f"{path}: no rows")
    return examples


def _check_reference(grader: str, answer: str, where: str, field: str) -> None:
    """Reference data that its grader cannot use is a loading error, not a zero reward later."""
    if grader == "code":
        from graft.rewards.code import parse_tests

        try:
            parse_tests(answer)
        except ValueError as exc:
            raise GraftError(f"{where}: field '{field}': {exc}") from None
    elif grader == "regex":
        try:
            re.compile(answer)
        except re.error as exc:
            raise GraftError(f"{where}: field '{field}': not a valid regular expression ({exc})") from None


class DatasetTask:
    """Examples from a local file, graded by a named grader or scored by the user's reward function
    (plus an optional format reward)."""

    name = "dataset"

    def __init__(self, path: str | None = None, grader: str = "exact", columns: dict | None = None,
                 template: str | None = None, chat_template: bool = False, grader_options: dict | None = None,
                 format: str | None = None, format_weight: float = 0.0, num_train: int = 10000,
                 num_test: int = 500, split_seed: int = 0, reward: str | None = None,
                 reward_correct_at: float | None = 1.0):
        from graft.rewards import Combined, make_grader
        from graft.rewards.combine import FORMATS
        from graft.rewards.function import RewardFunction

        if not path:
            raise GraftError("task.path: the dataset task needs task.path (a .jsonl, .csv, .parquet or directory)")
        self.reward = RewardFunction.load(reward) if reward else None
        self.correct_at = reward_correct_at
        self.format, self.format_weight = format, float(format_weight)
        use_grader = self.reward is None or reward_correct_at is None  # the grader decides `correct`
        self.grader = self.combined = None
        try:
            if format is not None and format not in FORMATS:
                raise ValueError(f"unknown format {format!r}; choose one of {', '.join(sorted(FORMATS))}")
            if use_grader:
                self.grader = make_grader(grader, **(grader_options or {}))
                self.combined = Combined([(self.grader, 1.0)], format=format, format_weight=format_weight)
        except ValueError as exc:
            raise GraftError(f"task.grader / task.grader_options / task.format: {exc}") from None
        keep = self.reward is not None and self.reward.wants_columns
        rows = load_examples(path, columns, template, grader if use_grader else None, keep_columns=keep)
        if keep:
            seen = dict.fromkeys(name for ex in rows for name in ex.meta["columns"])
            self.reward.check_columns(list(seen), str(path))
        self._train, self._test = split_rows(rows, path, num_train, num_test, split_seed)
        self.chat_template = chat_template
        self._bound = not chat_template

    @classmethod
    def from_config(cls, task_cfg) -> DatasetTask:
        return cls(path=task_cfg.path, grader=task_cfg.grader, columns=task_cfg.columns,
                   template=task_cfg.template, chat_template=task_cfg.chat_template,
                   grader_options=task_cfg.grader_options, format=task_cfg.format,
                   format_weight=task_cfg.format_weight, num_train=task_cfg.num_train,
                   num_test=task_cfg.num_test, split_seed=task_cfg.split_seed, reward=task_cfg.reward,
                   reward_correct_at=task_cfg.reward_correct_at)

    def bind_tokenizer(self, tokenizer) -> None:
        """Apply the chat template (if asked for and the tokenizer has one) to every prompt, once."""
        if self._bound:
            return

        def wrap(ex: Example) -> Example:
            return Example(render_prompt(ex.prompt, tokenizer), ex.answer, ex.demonstration, ex.meta)

        self._train = [wrap(ex) for ex in self._train]
        self._test = [wrap(ex) for ex in self._test]
        self._bound = True

    def _examples(self, which: list[Example]) -> list[Example]:
        if not self._bound:
            raise GraftError("task.chat_template: prompts need the model's tokenizer (bind_tokenizer) first")
        return which

    def train_examples(self) -> list[Example]:
        return self._examples(self._train)

    def test_examples(self) -> list[Example]:
        return self._examples(self._test)

    def score(self, example: Example, completion: str) -> Score:
        return self.score_many([(example, completion)])[0]

    def score_many(self, items: list[tuple[Example, str]]) -> list[Score]:
        """Scores of (example, completion) pairs; graders with ``workers`` > 1 run them in parallel, a
        TRL-style reward function gets them in one call."""
        if self.reward is None:
            return self.combined.score_many([(completion, example) for example, completion in items])
        values = self.reward.values(items)
        verdicts = None
        if self.correct_at is None:  # the grader decides `correct`; its reward is only shown
            verdicts = self.combined.verdicts_many([(completion, example) for example, completion in items])
        return [self._score(value, completion, None if verdicts is None else verdicts[i][0])
                for i, (value, (_, completion)) in enumerate(zip(values, items))]

    def _score(self, value: float | Score, completion: str, verdict) -> Score:
        """reward = the function's (+ format_weight x format); correct = the Score's, else reward >=
        task.reward_correct_at, else the grader's verdict."""
        if isinstance(value, Score):
            reward, correct, parts = float(value.reward), bool(value.correct), dict(value.parts)
        else:
            reward, parts = value, {"reward": value}
            correct = verdict.correct if self.correct_at is None else value >= self.correct_at
        if verdict is not None:
            parts[self.grader.name] = verdict.reward
        parts["correct"] = float(correct)
        if self.format is not None:
            from graft.rewards.combine import format_reward

            parts["format"] = format_reward(completion, self.format)
            reward += self.format_weight * parts["format"]
        return Score(reward=reward, correct=correct, parts=parts)

    def final_answer(self, completion: str) -> str | None:
        if self.grader is None:  # no grader: the last non-empty line, as graft.eval.evaluate.answer_of
            lines = [ln.strip() for ln in completion.splitlines() if ln.strip()]
            return lines[-1] if lines else None
        extract = getattr(self.grader, "final_answer", None)
        return extract(completion) if extract is not None else None
