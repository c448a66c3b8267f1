"""Turn the hybrid bench's per-run results into bench/results/hybrid.json, the learning-curve PNG
and one table per setting in bench/hybrid/README.md (between ``<!-- table:NAME -->`` markers).

    .venv/bin/python bench/hybrid/report.py [--work runs/bench-hybrid]
    .venv/bin/python bench/hybrid/report.py --restore   # a fresh clone: recorded runs back into --work
    .venv/bin/python bench/hybrid/report.py --work W --stem NAME   # bench/results/NAME.json, README untouched

``--restore`` writes every run recorded in bench/results/hybrid.json back to
``<work>/<setting>/results/`` (with the setting's notes and wall seconds) where no file is there, so
that run.py adds rows to the recorded bench instead of re-running it, and a report keeps every row.

Statistics over seeds (one task per setting, so the score matrices are (seeds, 1)): interquartile mean (IQM)
with a 95% stratified-bootstrap percentile interval, and the probability of improvement over
RL only and over SFT only (Agarwal et al. 2021, via ``graft.eval.stats``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import zlib
from pathlib import Path

import numpy as np

from graft.eval.stats import iqm_over_seeds, probability_of_improvement

ROOT = Path(__file__).resolve().parents[2]
REPS = 20_000  # bootstrap replicates
SEED = 0  # bootstrap RNG

def load(work: Path) -> dict[str, list[dict]]:
    """Method -> its runs (by seed) from ``work/results/*.json`` (one setting's directory)."""
    runs: dict[str, list[dict]] = {}
    for path in sorted((work / "results").glob("*.json")):
        r = json.loads(path.read_text())
        runs.setdefault(r["method"], []).append(r)
    order = ["sft_only", "rl_only"]
    return {m: sorted(runs[m], key=lambda r: r["seed"]) for m in order + sorted(set(runs) - set(order))
            if m in runs}


def compute_to_target(curve: list[dict], target: float) -> float:
    """First compute at which the accuracy curve reaches ``target`` (linear between evaluations);
    inf when it never does."""
    for a, b in itertools.pairwise(curve):
        if a["accuracy"] >= target:
            return a["compute"]
        if b["accuracy"] >= target:
            frac = (target - a["accuracy"]) / (b["accuracy"] - a["accuracy"])
            return a["compute"] + frac * (b["compute"] - a["compute"])
    return 0.0 if curve and curve[0]["accuracy"] >= target else math.inf


def iqm_ci(values: list[float], method: str, key: str) -> dict:
    """IQM and 95% CI of one method's values, with a bootstrap stream of its own (seeded by the
    method and the metric), so that adding a method to a table does not move another's interval."""
    rng = np.random.default_rng([SEED, zlib.crc32(f"{method}/{key}".encode())])
    point, lo, hi = iqm_over_seeds(values, rng=rng, reps=REPS)
    return {"iqm": point, "ci95": [lo, hi], "mean": float(np.mean(values)), "values": values}


def summarize(runs: dict[str, list[dict]], target: float) -> dict:
    table = {}
    for method, rs in runs.items():
        final = [r["final_accuracy"] for r in rs]
        row = {"seeds": [r["seed"] for r in rs], "final_accuracy": iqm_ci(final, method, "final_accuracy")}
        for k in ("pass@1", "pass@4", "pass@8", "pass@16"):
            row[k] = iqm_ci([r[k] for r in rs], method, k)
        row["rl_exploration"] = exploration([r.get("rl_trace", []) for r in rs])
        reach = [compute_to_target(r["curve"], target) for r in rs]
        row["compute_to_target"] = {"median": float(np.median(reach)), "reached": sum(map(math.isfinite, reach)),
                                    "values": reach}
        row["wall_seconds_mean"] = float(np.mean([r["wall_seconds"] for r in rs]))
        row["compute_mean"] = float(np.mean([r["compute"] for r in rs]))
        row["steps_mean"] = float(np.mean([r["steps"] for r in rs]))
        row["sft_share_mean"] = float(np.mean([r["mean_sft_share"] for r in rs]))
        row["budget_reached"] = all(r["budget_reached"] for r in rs)
        for base in ("rl_only", "sft_only"):
            if base in runs and base != method:
                other = np.array([r["final_accuracy"] for r in runs[base]])[:, None]
                row[f"p_improve_over_{base}"] = float(probability_of_improvement(np.array(final)[:, None], other))
        table[method] = row
    return table


def exploration(traces: list[list[dict]]) -> dict | None:
    """Mean policy entropy (the update's, ``losses/entropy``, and the sampler's estimate,
    ``rollout/entropy``, which runs recorded before 2026-12-02 lack) and share of all-equal groups
    over the first and the last quarter of the RL steps, averaged over seeds (None when the method
    ran no RL step)."""
    traces = [t for t in traces if t]
    if not traces:
        return None

    def quarter(t: list[dict], key: str, last: bool) -> float | None:
        q = max(1, len(t) // 4)
        vals = [r[key] for r in (t[-q:] if last else t[:q]) if r.get(key) is not None]
        return float(np.mean(vals)) if vals else None

    out = {}
    for key in ("entropy", "sampled_entropy", "zero_var"):
        for last in (False, True):
            vals = [v for t in traces if (v := quarter(t, key, last)) is not None]
            out[f"{key}_{'last' if last else 'first'}_quarter"] = float(np.mean(vals)) if vals else None
    return out


def plot(settings: dict[str, dict], path: Path) -> None:
    """One column per setting: on top the baselines and every schedule, below the baselines,
    ``sft_then_rl`` and the variants (``X+...`` rows), each line its own colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(settings), figsize=(7 * len(settings), 10), squeeze=False)
    for col, (name, spec) in enumerate(settings.items()):
        runs = spec["runs_by_method"]
        base = [m for m in ("sft_only", "rl_only") if m in runs]
        rows = ([m for m in runs if "+" not in m],
                base + [m for m in runs if m == "sft_then_rl" or "+" in m])
        for row, (ax, chosen) in enumerate(zip(axes[:, col], rows, strict=True)):
            what = "schedules" if row == 0 else "variants"
            _plot_one(ax, f"{name}, {what}", {m: runs[m] for m in chosen}, spec["budget_compute"],
                      spec["target_accuracy"])
    fig.suptitle("held-out greedy accuracy, mean over seeds; bands: min..max over seeds of sft_only and sft_then_rl")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_one(ax, name: str, runs: dict[str, list[dict]], budget: float, target: float) -> None:
    import matplotlib.pyplot as plt

    grid = np.linspace(0, budget, 41)
    colours = plt.get_cmap("tab20").colors
    for i, (method, rs) in enumerate(runs.items()):
        curves = np.stack([np.interp(grid, [c["compute"] for c in r["curve"]],
                                     [c["accuracy"] for c in r["curve"]]) for r in rs])  # (seeds, 41)
        style = "--" if method in ("sft_only", "rl_only") else "-"
        colour = colours[(2 * i) % 20 + (2 * i) // 20 % 2]  # the 10 strong colours, then the 10 light ones
        ax.plot(grid / 1e6, curves.mean(0), style, color=colour, label=f"{method} (n={len(rs)})")
        if method in ("sft_only", "sft_then_rl"):  # the two the claim compares: their seeds' spread
            ax.fill_between(grid / 1e6, curves.min(0), curves.max(0), color=colour, alpha=0.12)
    ax.axhline(target, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("compute (millions of forward-token equivalents: fwd x1 + fwd/bwd x3)")
    ax.set_ylabel("held-out greedy accuracy")
    ax.set_title(name)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(table: dict, target: float) -> str:
    head = ("| method | greedy acc. IQM [95% CI] | pass@1 | pass@16 | P(> RL only) | P(> SFT only) | "
            f"compute to {target:.2f} (median, reached) | entropy RL first/last quarter | "
            "sampled entropy first/last | all-equal groups first/last | SFT share | steps | wall s |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
    lines = []
    for method, r in table.items():
        fa = r["final_accuracy"]
        ctt = r["compute_to_target"]
        med = "never" if not math.isfinite(ctt["median"]) else f"{ctt['median'] / 1e6:.2f}M"
        p_rl = f"{r['p_improve_over_rl_only']:.2f}" if "p_improve_over_rl_only" in r else "-"
        p_sft = f"{r['p_improve_over_sft_only']:.2f}" if "p_improve_over_sft_only" in r else "-"
        ex = r.get("rl_exploration") or {}
        lines.append(
            f"| {method} | {fa['iqm']:.3f} [{fa['ci95'][0]:.3f}, {fa['ci95'][1]:.3f}] | "
            f"{r['pass@1']['iqm']:.3f} | {r['pass@16']['iqm']:.3f} | {p_rl} | {p_sft} | "
            f"{med}, {ctt['reached']}/{len(r['seeds'])} | "
            f"{_fmt(ex.get('entropy_first_quarter'))} / {_fmt(ex.get('entropy_last_quarter'))} | "
            f"{_fmt(ex.get('sampled_entropy_first_quarter'))} / {_fmt(ex.get('sampled_entropy_last_quarter'))} | "
            f"{_fmt(ex.get('zero_var_first_quarter'))} / {_fmt(ex.get('zero_var_last_quarter'))} | "
            f"{r['sft_share_mean']:.2f} | {r['steps_mean']:.0f} | {r['wall_seconds_mean']:.0f} |")
    return head + "\n".join(lines) + "\n"


def dumps(result: dict) -> str:
    """``result`` as JSON: indented, except that each run (its curve and per-step RL trace) is one
    line, which keeps the file a third of the size of indenting everything."""
    slots = {name: f"@runs:{name}@" for name in result["settings"]}
    shell = {**result, "settings": {name: {**spec, "runs": slots[name]}
                                    for name, spec in result["settings"].items()}}
    text = json.dumps(shell, indent=1)
    for name, spec in result["settings"].items():
        lines = ",\n".join("   " + json.dumps(r, separators=(",", ":")) for r in spec["runs"])
        text = text.replace(json.dumps(slots[name]), f"[\n{lines}\n  ]" if lines else "[]", 1)
    return text


def write_report(work: Path, out_dir: Path = ROOT / "bench" / "results",
                 readme: Path | None = ROOT / "bench" / "hybrid" / "README.md", stem: str = "hybrid") -> dict:
    """Every setting under ``work`` (a directory per setting holding results/) -> the results files
    (``out_dir/<stem>.json``, ``out_dir/<stem>_curves.png``; the README's tables unless ``readme`` is None)."""
    from run import SETTINGS  # bench/hybrid/run.py, next to this file

    settings: dict[str, dict] = {}
    for name, spec in SETTINGS.items():
        if not (work / name / "results").is_dir():
            continue
        runs = load(work / name)
        if not runs:
            continue
        seconds = work / name / "bench_seconds.txt"
        notes = work / name / "notes.txt"  # anything a reader of the numbers must know (re-runs, ...)
        settings[name] = {
            "about": spec.about, "task": list(spec.task), "budget_compute": spec.budget,
            "warmup_sft_steps": spec.warmup_steps, "target_accuracy": spec.target,
            "bench_wall_seconds": [float(x) for x in seconds.read_text().split()] if seconds.is_file() else None,
            "notes": notes.read_text().strip() if notes.is_file() else "",
            "table": summarize(runs, spec.target), "runs_by_method": runs,
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    plot(settings, out_dir / f"{stem}_curves.png")
    result = {"bootstrap_reps": REPS, "settings": {
        name: {**{k: v for k, v in spec.items() if k != "runs_by_method"},
               "runs": [r for rs in spec["runs_by_method"].values() for r in rs]}
        for name, spec in settings.items()}}
    (out_dir / f"{stem}.json").write_text(dumps(result))
    text = readme.read_text() if readme is not None and readme.is_file() else ""
    for name, spec in settings.items():
        table = markdown(spec["table"], spec["target_accuracy"])
        print(f"## {name}\n{table}")
        text = re.sub(rf"<!-- table:{name} -->.*<!-- /table:{name} -->",
                      f"<!-- table:{name} -->\n{table}<!-- /table:{name} -->", text, flags=re.DOTALL)
    if readme is not None and readme.is_file():
        readme.write_text(text)
    return result


def restore(work: Path, recorded: Path = ROOT / "bench" / "results" / "hybrid.json") -> int:
    """The runs in ``recorded`` -> ``work/<setting>/results/<method>-s<seed>.json`` (as run.py writes
    them), never over a file that is there; the number written."""
    written = 0
    for name, spec in json.loads(recorded.read_text())["settings"].items():
        results = work / name / "results"
        results.mkdir(parents=True, exist_ok=True)
        for run in spec["runs"]:
            path = results / f"{run['method']}-s{run['seed']}.json"
            if not path.exists():
                path.write_text(json.dumps(run, indent=1))
                written += 1
        for file, value in (("notes.txt", spec.get("notes") or ""),
                            ("bench_seconds.txt", " ".join(str(x) for x in spec.get("bench_wall_seconds") or []))):
            if value and not (work / name / file).exists():
                (work / name / file).write_text(value + "\n")
    return written


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-hybrid"))
    ap.add_argument("--restore", action="store_true", help="write the recorded runs back into --work, then stop")
    ap.add_argument("--stem", default=None, help="write bench/results/<stem>.json and <stem>_curves.png instead, "
                    "and leave the README's tables alone (a replication on other seeds, a pilot)")
    args = ap.parse_args()
    if args.restore:
        print(f"restored {restore(Path(args.work))} runs into {args.work}")
        return
    if args.stem:
        write_report(Path(args.work), readme=None, stem=args.stem)
    else:
        write_report(Path(args.work))


if __name__ == "__main__":
    main()
