"""pass@k and maj@k against brute-force enumeration over every k-subset, and hand-computed values."""

import itertools
from fractions import Fraction
from math import comb

import pytest

from graft.eval.metrics import maj_at_k, mean_pass_at_k, pass_at_k


def brute_pass_at_k(n, c, k):
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(samples[i] for i in s) for s in subsets), len(subsets))


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(brute_pass_at_k(n, c, k)), abs=1e-12)


def test_pass_at_k_hand_values():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3, abs=1e-15)  # pass@1 = c / n
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5, abs=1e-15)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7, abs=1e-15)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 4, 2) == 1.0  # n - c = 1 < k: every pair holds a correct sample
    # large n: the product form stays finite where C(n, k) overflows a float
    assert pass_at_k(2000, 1, 1000) == pytest.approx(0.5, abs=1e-12)
    assert mean_pass_at_k([0, 3], 10, 1) == pytest.approx(0.15, abs=1e-15)


@pytest.mark.parametrize("n,c,k", [(0, 0, 1), (3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def brute_maj_at_k(answers, correct, k):
    """Mean over all k-subsets of the plurality vote; ties split evenly; share correct within the subset."""
    n = len(answers)
    total = Fraction(0)
    for subset in itertools.combinations(range(n), k):
        votes = {}
        for i in subset:
            if answers[i] is not None:
                votes.setdefault(answers[i], []).append(correct[i])
        if not votes:
            continue
        top = max(len(v) for v in votes.values())
        winners = [v for v in votes.values() if len(v) == top]
        total += sum(Fraction(sum(v), len(v)) for v in winners) / len(winners)
    return total / comb(n, k)


CASES = [
    (["7", "7", "5", "5", "3"], [True, True, False, False, False]),
    (["7", None, "5", "7", None, "9", "5"], [True, False, False, True, False, False, False]),
    ([None, None, "1"], [False, False, True]),
    (["a", "a", "a", "b", "b", "c", "c", "d"], [False] * 3 + [True] * 2 + [False] * 3),
    # mixed verdicts within one answer (countdown-like: same answer, invalid steps)
    (["17", "17", "17", "4", "4", "4"], [True, False, True, False, False, False]),
]


@pytest.mark.parametrize("answers,correct", CASES)
def test_maj_at_k_matches_enumeration(answers, correct):
    for k in range(1, len(answers) + 1):
        assert maj_at_k(answers, correct, k) == pytest.approx(float(brute_maj_at_k(answers, correct, k)),
                                                              abs=1e-12), k


def test_maj_at_k_hand_values():
    answers, correct = ["7", "7", "5"], [True, True, False]
    assert maj_at_k(answers, correct, 3) == 1.0  # 7 wins 2:1
    assert maj_at_k(answers, correct, 1) == pytest.approx(2 / 3, abs=1e-15)  # = accuracy
    # k=2: pairs {7,7} right, {7,5} twice a tie (1/2 each): (1 + 0.5 + 0.5) / 3
    assert maj_at_k(answers, correct, 2) == pytest.approx(2 / 3, abs=1e-15)
    assert maj_at_k([None, None], [False, False], 2) == 0.0
