"""`graft compare`: runs grouped by config (seeds as repetitions), IQM and mean with stratified
bootstrap 95% intervals, pairwise probability of improvement, a plot (IQM intervals, P(X > Y)
intervals, performance profiles); or, with ``--adastop``,
the AdaStop sequential test and the seeds it still needs.

The numbers are computed by the pure functions of ``graft.eval.stats`` on a
(seeds, 1) score matrix per group; ``metric_value`` (``graft.eval.runs``)
says where a metric is read from.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from graft.errors import GraftError
from graft.eval.runs import Run, check_same_eval_set, find_runs, group_runs, metric_value
from graft.eval.stats import (
    aggregate_iqm,
    aggregate_mean,
    aggregate_optimality_gap,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap_ci,
)

MIN_SEEDS_FOR_CI = 2
FEW_SEEDS = 5  # below this, percentile bootstrap intervals are noticeably too narrow


def summarize_groups(values: dict[str, np.ndarray], rng: np.random.Generator, reps: int,
                     confidence: float = 0.95) -> dict:
    """Per group: seeds, IQM and mean with intervals, optimality gap; per ordered pair: P(X > Y)."""
    out: dict = {"confidence": confidence, "reps": reps, "groups": {}, "improvement": {}}
    for label, v in values.items():
        scores = np.asarray(v, dtype=float)[:, None]  # (seeds, 1 task)
        out["groups"][label] = {
            "seeds": len(v),
            "scores": [float(x) for x in v],
            "iqm": stratified_bootstrap_ci(aggregate_iqm, scores, rng=rng, reps=reps, confidence=confidence),
            "mean": stratified_bootstrap_ci(aggregate_mean, scores, rng=rng, reps=reps, confidence=confidence),
            "optimality_gap": float(aggregate_optimality_gap(scores)),
        }
    for x, y in itertools.permutations(values, 2):
        sx, sy = np.asarray(values[x], float)[:, None], np.asarray(values[y], float)[:, None]
        out["improvement"][f"{x} > {y}"] = stratified_bootstrap_ci(
            probability_of_improvement, sx, sy, rng=rng, reps=reps, confidence=confidence)
    return out


def collect(run_dirs: list[str], metric: str, group_by: str) -> tuple[dict[str, list[Run]], dict, set]:
    return collect_runs(find_runs(run_dirs), metric, group_by)


def collect_runs(runs: list[Run], metric: str, group_by: str) -> tuple[dict[str, list[Run]], dict, set]:
    """Groups (label -> runs), values (label -> one ``metric`` per seed, labels sorted) and where
    the values were read; refuses runs evaluated on different held-out sets."""
    check_same_eval_set(runs)
    groups = group_runs(runs, group_by)
    values, sources = {}, set()
    for label in sorted(groups):
        vals = []
        for run in groups[label]:
            value, source = metric_value(run, metric)
            vals.append(value)
            sources.add(source.split(":", 1)[0] if source.startswith("eval/") else source)
        values[label] = vals
    return groups, values, sources


def _fmt(ci) -> str:
    point, lo, hi = ci
    return f"{point:.3f} [{lo:.3f}, {hi:.3f}]"


GROUP_COLUMNS = ("group", "seeds", "IQM [CI]", "mean [CI]", "opt. gap")


def group_rows(summary: dict) -> list[list[str]]:
    """The per-group table of ``compare_runs``'s summary as text (``GROUP_COLUMNS``; terminal and HTML)."""
    return [[label, str(g["seeds"]), _fmt(g["iqm"]), _fmt(g["mean"]), f"{g['optimality_gap']:.3f}"]
            for label, g in summary["groups"].items()]


def improvement_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the P(row > column) [CI] matrix as text."""
    labels = list(summary["groups"])
    return ["", *labels], [[x, *("-" if x == y else _fmt(summary["improvement"][f"{x} > {y}"]) for y in labels)]
                           for x in labels]


def plot_compare(summary: dict, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(summary["groups"])
    pairs = list(summary["improvement"])
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 0.6 * max(len(labels), len(pairs)) + 2.5))
    for i, label in enumerate(labels):
        g = summary["groups"][label]
        point, lo, hi = g["iqm"]
        ax1.errorbar(point, i, xerr=[[point - lo], [hi - point]], fmt="o", color="C0", capsize=4)
        ax1.scatter(g["scores"], [i + 0.15] * len(g["scores"]), s=12, color="gray", alpha=0.7)
    ax1.set_yticks(range(len(labels)), labels)
    ax1.set_xlabel(f"{metric}: IQM and {summary['confidence']:.0%} CI (dots: seeds)")
    for i, pair in enumerate(pairs):
        point, lo, hi = summary["improvement"][pair]
        ax2.errorbar(point, i, xerr=[[point - lo], [hi - point]], fmt="s", color="C1", capsize=4)
    ax2.axvline(0.5, color="gray", ls="--", lw=1)
    ax2.set_xlim(-0.02, 1.02)
    ax2.set_yticks(range(len(pairs)), [p.replace(" > ", " > ") for p in pairs])
    ax2.set_xlabel("P(X > Y): probability of improvement")
    every = np.concatenate([summary["groups"][label]["scores"] for label in labels])
    taus = np.linspace(every.min() - 1e-9, every.max(), 200)
    for i, label in enumerate(labels):
        profile = performance_profile(np.asarray(summary["groups"][label]["scores"])[:, None], taus)
        ax3.step(taus, profile, where="post", color=f"C{i}", label=label)
    ax3.set_xlabel(f"{metric} threshold tau")
    ax3.set_ylabel("fraction of seeds > tau")
    ax3.set_title("performance profile", fontsize=10)
    ax3.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_runs(runs: list[Run], metric: str, group_by: str, seed: int, reps: int) -> dict:
    """What `graft compare` prints and writes to ``--json`` (also `graft report`'s table): per group
    IQM and mean with stratified bootstrap intervals (``reps`` resamples from
    ``default_rng(seed)``), the optimality gap, P(X > Y) per ordered pair. Refuses a group with
    fewer than ``MIN_SEEDS_FOR_CI`` seeds."""
    groups, values, sources = collect_runs(runs, metric, group_by)
    thin = {label: v for label, v in values.items() if len(v) < MIN_SEEDS_FOR_CI}
    if thin:
        shown = "; ".join(f"{label}: seed {groups[label][0].seed}, {metric} {v[0]:.4f}" for label, v in thin.items())
        raise GraftError(f"confidence intervals need >= {MIN_SEEDS_FOR_CI} seeds per group; one seed only for "
                         f"{shown}. Train more seeds, e.g. graft seeds CONFIG --seeds 1-4")
    summary = summarize_groups(values, np.random.default_rng(seed), reps)
    summary.update(metric=metric, group_by=group_by, sources=sorted(sources),
                   runs={label: [str(r.path) for r in members] for label, members in groups.items()})
    return summary


def cmd_compare(args) -> int:
    if args.adastop:
        return cmd_adastop(args)
    summary = compare_runs(find_runs(args.runs), args.metric, args.group_by, args.seed, args.reps)
    values = {label: g["scores"] for label, g in summary["groups"].items()}
    sources = summary["sources"]
    out = Console()
    table = Table(title=f"{args.metric} by {args.group_by} ({', '.join(sorted(sources))}); "
                        f"{summary['confidence']:.0%} stratified bootstrap CIs, {args.reps} resamples")
    for col in GROUP_COLUMNS:
        table.add_column(col, justify="left" if col == "group" else "right", no_wrap=col != "group")
    for row in group_rows(summary):
        table.add_row(*row)
    out.print(table)
    if len(values) > 1:
        table = Table(title="probability of improvement P(row > column) [CI]")
        columns, rows = improvement_rows(summary)
        for i, col in enumerate(columns):
            table.add_column(col, justify="right" if i else "left")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    few = [label for label, v in values.items() if len(v) < FEW_SEEDS]
    if few:
        Console(stderr=True).print(f"note: fewer than {FEW_SEEDS} seeds in {', '.join(few)}; percentile "
                                   f"bootstrap intervals from so few seeds are too narrow: read them as rough")
    if args.plot:
        plot_compare(summary, args.metric, Path(args.plot))
        Console(stderr=True).print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


def cmd_adastop(args) -> int:
    from graft.eval.adastop import adastop
    from graft.eval.seeds import next_seeds, train_seeds

    err = Console(stderr=True)
    for _ in range(args.K + 1):  # with --run-next: test, train what is missing, test again
        groups, values, _ = collect(args.runs, args.metric, args.group_by)
        if len(values) < 2:
            raise GraftError(f"AdaStop compares at least two groups; the runs form one ({', '.join(values)})")
        result = adastop(values, n=args.n, K=args.K, B=args.B, alpha=args.alpha, seed=args.seed)
        _print_adastop(result, values, args)
        if result.finished:
            return 0
        waiting = result.undecided_methods()
        need = (result.interims + 1) * args.n
        plan = {m: next_seeds(groups[m], need) for m in waiting if len(values[m]) < need}
        if not plan:
            return 0
        text = "; ".join(f"{m}: seeds {', '.join(map(str, s))}" for m, s in plan.items())
        if not args.run_next:
            err.print(f"more seeds needed for interim {result.interims + 1} of {args.K} ({args.n} per "
                      f"group): {text}. Rerun with --run-next to train them.", soft_wrap=True)
            return 0
        err.print(f"training the next batch: {text}", soft_wrap=True)
        for m, seeds in plan.items():
            args.runs.extend(str(p) for p in train_seeds(groups[m][0], seeds))
    return 0


def _print_adastop(result, values: dict[str, list[float]], args) -> None:
    table = Table(title=f"AdaStop on {args.metric} (alpha={args.alpha}, {args.n} seeds per interim, "
                        f"at most {args.K} interims; {result.interims} run)")
    for col in ("comparison", f"mean {args.metric}", "decision", "at interim"):
        table.add_column(col)
    words = {"larger": ">", "smaller": "<", "equal": "=", "continue": "?"}
    for (a, b), decision in result.decisions.items():
        used = (result.decided_at.get((a, b), result.interims - 1) + 1) * args.n or None  # None: all
        means = f"{np.mean(values[a][:used]):.3f} vs {np.mean(values[b][:used]):.3f}"
        verdict = {"continue": "undecided: more seeds"}.get(decision, f"{a} {words[decision]} {b}")
        where = str(result.decided_at[(a, b)] + 1) if (a, b) in result.decided_at else "-"
        table.add_row(f"{a} vs {b}", means, verdict, where)
    Console().print(table)
