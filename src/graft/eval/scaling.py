"""Compute-performance curves: the ScaleRL sigmoid, its fit, bootstrap intervals, and `graft fit`.

ScaleRL (Khatri et al. 2025, "The Art of Scaling Reinforcement Learning
Compute for LLMs", arXiv 2510.13786), Eq. 1:

    R_C - R_0 = (A - R_0) / (1 + (C_mid / C) ** B)

R_C is the performance after compute C, R_0 the performance where RL starts,
A the asymptote, B the efficiency exponent (steepness) and C_mid the compute at
which half of the gain A - R_0 is reached. ScaleRL fits it to held-out pass
rates against GPU-hours and predicts A from the first part of a run.

graft's version and its deviations (also in docs/evaluation.md):
- compute C is, by default, the cumulative number of completion tokens
  sampled in RL steps (``rollout/completion_len`` x ``rl.num_prompts`` x
  ``rl.num_generations`` per step, from metrics.jsonl and the run config);
  ``--compute steps`` uses the RL step count. SFT steps and prompt tokens are
  not counted: the curve is the RL phase's.
- R_C is a metrics.jsonl key, by default ``rollout/accuracy`` (the training
  pass rate of each step's samples: noisier than a held-out evaluation, but
  there is one point per step).
- R_0 is fixed to the held-out sampled accuracy when SFT ended
  (``summary.json: sampled_accuracy_after_sft``) when the metric is
  ``rollout/accuracy`` (same temperature, different prompts); otherwise it is
  fitted as a fourth parameter.
- Intervals: percentile bootstrap over the (C, R) points (pairs resampled
  with replacement), refitting each time; points of one step are not
  independent of their neighbours' policy, so treat them as approximate.
- Seeds of one config are averaged step by step before fitting (the curve of
  the config's expected performance); the intervals are over the steps of
  that mean curve and do not include seed-to-seed spread: `graft compare`
  is the tool for that.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from graft.errors import GraftError


def scalerl_curve(C, A: float, B: float, C_mid: float, R0: float) -> np.ndarray:
    """R_C = R_0 + (A - R_0) / (1 + (C_mid / C) ** B) (ScaleRL Eq. 1); C > 0."""
    C = np.asarray(C, dtype=float)
    return R0 + (A - R0) / (1.0 + (C_mid / C) ** B)


def fit_scalerl(C, R, r0: float | None = None, start: dict | None = None) -> dict:
    """Least-squares fit of Eq. 1 to points (C, R); returns A, B, C_mid, R0 and the RMSE.

    C_mid is fitted on a log scale (it spans orders of magnitude); B is bounded to (0.01, 20);
    when every R lies in [0, 1] (a rate), A and R0 are bounded to [0, 1] too. ``start`` (a previous
    fit's result) is the initial guess; the bootstrap passes the full fit so that refits converge fast.
    Raises ValueError when there are too few points or the fit does not converge.
    """
    C, R = np.asarray(C, dtype=float), np.asarray(R, dtype=float)
    if C.shape != R.shape or C.ndim != 1:
        raise ValueError("C and R must be 1-d arrays of the same length")
    ok = np.isfinite(C) & np.isfinite(R) & (C > 0)
    C, R = C[ok], R[ok]
    free = 3 + (r0 is None)
    if len(C) < free + 2:
        raise ValueError(f"need at least {free + 2} points with C > 0 to fit {free} parameters, got {len(C)}")
    rate = bool(R.min() >= 0 and R.max() <= 1)
    lo_a, hi_a = (0.0, 1.0) if rate else (-np.inf, np.inf)
    logc = np.log(C)
    p0 = [float(np.clip(R[-max(1, len(R) // 10):].mean(), lo_a + 1e-6, hi_a - 1e-6)), 1.0, float(np.median(logc))]
    lower, upper = [lo_a, 0.01, logc.min() - 10], [hi_a, 20.0, logc.max() + 10]
    def free_r0(c, a, b, log_cmid, r):
        return scalerl_curve(c, a, b, np.exp(log_cmid), r)

    def fixed_r0(c, a, b, log_cmid):
        return scalerl_curve(c, a, b, np.exp(log_cmid), r0)

    func = free_r0 if r0 is None else fixed_r0
    if r0 is None:
        p0.append(float(np.clip(R[: max(1, len(R) // 10)].mean(), lo_a + 1e-6, hi_a - 1e-6)))
        lower.append(lo_a)
        upper.append(hi_a)
    if start is not None:
        p0[:3] = [float(np.clip(start["A"], lo_a, hi_a)), float(np.clip(start["B"], 0.01, 20.0)),
                  float(np.clip(np.log(start["C_mid"]), lower[2], upper[2]))]
        if r0 is None:
            p0[3] = float(np.clip(start["R0"], lo_a, hi_a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            params, _ = curve_fit(func, C, R, p0=p0, bounds=(lower, upper), maxfev=1_000)
        except RuntimeError as exc:
            raise ValueError(f"the sigmoid fit did not converge ({exc})") from None
    A, B, log_cmid = params[:3]
    R0 = float(params[3]) if r0 is None else float(r0)
    rmse = float(np.sqrt(np.mean((func(C, *params) - R) ** 2)))
    return {"A": float(A), "B": float(B), "C_mid": float(np.exp(log_cmid)), "R0": R0, "rmse": rmse,
            "points": len(C)}


def bootstrap_scalerl(C, R, r0: float | None, rng: np.random.Generator, reps: int = 200,
                      confidence: float = 0.95) -> dict:
    """Fit on all points, then percentile intervals of A, B, C_mid from ``reps`` refits on points
    resampled with replacement (failed refits are skipped and counted)."""
    C, R = np.asarray(C, dtype=float), np.asarray(R, dtype=float)
    fit = fit_scalerl(C, R, r0)
    draws, failed = [], 0
    for _ in range(reps):
        idx = rng.integers(0, len(C), size=len(C))
        try:
            f = fit_scalerl(C[idx], R[idx], r0, start=fit)
        except ValueError:
            failed += 1
            continue
        draws.append((f["A"], f["B"], f["C_mid"]))
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    if draws:
        arr = np.array(draws)
        for i, name in enumerate(("A", "B", "C_mid")):
            lo, hi = np.quantile(arr[:, i], q)
            fit[f"{name}_ci"] = (float(lo), float(hi))
    fit["bootstrap_failed"] = failed
    return fit


def predict_from_prefix(C, R, r0: float | None, fraction: float) -> dict:
    """Fit only the points with the smallest ``fraction`` of compute (ScaleRL's extrapolation test)."""
    C, R = np.asarray(C, dtype=float), np.asarray(R, dtype=float)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    cut = np.quantile(C, fraction)
    keep = C <= cut
    out = fit_scalerl(C[keep], R[keep], r0)
    out["fraction"], out["max_compute"] = fraction, float(cut)
    return out


# --------------------------------------------------------------------------- graft fit (I/O edge)


def run_curve(run, metric: str, compute: str) -> tuple[np.ndarray, np.ndarray]:
    """(C, R) of a run's RL steps from metrics.jsonl (see module docstring for the definition of C)."""
    rows = [r for r in run.metrics() if isinstance(r.get(metric), (int, float)) and "rollout/accuracy" in r]
    if not rows:
        raise GraftError(f"run {run.path} has no RL steps with '{metric}' in metrics.jsonl")
    if compute == "steps":
        C = np.arange(1, len(rows) + 1, dtype=float)
    else:
        rl = run.config.get("rl", {})
        per_step = [r["rollout/completion_len"] * rl.get("num_prompts", 1) * rl.get("num_generations", 1)
                    for r in rows]
        C = np.cumsum(per_step)
    return C, np.array([float(r[metric]) for r in rows])


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Seeds of one config averaged step by step (over the steps every seed reached): (mean C, mean R)."""
    steps = min(len(c) for c, _ in curves)
    return (np.mean([c[:steps] for c, _ in curves], axis=0), np.mean([r[:steps] for _, r in curves], axis=0))


def cmd_fit(args) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from graft.eval.runs import find_runs, group_runs

    groups = group_runs(find_runs(args.runs), "name")
    rng = np.random.default_rng(args.seed)
    fits = {}
    for label, members in sorted(groups.items()):
        curves = [run_curve(r, args.metric, args.compute) for r in members]
        C, R = mean_curve(curves)
        r0 = None
        if args.metric == "rollout/accuracy":
            held = [r.summary.get("sampled_accuracy_after_sft") for r in members if r.summary]
            r0 = float(np.mean(held)) if held and all(isinstance(h, (int, float)) for h in held) else None
        try:
            full = bootstrap_scalerl(C, R, r0, rng, reps=args.reps)
            early = predict_from_prefix(C, R, r0, args.fit_fraction)
        except ValueError as exc:
            raise GraftError(f"{label}: {exc}") from None
        fits[label] = (C, R, full, early)

        table = Table(title=f"{label}: ScaleRL fit of {args.metric} (mean of {len(members)} seeds, "
                            f"{full['points']} RL steps) vs compute ({args.compute})")
        for col in ("parameter", "estimate", "95% bootstrap CI"):
            table.add_column(col, justify="left" if col == "parameter" else "right")
        for name, what in (("A", "asymptote"), ("B", "steepness"), ("C_mid", "compute at half gain")):
            lo, hi = full.get(f"{name}_ci", (float("nan"), float("nan")))
            table.add_row(f"{name} ({what})", f"{full[name]:.4g}", f"[{lo:.4g}, {hi:.4g}]")
        table.add_row("R0 (start, fixed)" if r0 is not None else "R0 (start, fitted)", f"{full['R0']:.4g}", "")
        table.add_row(f"A fitted on the first {args.fit_fraction:.0%} of compute", f"{early['A']:.4g}", "")
        table.add_row("RMSE of the full fit", f"{full['rmse']:.4g}", "")
        Console().print(table)
    for label, (_, _, full, _) in fits.items():
        if full["bootstrap_failed"] > 0.05 * args.reps:
            Console(stderr=True).print(f"note: {label}: {full['bootstrap_failed']} of {args.reps} bootstrap refits "
                                       f"did not converge; the intervals leave them out")
    if args.plot:
        _plot_fits(fits, args.metric, args.compute, Path(args.plot))
        Console(stderr=True).print(f"plot: {args.plot}")
    return 0


def _plot_fits(fits: dict, metric: str, compute: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, (C, R, full, early)) in enumerate(fits.items()):
        color = f"C{i}"
        ax.scatter(C, R, s=6, alpha=0.35, color=color)
        grid = np.geomspace(C[C > 0].min(), C.max() * 4, 200)
        ax.plot(grid, scalerl_curve(grid, full["A"], full["B"], full["C_mid"], full["R0"]), color=color,
                label=f"{label}: A={full['A']:.3f}")
        ax.plot(grid, scalerl_curve(grid, early["A"], early["B"], early["C_mid"], early["R0"]), color=color,
                ls="--", label=f"{label}: first {early['fraction']:.0%} -> A={early['A']:.3f}")
        ax.axhline(full["A"], color=color, lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("RL compute: " + ("sampled completion tokens" if compute == "rollout_tokens" else "RL steps"))
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
