"""Statistics on tiny hand-made matrices with exact answers, and bootstrap coverage on simulated data."""

import numpy as np
import pytest
from scipy import stats as sps

from graft.eval.stats import (
    aggregate_iqm,
    aggregate_mean,
    aggregate_median,
    aggregate_optimality_gap,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap_ci,
)

# 4 runs x 2 tasks
S = np.array([[0.1, 0.9],
              [0.2, 0.5],
              [0.3, 0.7],
              [1.2, 0.3]])


def test_aggregates_by_hand():
    # per-task means: (0.1+0.2+0.3+1.2)/4 = 0.45, (0.9+0.5+0.7+0.3)/4 = 0.6
    assert aggregate_mean(S) == pytest.approx(0.525, abs=1e-12)
    assert aggregate_median(S) == pytest.approx(0.525, abs=1e-12)  # median of two = their mean
    assert aggregate_median(np.array([[0.1, 0.5, 0.9]])) == pytest.approx(0.5, abs=1e-12)
    # 8 scores sorted: .1 .2 .3 .3 .5 .7 .9 1.2; trim 2 from each end -> mean(.3 .3 .5 .7) = 0.45
    assert aggregate_iqm(S) == pytest.approx(0.45, abs=1e-12)
    # 5 scores: trim floor(1.25) = 1 from each end -> mean(2, 3, 4) = 3
    assert aggregate_iqm(np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])) == pytest.approx(3.0, abs=1e-12)
    # gap: 1 - mean(min(x, 1)) = 1 - (0.1+0.2+0.3+1+0.9+0.5+0.7+0.3)/8 = 1 - 4.0/8
    assert aggregate_optimality_gap(S) == pytest.approx(0.5, abs=1e-12)
    assert aggregate_optimality_gap(S, gamma=0.5) == pytest.approx(0.5 - 2.9 / 8, abs=1e-12)


def test_aggregates_take_stacks_of_matrices():
    stack = np.stack([S, S + 1.0])  # (2, 4, 2)
    np.testing.assert_allclose(aggregate_iqm(stack), [0.45, 1.45], atol=1e-12)
    np.testing.assert_allclose(aggregate_mean(stack), [0.525, 1.525], atol=1e-12)


def test_probability_of_improvement_by_hand():
    x = np.array([[3.0], [1.0]])
    y = np.array([[2.0], [1.0], [0.0]])
    # pairs: 3>2, 3>1, 3>0, 1<2, 1=1 (1/2), 1>0 -> (1+1+1+0+0.5+1)/6
    assert probability_of_improvement(x, y) == pytest.approx(4.5 / 6, abs=1e-12)
    assert probability_of_improvement(y, x) == pytest.approx(1.5 / 6, abs=1e-12)
    assert probability_of_improvement(x, x) == 0.5
    # two tasks: average of per-task probabilities (1 and 0)
    assert probability_of_improvement(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) == 0.5


def test_probability_of_improvement_is_mann_whitney_u():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 4, size=(7, 1)).astype(float), rng.integers(0, 4, size=(5, 1)).astype(float)
    u = sps.mannwhitneyu(x[:, 0], y[:, 0], alternative="greater").statistic
    assert probability_of_improvement(x, y) == pytest.approx(u / 35, abs=1e-12)


def test_performance_profile_by_hand():
    # fraction of the 8 scores above each tau
    np.testing.assert_allclose(performance_profile(S, [0.0, 0.3, 0.8, 2.0]), [1.0, 4 / 8, 2 / 8, 0.0])


def test_bootstrap_is_seeded_and_ignores_the_global_rng():
    a = stratified_bootstrap_ci(aggregate_iqm, S, rng=np.random.default_rng(0), reps=500)
    np.random.seed(123)
    b = stratified_bootstrap_ci(aggregate_iqm, S, rng=np.random.default_rng(0), reps=500)
    assert a == b
    point, lo, hi = a
    assert point == pytest.approx(0.45, abs=1e-12) and lo <= point <= hi


def test_bootstrap_strata_are_tasks():
    # resampling runs within a task never mixes tasks: a task that is constant stays constant
    m = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0]])
    _, lo, hi = stratified_bootstrap_ci(lambda s: s[..., 1].mean(-1), m, rng=np.random.default_rng(1), reps=200)
    assert lo == hi == 5.0
    # a single run has no spread: the interval collapses to the point
    assert stratified_bootstrap_ci(aggregate_mean, [[0.7]], rng=np.random.default_rng(1), reps=50) == (0.7, 0.7, 0.7)


def test_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate():
    """500 simulated experiments, each 30 runs x 2 tasks of N(0.5, 0.1^2) scores: the 95% percentile
    interval of the mean should cover 0.5 in ~95% of them. The percentile bootstrap is known to
    under-cover slightly at small N; for a normal mean its coverage is about
    P(|t_{N-1}| < 1.96 sqrt((N-1)/N)) with N = 60 pooled scores, = 0.943 here. The binomial standard
    error of 500 trials is sqrt(0.95 * 0.05 / 500) = 0.0097, so we accept |coverage - 0.95| <= 0.03
    (about 3 standard errors)."""
    rng = np.random.default_rng(2021)
    trials, runs, tasks, true_mean = 500, 30, 2, 0.5
    hits = 0
    for _ in range(trials):
        data = rng.normal(true_mean, 0.1, size=(runs, tasks))
        _, lo, hi = stratified_bootstrap_ci(aggregate_mean, data, rng=rng, reps=1000)
        hits += lo <= true_mean <= hi
    coverage = hits / trials
    n = runs * tasks
    expected = 2 * sps.t.cdf(1.96 * np.sqrt((n - 1) / n), df=n - 1) - 1
    assert expected == pytest.approx(0.943, abs=0.001)
    assert abs(coverage - 0.95) <= 0.03, coverage


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        aggregate_mean([1.0, 2.0])
    with pytest.raises(ValueError):
        probability_of_improvement(np.ones((2, 1)), np.ones((2, 2)))


def test_iqm_over_seeds_is_the_stratified_bootstrap_of_one_task():
    from graft.eval.stats import iqm_over_seeds

    seeds = [0.1, 0.2, 0.3, 0.4, 0.9]
    got = iqm_over_seeds(seeds, rng=np.random.default_rng(3), reps=500)
    want = stratified_bootstrap_ci(aggregate_iqm, np.array(seeds)[:, None], rng=np.random.default_rng(3), reps=500)
    assert got == want
    assert got[0] == pytest.approx(0.3)  # IQM of 5: the middle three, (0.2 + 0.3 + 0.4) / 3
