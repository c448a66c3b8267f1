"""Aggregate metrics, stratified bootstrap intervals, probability of improvement, performance profiles.

After Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS, arXiv 2108.13264), with rliable's names.
Scores are matrices of shape (runs, tasks): ``scores[n, m]`` is run n (a seed)
on task m. graft usually has one task (the evaluated metric of one config), so
a matrix is (seeds, 1). Every function also takes a stack of matrices with
leading batch axes, ``(..., runs, tasks)``, which is how the bootstrap
evaluates all its replicates at once.

The paper's formulas are written out in each docstring and cited by section;
equation numbers are not used because the arXiv versions number them
differently.

Deviations from rliable: bootstrap indices come from an explicit
``numpy.random.Generator`` (rliable's go through ``arch`` and numpy's global
RNG), and the interval is the plain percentile interval computed with
``numpy.quantile`` (rliable's default method is also "percentile").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import trim_mean


def _matrix(scores) -> np.ndarray:
    arr = np.asarray(scores, dtype=float)
    if arr.ndim < 2 or arr.shape[-2] < 1 or arr.shape[-1] < 1:
        raise ValueError(f"scores must be a (runs, tasks) matrix, got shape {arr.shape}")
    return arr


def aggregate_mean(scores) -> np.ndarray | float:
    """Mean over tasks of the per-task mean over runs (Sec. 4.2): (1/M) sum_m (1/N) sum_n x_{n,m}."""
    return _matrix(scores).mean(axis=-2).mean(axis=-1)


def aggregate_median(scores) -> np.ndarray | float:
    """Median over tasks of the per-task mean over runs (Sec. 4.2): median_m (1/N) sum_n x_{n,m}."""
    return np.median(_matrix(scores).mean(axis=-2), axis=-1)


def aggregate_iqm(scores) -> np.ndarray | float:
    """Interquartile mean (Sec. 4.2): the 25%-trimmed mean of all N*M scores pooled over runs and
    tasks, i.e. the mean of the middle 50% (floor(0.25 N M) scores cut from each end, as
    ``scipy.stats.trim_mean`` and rliable do)."""
    arr = _matrix(scores)
    return trim_mean(arr.reshape(*arr.shape[:-2], -1), proportiontocut=0.25, axis=-1)


def aggregate_optimality_gap(scores, gamma: float = 1.0) -> np.ndarray | float:
    """Optimality gap (Sec. 4.2): gamma - (1/(N M)) sum_{n,m} min(x_{n,m}, gamma), the mean shortfall
    from the target gamma (1.0 = perfect accuracy); lower is better."""
    arr = _matrix(scores)
    return gamma - np.minimum(arr, gamma).mean(axis=(-2, -1))


AGGREGATES: dict[str, Callable] = {
    "iqm": aggregate_iqm, "mean": aggregate_mean, "median": aggregate_median,
    "optimality_gap": aggregate_optimality_gap,
}


def probability_of_improvement(scores_x, scores_y) -> np.ndarray | float:
    """P(X > Y) averaged over tasks (Sec. 4.3):
    P(X > Y) = (1/M) sum_m (1/(N K)) sum_{i=1}^{N} sum_{j=1}^{K} S(x_{i,m}, y_{j,m}),
    S(x, y) = 1 if x > y, 1/2 if x = y, 0 if x < y; per task this is the Mann-Whitney U statistic of
    X over Y divided by N K (rliable computes it with ``scipy.stats.mannwhitneyu``)."""
    x, y = _matrix(scores_x), _matrix(scores_y)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"scores_x has {x.shape[-1]} tasks, scores_y {y.shape[-1]}")
    xi, yj = x[..., :, None, :], y[..., None, :, :]  # (..., N, 1, M), (..., 1, K, M)
    s = (xi > yj) + 0.5 * (xi == yj)  # (..., N, K, M)
    return s.mean(axis=(-3, -2)).mean(axis=-1)


def stratified_bootstrap_ci(
    statistic: Callable, *score_matrices, rng: np.random.Generator, reps: int = 10_000,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """(point estimate, lower, upper) of ``statistic(*score_matrices)`` by the stratified bootstrap.

    Sec. 3.2 / Appendix A of Agarwal et al.: each replicate resamples, for every task separately
    (the strata), N runs with replacement from that task's N runs; score matrices of several
    algorithms (e.g. X and Y of a probability of improvement) are resampled independently
    (rliable's ``StratifiedIndependentBootstrap``). The interval is the percentile interval: the
    (1-c)/2 and (1+c)/2 quantiles of the ``reps`` replicates. ``statistic`` must accept stacks of
    matrices with a leading replicate axis (every aggregate in this module does).

    Tasks with a single run make no interval (every replicate equals the data): the caller should
    refuse or say so; here the interval then collapses to the point.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    mats = [_matrix(s) for s in score_matrices]
    point = float(statistic(*mats))
    resampled = []
    for mat in mats:
        runs, tasks = mat.shape
        idx = rng.integers(0, runs, size=(reps, runs, tasks))  # (B, N, M) row per task and replicate
        resampled.append(np.take_along_axis(mat[None], idx, axis=-2))  # (B, N, M)
    values = np.asarray(statistic(*resampled), dtype=float)  # (B,)
    lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return point, float(lo), float(hi)


def iqm_over_seeds(values, *, rng: np.random.Generator, reps: int = 10_000,
                   confidence: float = 0.95) -> tuple[float, float, float]:
    """(IQM, lower, upper) of one task's per-seed scores: ``stratified_bootstrap_ci`` of
    ``aggregate_iqm`` on the (seeds, 1) matrix, the form every single-task benchmark reports."""
    column = np.asarray(values, dtype=float).reshape(-1, 1)
    return stratified_bootstrap_ci(aggregate_iqm, column, rng=rng, reps=reps, confidence=confidence)


def performance_profile(scores, taus) -> np.ndarray:
    """Run-score distribution (Sec. 4.1): F(tau) = (1/M) sum_m (1/N) sum_n 1[x_{n,m} > tau],
    the fraction of runs (pooled over tasks) scoring above each threshold tau; shape (..., len(taus))."""
    arr = _matrix(scores)
    t = np.asarray(taus, dtype=float)
    above = arr[..., None] > t  # (..., N, M, T)
    return above.mean(axis=-3).mean(axis=-2)
