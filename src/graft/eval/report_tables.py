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
    """One row per difficulty level (plus 'all' when there are several): greedy and sampled
    accuracy, pass@k, maj@k, mean completion length of greedy and of sampled completions."""
    ks = result["k"]
    table = Table(title=title)
    for col in ("level", "n", "greedy", "sampled", *(f"pass@{k}" for k in ks),
                *(f"maj@{k}" for k in ks), "len", "len(s)"):
        table.add_column(col, justify="right")

    def row(label: str, r: dict) -> list[str]:
        return [label, str(r["n"]), f"{r['accuracy']:.3f}", f"{r['sampled_accuracy']:.3f}",
                *(f"{r[f'pass@{k}']:.3f}" for k in ks), *(f"{r[f'maj@{k}']:.3f}" for k in ks),
                f"{r['completion_len']:.1f}", f"{r['sampled_completion_len']:.1f}"]

    for level, r in result["by_difficulty"].items():
        table.add_row(*row(level, r))
    if len(result["by_difficulty"]) > 1:
        table.add_row(*row("all", result), style="bold")
    return table
