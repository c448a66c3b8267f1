"""Rich tables shared by `graft eval`, `graft compare` and friends (terminal output only)."""

from __future__ import annotations

from rich.table import Table

from graft.errors import GraftError


def parse_ks(text: str) -> list[int]:
    """'1,4,16' -> [1, 4, 16] (sorted, unique); a clear error for anything else."""
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise GraftError(f"--k {text!r}: expected comma-separated positive integers, e.g. 1,4,16") from None
    if not ks or ks[0] < 1:
        raise GraftError(f"--k {text!r}: expected comma-separated positive integers, e.g. 1,4,16")
    return ks


def eval_table(result: dict, title: str) -> Table:
    """One row per number, one column per difficulty level (plus 'all' when there are several):
    greedy and sampled accuracy, pass@k, maj@k, mean completion length of greedy and sampled
    completions."""
    ks = result["k"]
    levels = dict(result["by_difficulty"])
    if len(levels) > 1:
        levels["all"] = result
    table = Table(title=title)
    table.add_column("")
    for level in levels:
        table.add_column(f"difficulty {level}" if level != "all" else "all", justify="right")
    rows = [("n examples", "n", "d"), ("greedy accuracy", "accuracy", ".3f"),
            ("sampled accuracy", "sampled_accuracy", ".3f"),
            *((f"pass@{k}", f"pass@{k}", ".3f") for k in ks), *((f"maj@{k}", f"maj@{k}", ".3f") for k in ks),
            ("mean length, greedy", "completion_len", ".1f"),
            ("mean length, sampled", "sampled_completion_len", ".1f")]
    for label, key, fmt in rows:
        table.add_row(label, *(format(r[key], fmt) for r in levels.values()))
    return table
