"""`graft report`: one self-contained HTML page for a set of runs.

- Held-out eval curves (``eval/accuracy``, ``eval/sampled_accuracy`` in metrics.jsonl: the periodic
  evaluation of ``eval.every`` / ``eval.sampled_every``, and the one after SFT): one line per group
  (runs with the same config name, as `graft compare` groups them), the interquartile mean (IQM)
  over its seeds at each step, and a band: the 95% stratified bootstrap percentile interval of
  that IQM (``graft.eval.stats``, the statistic and interval of `graft compare`), where at least two
  seeds logged the step; the points are also listed in a table.
- `graft compare`'s tables (``compare.compare_runs``, same seed and resamples, so the same
  numbers): IQM, mean, optimality gap per group, P(X > Y) per pair, of ``--metric``.
- Learning curves of the training metrics: the mean over seeds at each step and a band, the 95%
  t-interval of that mean, mean +- t_{0.975, s-1} sd / sqrt(s).
- The evaluation table (summary.json and the eval/*.json of `graft eval`, after SFT, final) and
  every run's config.

Plots are PNG images embedded as base64 data URIs; the page has no scripts and loads nothing, so
it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

from graft.errors import GraftError
from graft.eval.compare import GROUP_COLUMNS, compare_runs, group_rows, improvement_rows
from graft.eval.runs import Run, find_runs, group_runs
from graft.eval.stats import aggregate_iqm, stratified_bootstrap_ci

CURVES = [  # (metrics.jsonl key, title)
    ("rollout/reward_mean", "reward (RL samples)"),
    ("rollout/accuracy", "accuracy (RL samples)"),
    ("rollout/completion_len", "completion length (tokens)"),
    ("losses/entropy", "entropy (token mean)"),
    ("losses/kl", "KL to the reference"),
    ("mix/sft_share", "SFT share of the update"),
    ("losses/sft", "SFT loss"),
]

EVAL_CURVES = [  # (metrics.jsonl key, title)
    ("eval/accuracy", "held-out greedy accuracy"),
    ("eval/sampled_accuracy", "held-out sampled accuracy"),
]


def _series(rows_per_run: list[list[dict]], key: str) -> list[dict[int, float]]:
    """Per run: step -> value of ``key`` on the metrics.jsonl rows that have a number for it."""
    return [{int(r["step"]): float(r[key]) for r in rows if isinstance(r.get(key), (int, float)) and "step" in r}
            for rows in rows_per_run]


def iqm_band(series: list[dict[int, float]], rng: np.random.Generator, reps: int,
             confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps, IQM over the seeds that logged each step, and its stratified bootstrap percentile
    interval (``reps`` resamples of those seeds; NaN where fewer than two seeds logged the step)."""
    steps = np.array(sorted({s for one in series for s in one}))
    point, lo, hi = (np.full(len(steps), np.nan) for _ in range(3))
    for i, step in enumerate(steps):
        vals = np.array([one[step] for one in series if step in one and np.isfinite(one[step])])
        if len(vals) == 1:
            point[i] = vals[0]
        elif len(vals) >= 2:
            point[i], lo[i], hi[i] = stratified_bootstrap_ci(aggregate_iqm, vals[:, None], rng=rng, reps=reps,
                                                             confidence=confidence)
    return steps, point, lo, hi


def mean_band(series: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps, mean over seeds, and the 95% t-interval of the mean (NaN where < 2 seeds logged it)."""
    steps = np.array(sorted({s for one in series for s in one}))
    mean, lo, hi = (np.full(len(steps), np.nan) for _ in range(3))
    for i, step in enumerate(steps):
        vals = np.array([one[step] for one in series if step in one and np.isfinite(one[step])])
        if len(vals) == 0:
            continue
        mean[i] = vals.mean()
        if len(vals) >= 2:
            half = stats.t.ppf(0.975, len(vals) - 1) * vals.std(ddof=1) / np.sqrt(len(vals))
            lo[i], hi[i] = mean[i] - half, mean[i] + half
    return steps, mean, lo, hi


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def eval_curves(metrics: dict[str, list[list[dict]]], seed: int, reps: int) -> dict[str, dict[str, tuple]]:
    """key -> group -> (steps, IQM, lo, hi) for every ``EVAL_CURVES`` key some run logged; the
    bootstrap of each key starts from ``default_rng(seed)``, so a report is reproducible."""
    curves: dict[str, dict[str, tuple]] = {}
    for key, _ in EVAL_CURVES:
        rng = np.random.default_rng(seed)
        for label, runs in metrics.items():
            series = _series(runs, key)
            if any(series):
                curves.setdefault(key, {})[label] = iqm_band(series, rng, reps)
    return curves


def _plot(key: str, title: str, bands: dict[str, tuple], seeds: dict[str, int], marker: str | None,
          ylabel: str | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (label, (steps, center, lo, hi)) in enumerate(bands.items()):
        n = seeds[label]
        ax.plot(steps, center, color=f"C{i}", lw=1.2, marker=marker, ms=3,
                label=f"{label} ({n} seed{'s' * (n > 1)})")
        ax.fill_between(steps, lo, hi, color=f"C{i}", alpha=0.2, lw=0)
    ax.set_title(title)
    ax.set_xlabel("step")
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def curve_images(groups: dict[str, list[Run]]) -> list[tuple[str, str, str]]:
    """(title, key, base64 PNG) for every training-curve key logged by at least one run."""
    metrics = {label: [r.metrics() for r in members] for label, members in groups.items()}
    seeds = {label: len(members) for label, members in groups.items()}
    images = []
    for key, title in CURVES:
        bands = {label: mean_band(series) for label, runs in metrics.items()
                 if any(series := _series(runs, key))}
        if bands:
            images.append((title, key, _plot(key, title, bands, seeds, None)))
    return images


def eval_section(groups: dict[str, list[Run]], seed: int, reps: int) -> str:
    """The eval curves (IQM over seeds, bootstrap band) as images, and their points as a table."""
    metrics = {label: [r.metrics() for r in members] for label, members in groups.items()}
    curves = eval_curves(metrics, seed, reps)
    if not curves:
        return ("<p class='note'>No held-out evaluation during training in these runs: set eval.every (and "
                "eval.sampled_every) to draw the eval curve.</p>")
    seeds = {label: len(members) for label, members in groups.items()}
    parts = ["<div class='plots'>"]
    for key, title in EVAL_CURVES:
        if key in curves:
            parts.append(f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,"
                         f"{_plot(key, title, curves[key], seeds, 'o', 'IQM over seeds, 95% bootstrap CI')}'><figcaption class='note'>"
                         f"{html.escape(key)}</figcaption></figure>")
    parts.append("</div>")
    rows = [[key, label, str(int(step)), _num(c), _num(lo), _num(hi)]
            for key, bands in curves.items() for label, (steps, center, low, high) in bands.items()
            for step, c, lo, hi in zip(steps, center, low, high)]
    parts.append("<details><summary>eval curve points</summary>"
                 + _table(["key", "group", "step", "IQM", "CI low", "CI high"], rows, "eval-points") + "</details>")
    return "\n".join(parts)


def compare_section(runs: list[Run], metric: str, group_by: str, seed: int, reps: int) -> str:
    """`graft compare`'s two tables for ``metric``, or a note saying why they cannot be made."""
    try:
        summary = compare_runs(runs, metric, group_by, seed, reps)
    except GraftError as exc:
        return f"<p class='note'>No comparison table: {html.escape(str(exc))}</p>"
    note = (f"<p class='note'>{html.escape(metric)} ({html.escape(', '.join(summary['sources']))}), as "
            f"<code>graft compare --metric {html.escape(metric)} --seed {seed} --reps {reps}</code> prints it: "
            f"IQM and mean over seeds with {summary['confidence']:.0%} stratified bootstrap intervals, "
            "optimality gap 1 - mean(min(score, 1)).</p>")
    parts = [note, _table(list(GROUP_COLUMNS), group_rows(summary), "compare-groups")]
    if len(summary["groups"]) > 1:
        columns, rows = improvement_rows(summary)
        parts.append("<p class='note'>Probability of improvement P(row > column) [CI]: the chance that a "
                     "random seed of the row's group scores higher than one of the column's (ties half).</p>")
        parts.append(_table(columns, rows, "compare-improvement"))
    return "\n".join(parts)


def eval_rows(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the evaluation table: summary numbers, then each eval file's headline keys."""
    summary_keys = ["accuracy_after_sft", "accuracy_after_rl", "sampled_accuracy_after_sft",
                    "sampled_accuracy_after_rl"]
    eval_keys: list[str] = []
    for run in runs:
        for data in _results(run).values():
            for k in data:
                if (k.startswith(("pass@", "maj@")) and k not in eval_keys):
                    eval_keys.append(k)
    columns = ["name", "seed", *summary_keys, "eval file", "n", "greedy", "sampled", *eval_keys]
    rows = []
    for run in runs:
        s = run.summary or {}
        head = [run.name, str(run.seed), *(_num(s.get(k)) for k in summary_keys)]
        files = _results(run) or {"-": {}}
        for stem, data in files.items():
            n = data.get("n")
            rows.append([*head, stem, str(n) if isinstance(n, int) else "-", _num(data.get("accuracy")),
                         _num(data.get("sampled_accuracy")),
                         *(_num(data.get(k)) for k in eval_keys)])
            head = ["", "", *([""] * len(summary_keys))]
    return columns, rows


def _results(run: Run) -> dict[str, dict]:
    """A run's eval files but the periodic ones (those are the eval curve's points)."""
    return {stem: data for stem, data in run.evals.items() if data.get("kind") != "periodic"}


def _num(v) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and np.isfinite(v) else "-"


def _table(columns: list[str], rows: list[list[str]], table_id: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    ident = f" id='{table_id}'" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plots figure{margin:0}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:.5em;font-size:.8em;overflow:auto}
.note{color:#555;font-size:.9em}"""


def render(runs: list[Run], group_by: str = "name", metric: str = "accuracy", seed: int = 0,
           reps: int = 10_000) -> str:
    """The whole HTML page as a string; ``metric``, ``seed``, ``reps`` as in `graft compare`."""
    if not runs:
        raise GraftError("no runs to report")
    empty = [str(r.path) for r in runs if not r.metrics()]
    if empty:
        raise GraftError(f"no metrics in {', '.join(empty)} (metrics.jsonl missing or empty: did the run start?)")
    groups = group_runs(runs, group_by)
    images = curve_images(groups)
    header = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>graft report</title>"
              f"<style>{STYLE}</style></head><body><h1>graft report: {len(runs)} runs in {len(groups)} "
              f"group{'s' * (len(groups) > 1)} (by {html.escape(group_by)})</h1>")
    parts = [header, "<h2>Held-out accuracy during training</h2>"]
    parts.append("<p class='note'>Lines: the interquartile mean (IQM, the mean of the middle 50%; with 2 or 3 "
                 "seeds the plain mean) over the seeds of a group at each step. Bands: its 95% stratified "
                 "bootstrap percentile interval over the seeds, as in graft compare (none where one seed logged "
                 f"the step; {reps} resamples). Values: eval/* on the metrics.jsonl row of the step after whose "
                 "update they were measured (eval.every, eval.sampled_every; the greedy one also when SFT ends) "
                 "on the first eval.num_examples test examples.</p>")
    parts.append(eval_section(groups, seed, reps))
    parts.append(f"<h2>Comparison: {html.escape(metric)} by {html.escape(group_by)}</h2>")
    parts.append(compare_section(runs, metric, group_by, seed, reps))
    parts.append("<h2>Learning curves</h2>")
    parts.append("<p class='note'>Lines: mean over the seeds of a group at each step. Bands: 95% t-interval of "
                 "that mean across seeds (none where a group has one seed). Per-step RL metrics are measured on "
                 "that step's training samples; held-out numbers are above and in the evaluation table.</p>")
    parts.append("<div class='plots'>")
    for title, key, data in images:
        parts.append(f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption class='note'>{html.escape(key)}</figcaption></figure>")
    parts.append("</div><h2>Evaluation</h2>")
    parts.append(_table(*eval_rows([r for members in groups.values() for r in members]), "evaluation"))
    parts.append("<p class='note'>accuracy_*: greedy, sampled_accuracy_*: at eval.temperature, on the first "
                 "eval.num_examples test examples; pass@k / maj@k from `graft eval --k`. The periodic "
                 "evaluations (eval.every) are the eval curve's points above.</p><h2>Configs</h2>")
    for label, members in groups.items():
        for run in members:
            text = yaml.safe_dump(run.config, sort_keys=False)
            parts.append(f"<details><summary>{html.escape(label)} seed {run.seed}: "
                         f"{html.escape(str(run.path))}</summary><pre>{html.escape(text)}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def cmd_report(args) -> int:
    from rich.console import Console

    page = render(find_runs(args.runs), args.group_by, args.metric, args.seed, args.reps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    Console(stderr=True).print(f"report: {out} ({len(page) // 1024} KiB)")
    return 0
