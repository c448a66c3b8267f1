"""Per-prompt sampling metrics: unbiased pass@k and maj@k from n samples per prompt.

Both are U-statistics: the expected value, over every k-subset of the n
samples drawn for a prompt, of "some sample in the subset is correct"
(pass@k) or "the subset's plurality answer is correct" (maj@k). Averaging over
all subsets instead of using only the first k samples gives the same
expectation with lower variance.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from math import comb

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct.

    Chen et al. 2021 ("Evaluating Large Language Models Trained on Code",
    arXiv 2107.03374), Eq. 1 for one problem: pass@k = 1 - C(n-c, k) / C(n, k),
    computed in the numerically stable product form of their Figure 3:
    1 - prod_{i=n-c+1}^{n} (1 - k / i), which is exactly 1 when n - c < k
    (every k-subset then holds a correct sample).
    """
    if not (isinstance(n, (int, np.integer)) and isinstance(c, (int, np.integer))
            and isinstance(k, (int, np.integer))):
        raise TypeError(f"pass_at_k takes integers, got n={n!r}, c={c!r}, k={k!r}")
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(num_correct: Sequence[int], n: int, k: int) -> float:
    """pass@k averaged over prompts, each with ``n`` samples and ``num_correct[i]`` correct."""
    if len(num_correct) == 0:
        raise ValueError("mean_pass_at_k: no prompts")
    return float(np.mean([pass_at_k(n, int(c), k) for c in num_correct]))


def maj_at_k(answers: Sequence[Hashable | None], correct: Sequence[bool], k: int) -> float:
    """Expected accuracy of a plurality vote over a uniformly random k-subset of n samples.

    maj@k (majority voting, "self-consistency": Wang et al. 2022, arXiv
    2203.11171; Lewkowycz et al. 2022, Minerva): the k samples vote with their
    final answers; the vote is right when the most frequent answer is right.
    Conventions (deviations a reader should know):
    - a sample whose answer is ``None`` (no parsable answer) abstains; a subset
      in which every sample abstains scores 0;
    - ties are split evenly (a t-way tie between answers scores the mean of
      their correctness), which equals breaking ties uniformly at random;
    - an answer's correctness is the share of its samples that the verifier
      accepted (1 or 0 when correctness depends on the answer alone; tasks
      such as countdown also check the steps, and there the voted answer is
      represented by one of its samples at random).

    Exact, without enumerating subsets: for an answer a with c_a samples and a
    count x of them in the subset, the other answers' counts y_b <= x and the
    abstainers are summed over by a small dynamic programme over (samples
    drawn, answers tied at x), weighting each count vector by
    prod_b C(c_b, y_b) / C(n, k) (multivariate hypergeometric).
    """
    n = len(answers)
    if len(correct) != n:
        raise ValueError(f"maj_at_k: {n} answers but {len(correct)} verdicts")
    if not 1 <= k <= n:
        raise ValueError(f"maj_at_k needs 1 <= k <= n, got k={k}, n={n}")
    groups: dict[Hashable, list[bool]] = {}
    abstain = 0
    for answer, ok in zip(answers, correct):
        if answer is None:
            abstain += 1
        else:
            groups.setdefault(answer, []).append(bool(ok))
    keys = list(groups)
    counts = [len(groups[a]) for a in keys]
    shares = [sum(groups[a]) / len(groups[a]) for a in keys]
    total = 0.0
    for ia, (c_a, p_a) in enumerate(zip(counts, shares)):
        if p_a == 0.0:
            continue
        others = counts[:ia] + counts[ia + 1 :]
        for x in range(1, min(c_a, k) + 1):
            rest = k - x
            # ways[j, t]: ways to draw j samples from the other answers and the abstainers
            # with t other answers drawn exactly x times (tied with a), none more than x
            ways = np.zeros((rest + 1, len(others) + 1))
            ways[0, 0] = 1.0
            for c_b in others:
                new = np.zeros_like(ways)
                for y in range(min(c_b, x, rest) + 1):
                    tie = int(y == x)
                    new[y:, tie:] += comb(c_b, y) * ways[: rest + 1 - y, : ways.shape[1] - tie]
                ways = new
            new = np.zeros_like(ways)
            for y in range(min(abstain, rest) + 1):
                new[y:, :] += comb(abstain, y) * ways[: rest + 1 - y, :]
            ways = new
            split = ways[rest] / np.arange(1, len(others) + 2)  # a t-way tie with a shares 1/(t+1)
            total += p_a * comb(c_a, x) * float(split.sum())
    return total / comb(n, k)
