"""`graft contamination`: how much of an evaluation set already appears in the training data.

Measures, over the test items (each: prompt, answer):
- exact prompt overlap: the test prompt equals some training prompt after
  normalisation (lower case, runs of whitespace collapsed, ends stripped);
- exact pair overlap: the same for (prompt, answer) together;
- answer overlap: the test answer is some training answer (expected to be
  high for short numeric answers; it matters for long, specific answers);
- n-gram overlap: the share of test items whose text (prompt, a space, answer)
  shares at least one token n-gram with a training item's text, and the mean
  share of a test item's n-grams found there (the GPT-3 paper's style of check, Brown et al. 2020,
  Appendix C, which used 13-grams; default n = 8 here). Tokens are words and
  single punctuation marks (``47+85=`` is 4 tokens); a text shorter than n
  tokens counts as one n-gram made of all of it, so for short prompts the
  n-gram check falls back to exact match of prompt and answer.

A training set given as a task name means that task's training split, a test
set given as a task name its test split; a JSONL file means all its rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from graft.errors import GraftError
from graft.tasks.files import iter_jsonl

_TOKEN = re.compile(r"\w+|[^\w\s]")


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Token n-grams of a text; a text shorter than n tokens is one gram of all its tokens."""
    toks = tokens(text)
    if len(toks) < n:
        return {tuple(toks)} if toks else set()
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


@dataclass(frozen=True)
class Item:
    prompt: str
    answer: str


def overlap(train: list[Item], test: list[Item], n: int = 8) -> dict:
    """Exact and n-gram overlap of ``test`` items with ``train`` items (see module docstring)."""
    if not train or not test:
        raise ValueError("overlap needs non-empty training and test sets")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    train_prompts = {normalize(it.prompt) for it in train}
    train_pairs = {(normalize(it.prompt), normalize(it.answer)) for it in train}
    train_answers = {normalize(it.answer) for it in train}
    train_grams: set[tuple[str, ...]] = set()
    for it in train:
        train_grams |= ngrams(f"{it.prompt} {it.answer}", n)
    exact = [i for i, it in enumerate(test) if normalize(it.prompt) in train_prompts]
    pairs = sum((normalize(it.prompt), normalize(it.answer)) in train_pairs for it in test)
    answers = sum(normalize(it.answer) in train_answers for it in test)
    touched, shares = [], []
    for i, it in enumerate(test):
        grams = ngrams(f"{it.prompt} {it.answer}", n)
        hit = len(grams & train_grams)
        shares.append(hit / len(grams) if grams else 0.0)
        if hit:
            touched.append(i)
    m = len(test)
    return {
        "train_items": len(train), "test_items": m, "n": n,
        "exact_prompt": len(exact) / m, "exact_pair": pairs / m, "answer": answers / m,
        "ngram_any": len(touched) / m, "ngram_mean_share": sum(shares) / m,
        "examples": [test[i].prompt for i in exact[:5]] or [test[i].prompt for i in touched[:5]],
    }


def read_items(spec: str, split: str, overrides: list[str]) -> list[Item]:
    """A JSONL file (every row's prompt and answer) or a registered task's ``split`` ('train'/'test')."""
    path = Path(spec)
    if path.suffix in (".jsonl", ".json") or path.exists():
        if not path.is_file():
            raise GraftError(f"no such file: {path}")
        items = []
        for number, row in iter_jsonl(path):
            if not isinstance(row.get("prompt"), str):
                raise GraftError(f"{path}:{number}: expected an object with a string 'prompt'")
            items.append(Item(row["prompt"], str(row.get("answer", ""))))
        if not items:
            raise GraftError(f"{path}: no rows")
        return items
    from graft.config import build_config
    from graft.tasks import TASKS
    from graft.tasks.build import build_task

    if spec not in TASKS and ":" not in spec:  # a registered task or a plug-in, package.module:Class
        raise GraftError(f"{spec!r} is neither a file nor a task (tasks: {', '.join(sorted(TASKS))}, or "
                         "package.module:Class)")
    cfg = build_config({}, [f"task.name={spec}", *overrides])
    task = build_task(cfg.task)
    examples = task.train_examples() if split == "train" else task.test_examples()
    return [Item(ex.prompt, ex.answer) for ex in examples]


def cmd_contamination(args) -> int:
    from rich.console import Console
    from rich.table import Table

    train = read_items(args.train, "train", args.set or [])
    test = read_items(args.test, "test", args.set or [])
    if args.n < 1:
        raise GraftError(f"--n must be >= 1, got {args.n}")
    r = overlap(train, test, args.n)
    table = Table(title=f"contamination of {args.test} ({r['test_items']} items) by {args.train} "
                        f"({r['train_items']} items)")
    table.add_column("check")
    table.add_column("share of test items", justify="right")
    table.add_row("exact prompt", f"{r['exact_prompt']:.4f}")
    table.add_row("exact prompt + answer", f"{r['exact_pair']:.4f}")
    table.add_row("answer seen in training", f"{r['answer']:.4f}")
    table.add_row(f"any {r['n']}-gram shared", f"{r['ngram_any']:.4f}")
    table.add_row(f"mean share of {r['n']}-grams shared", f"{r['ngram_mean_share']:.4f}")
    out = Console()
    out.print(table)
    if r["examples"]:
        out.print("examples: " + " | ".join(r["examples"]), markup=False, soft_wrap=True)
    return 0
