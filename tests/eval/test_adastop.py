"""AdaStop: the same decisions (and boundaries) as the reference package on shared seeded examples."""

import numpy as np
import pytest

from graft.eval.adastop import AdaStop, adastop


def reference(scores, n, K, B, alpha, seed):
    adastop_ref = pytest.importorskip("adastop", reason="the reference `adastop` is a dev dependency")
    names = list(scores)
    comp = adastop_ref.MultipleAgentsComparator(n=n, K=K, B=B, alpha=alpha, seed=seed)
    for k in range(K):
        comp.partial_compare({m: np.asarray(scores[m][: (k + 1) * n]) for m in names}, verbose=False)
        if comp.is_finished:
            break
    decisions = {(names[i], names[j]): comp.decisions[str(c)] for c in comp.comparisons for i, j in [c]}
    return decisions, comp.k, [b[1] for b in comp.boundary]


# (n seeds per interim, K interims, true means, data seed): exhaustive permutations all the way (n=3:
# 20^3 < B), random relabellings from interim 1 (n=5: 252^2 > B), several methods and a null case
SHARED = [(3, 3, [0.0, 0.0, 3.0], 1), (5, 4, [0.0, 0.0, 1.0, 3.0], 2), (4, 5, [0.0, 0.8], 4),
          (6, 3, [0.0, 0.0, 0.0, 0.0], 6)]


@pytest.mark.parametrize("n,K,means,seed", SHARED)
def test_decisions_match_the_reference_implementation(n, K, means, seed):
    gen = np.random.default_rng(seed)
    scores = {f"m{i}": list(gen.normal(mu, 1.0, size=n * K)) for i, mu in enumerate(means)}
    ref_decisions, ref_interims, ref_bounds = reference(scores, n, K, 10_000, 0.05, seed)
    ours = adastop(scores, n, K, B=10_000, alpha=0.05, seed=seed)
    assert ours.decisions == ref_decisions
    assert ours.interims == ref_interims
    np.testing.assert_allclose(ours.boundaries, ref_bounds, rtol=0, atol=1e-12)


def test_shared_example_decides_what_it_should():
    gen = np.random.default_rng(1)
    scores = {f"m{i}": list(gen.normal(mu, 1.0, size=9)) for i, mu in enumerate([0.0, 0.0, 3.0])}
    result = adastop(scores, n=3, K=3, seed=1)
    assert result.finished
    assert result.decisions[("m0", "m2")] == "smaller" and result.decisions[("m1", "m2")] == "smaller"
    assert result.decisions[("m0", "m1")] == "equal"


def test_two_seeds_one_interim_can_never_reject():
    # C(4, 2) = 6 relabellings: the smallest attainable tail probability is 1/6 > alpha, so the
    # boundary is the largest permuted value and the observed statistic (one of them) cannot exceed it
    result = adastop({"a": [0.0, 0.1], "b": [5.0, 5.1]}, n=2, K=1, alpha=0.05)
    assert result.decisions == {("a", "b"): "equal"}
    assert result.boundaries == [pytest.approx(5.0, abs=1e-12)]  # (5.0 + 5.1 - 0.0 - 0.1) / 2


def test_replay_stops_where_the_seeds_stop():
    scores = {"a": [0.0, 0.1, 0.2, 0.0, 0.1], "b": [0.05, 0.1, 0.0]}  # b lacks its second batch
    result = adastop(scores, n=3, K=3)
    assert result.interims == 1 and not result.finished
    assert result.undecided_methods() == ["a", "b"]
    with pytest.raises(ValueError):
        AdaStop(["a"], n=3, K=3)


def test_no_decision_when_the_budget_admits_only_the_largest_relabelling():
    # n = 3, K = 2: the first interim may spend alpha / 2 = 0.025 < 1 / C(6, 3), so only the largest
    # permuted value is admissible; swapping the two groups attains the statistic exactly, so nothing
    # can be rejected there. With these numbers a statistic computed from whole-sample means (as the
    # reference does) and permuted values from a matrix product differed in the last bit, and the
    # first interim rejected; graft computes both the same way.
    gen = np.random.default_rng(0)
    scores = {"sft-only": [], "sft+grpo": [], "grpo": []}
    for _ in range(6):
        scores["sft-only"].append(0.6 + gen.normal(0, 0.05))
        scores["sft+grpo"].append(0.7 + gen.normal(0, 0.05))
        scores["grpo"].append(0.5 + gen.normal(0, 0.08))
    ours = adastop(scores, n=3, K=2)
    assert set(ours.decided_at.values()) == {1}  # every decision at the second interim
    ref_decisions, _, ref_bounds = reference(scores, 3, 2, 10_000, 0.05, 0)
    assert ours.decisions == ref_decisions
    np.testing.assert_allclose(ours.boundaries, ref_bounds, rtol=0, atol=1e-12)
