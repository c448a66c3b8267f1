"""`graft report`: one self-contained HTML page for a set of runs.

Learning curves from metrics.jsonl (one line per group of runs with the same
config name, the mean over its seeds at each step, and a band: the 95%
t-interval of that mean across seeds, mean +- t_{0.975, s-1} sd / sqrt(s),
drawn where at least two seeds logged the step), the evaluation table
(summary.json and eval/*.json of every run) and every run's config. Plots are
PNG images embedded as base64 data URIs; the page has no scripts and loads
nothing, so it opens offline and can be mailed as one file.
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
from graft.eval.runs import Run, find_runs, group_runs

CURVES = [  # (metrics.jsonl key, title)
    ("rollout/reward_mean", "reward (RL samples)"),
    ("rollout/accuracy", "accuracy (RL samples)"),
    ("rollout/completion_len", "completion length (tokens)"),
    ("losses/entropy", "entropy (token mean)"),
    ("losses/kl", "KL to the reference"),
    ("mix/sft_share", "SFT share of the update"),
    ("losses/sft", "SFT loss"),
]


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


def curve_images(groups: dict[str, list[Run]]) -> list[tuple[str, str, str]]:
    """(title, key, base64 PNG) for every curve key logged by at least one run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = {label: [r.metrics() for r in members] for label, members in groups.items()}
    images = []
    for key, title in CURVES:
        if not any(key in row for runs in metrics.values() for rows in runs for row in rows):
            continue
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for i, (label, runs) in enumerate(metrics.items()):
            series = [{int(r["step"]): float(r[key]) for r in rows
                       if isinstance(r.get(key), (int, float)) and "step" in r} for rows in runs]
            if not any(series):
                continue
            steps, mean, lo, hi = mean_band(series)
            ax.plot(steps, mean, color=f"C{i}", lw=1.2, label=f"{label} ({len(runs)} seed{'s' * (len(runs) > 1)})")
            ax.fill_between(steps, lo, hi, color=f"C{i}", alpha=0.2, lw=0)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        fig.tight_layout()
        images.append((title, key, _png(fig)))
        plt.close(fig)
    return images


def eval_rows(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the evaluation table: summary numbers, then each eval file's headline keys."""
    summary_keys = ["accuracy_after_sft", "accuracy_after_rl", "sampled_accuracy_after_sft",
                    "sampled_accuracy_after_rl"]
    eval_keys: list[str] = []
    for run in runs:
        for data in run.evals.values():
            for k in data:
                if (k.startswith(("pass@", "maj@")) and k not in eval_keys):
                    eval_keys.append(k)
    columns = ["name", "seed", *summary_keys, "eval file", "n", "greedy", "sampled", *eval_keys]
    rows = []
    for run in runs:
        s = run.summary or {}
        head = [run.name, str(run.seed), *(_num(s.get(k)) for k in summary_keys)]
        files = run.evals or {"-": {}}
        for stem, data in files.items():
            n = data.get("n")
            rows.append([*head, stem, str(n) if isinstance(n, int) else "-", _num(data.get("accuracy")),
                         _num(data.get("sampled_accuracy")),
                         *(_num(data.get(k)) for k in eval_keys)])
            head = ["", "", *([""] * len(summary_keys))]
    return columns, rows


def _num(v) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "-"


def _table(columns: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plots figure{margin:0}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:.5em;font-size:.8em;overflow:auto}
.note{color:#555;font-size:.9em}"""


def render(runs: list[Run], group_by: str = "name") -> str:
    """The whole HTML page as a string."""
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
    parts = [header]
    parts.append("<p class='note'>Lines: mean over the seeds of a group at each step. Bands: 95% t-interval of "
                 "that mean across seeds (none where a group has one seed). Per-step RL metrics are measured on "
                 "that step's training samples; held-out numbers are in the evaluation table.</p>")
    parts.append("<h2>Learning curves</h2><div class='plots'>")
    for title, key, data in images:
        parts.append(f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption class='note'>{html.escape(key)}</figcaption></figure>")
    parts.append("</div><h2>Evaluation</h2>")
    parts.append(_table(*eval_rows([r for members in groups.values() for r in members])))
    parts.append("<p class='note'>accuracy_*: greedy, sampled_accuracy_*: at eval.temperature, on the first "
                 "eval.num_examples test examples; pass@k / maj@k from `graft eval --k`.</p><h2>Configs</h2>")
    for label, members in groups.items():
        for run in members:
            text = yaml.safe_dump(run.config, sort_keys=False)
            parts.append(f"<details><summary>{html.escape(label)} seed {run.seed}: "
                         f"{html.escape(str(run.path))}</summary><pre>{html.escape(text)}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def cmd_report(args) -> int:
    from rich.console import Console

    page = render(find_runs(args.runs), args.group_by)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    Console(stderr=True).print(f"report: {out} ({len(page) // 1024} KiB)")
    return 0
