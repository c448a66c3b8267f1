"""AdaStop: sequential comparison of several training methods over batches of seeds.

Mathieu et al. 2023, "AdaStop: adaptive statistical testing for sound
comparisons of Deep RL agents" (arXiv 2306.10882), as implemented by the
reference package ``adastop`` (``MultipleAgentsComparator``), which this
module follows step by step so that both reach the same decisions:

- Interims k = 0..K-1; at each, every method still in an undecided
  comparison has n new scores (seeds); the data up to interim k are
  ``scores[: (k+1) n]``.
- Statistic of a comparison (i, j): T = (k+1) |mean(x_i) - mean(x_j)|, i.e. the
  absolute sum over interims of the per-interim mean differences.
- Its null distribution is a permutation distribution built interim by
  interim: each interim's 2n scores of the pair are relabelled by every
  n-subset (C(2n, n) of them) while the number of paths stays below B, and by
  one random n-subset per surviving path once it would not. Paths whose
  statistic crossed the previous boundary are dropped (the distribution is
  conditional on not having stopped).
- Linear alpha spending: the level spent by the end of interim k is at most
  alpha (k+1) / K; the boundary is the smallest permuted value whose upper
  tail mass, added to the level already spent, stays within that budget.
- Step-down over comparisons: the comparison with the largest statistic is
  rejected if it exceeds the boundary of the max over the undecided
  comparisons; the boundary is recomputed without it and the next largest is
  tried, until one is not rejected.
- Rejected comparisons are "larger" / "smaller" (sign of mean_i - mean_j);
  those still undecided after interim K-1 are declared "equal".

Faithful to the reference, including two of its choices a reader should know
(and one correction of float rounding, below):
the permuted values are signed while the statistic is absolute (so the test
is, in effect, two-sided at about twice the nominal tail), and the permutation
draws come from ``numpy.random.RandomState(seed)``, a private instance (not
the global RNG), so that with the same seed the random relabellings are the
reference's own. Deviations: no early-accept (the reference's ``beta``, 0 by
default); one n for all methods; and when the permutations are random from
the first interim on (B <= C(2n, n), i.e. n >= 8 at B = 10,000), the tail
probabilities of later interims are normalised by B, the number of paths,
where the reference uses C(2n, n) ** floor(log B / log C(2n, n)) = 1.
Rounding: the reference computes the observed statistic from whole-sample
means and the permuted values from per-interim means, so when the budget
admits only the largest permuted value (which the relabelling that swaps the
two groups makes exactly equal to the statistic), a difference in the last
bit can declare a difference that the test cannot support. Here the
statistic is the identity relabelling's own value, summed the same way.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

Pair = tuple[str, str]


def _block_diffs(z: np.ndarray, masks: np.ndarray, n: int) -> np.ndarray:
    """mean(z[mask]) - mean(z[~mask]) for each row of masks (P, 2n).

    Row sums (not a matrix product) so that every row is summed the same way: the complement of a
    relabelling then gives exactly the negated value, and the observed statistic (the identity row)
    is exactly one of the permuted values, so float rounding can never make it exceed them all.
    """
    inside = np.where(masks, z, 0.0).sum(axis=1) / n  # (P,)
    outside = np.where(~masks, z, 0.0).sum(axis=1) / (len(z) - n)
    return inside - outside


def _masks(rows: list, width: int) -> np.ndarray:
    masks = np.zeros((len(rows), width), dtype=bool)
    for r, chosen in enumerate(rows):
        masks[r, list(chosen)] = True
    return masks


@dataclass
class AdaStopResult:
    """Where a comparison stands after the interims the data allowed."""

    methods: list[str]
    decisions: dict[Pair, str]  # "larger" | "smaller" | "equal" | "continue" (first vs second)
    interims: int  # interims run
    finished: bool
    boundaries: list[float] = field(default_factory=list)
    decided_at: dict[Pair, int] = field(default_factory=dict)  # interim index of each decision

    def undecided_methods(self) -> list[str]:
        busy = {m for pair, d in self.decisions.items() if d == "continue" for m in pair}
        return [m for m in self.methods if m in busy]


class AdaStop:
    """The sequential test; call ``interim(scores)`` once per batch of n seeds (see module docstring)."""

    def __init__(self, methods: list[str], n: int, K: int, B: int = 10_000, alpha: float = 0.05,
                 seed: int | None = 0):
        if len(methods) < 2 or len(set(methods)) != len(methods):
            raise ValueError(f"AdaStop needs at least two distinct methods, got {methods}")
        if n < 1 or K < 1 or B < 1 or not 0 < alpha < 1:
            raise ValueError(f"AdaStop needs n, K, B >= 1 and 0 < alpha < 1 (n={n}, K={K}, B={B}, alpha={alpha})")
        self.methods, self.n, self.K, self.B, self.alpha = list(methods), n, K, B, alpha
        self.rng = np.random.RandomState(seed)  # private stream, drawn in the reference's order
        self.k = 0
        self.level_spent = 0.0
        self.normalization = 1
        self.pairs: list[Pair] = list(itertools.combinations(self.methods, 2))
        self.decisions: dict[Pair, str] = {p: "continue" for p in self.pairs}
        self.decided_at: dict[Pair, int] = {}
        self.boundaries: list[float] = []
        self.current: list[Pair] = list(self.pairs)
        self.diffs: dict[Pair, np.ndarray] = {}  # permuted statistic paths of undecided pairs
        self.observed: dict[Pair, float] = {}  # signed statistic: sum of per-interim mean differences

    @property
    def finished(self) -> bool:
        return "continue" not in self.decisions.values()

    def _permutation_paths(self, z: dict[str, np.ndarray]) -> None:
        n, k = self.n, self.k
        total = math.comb(2 * n, n)
        exhaustive = self.B > total ** (k + 1)
        if k > 0:  # keep the paths that did not cross the last boundary (over every undecided pair)
            stacked = np.stack([self.diffs[p] for p in self.current])  # (C, P)
            keep = np.abs(stacked).max(axis=0) <= self.boundaries[-1]
            kept = {p: self.diffs[p][keep] for p in self.current}
            count = int(keep.sum())
        identity = _masks([range(n)], 2 * n)
        for pair in self.current:
            block = np.concatenate([z[pair[0]][k * n : (k + 1) * n], z[pair[1]][k * n : (k + 1) * n]])
            self.observed[pair] = self.observed.get(pair, 0.0) + float(_block_diffs(block, identity, n)[0])
            if exhaustive:
                new = _block_diffs(block, _masks(list(itertools.combinations(range(2 * n), n)), 2 * n), n)
                if k == 0:
                    self.diffs[pair] = new
                else:  # every kept path extended by every relabelling of this interim
                    self.diffs[pair] = (new[:, None] + kept[pair][None, :]).ravel()
            else:
                draws = self.B if k == 0 else count
                rows = [range(n)] + [self.rng.permutation(2 * n)[:n] for _ in range(draws - 1)]
                new = _block_diffs(block, _masks(rows, 2 * n), n)
                self.diffs[pair] = new if k == 0 else kept[pair] + new
        if exhaustive:
            self.normalization = total ** (k + 1)
        elif k == 0:
            self.normalization = self.B
        # else: random extension keeps one path per kept path; the normalisation is unchanged

    def interim(self, scores: dict[str, np.ndarray]) -> AdaStopResult:
        """Test interim k on ``scores[m][: (k+1) n]`` of every method in an undecided comparison."""
        if self.finished or self.k >= self.K:
            raise ValueError("AdaStop: the test is already finished")
        k, n = self.k, self.n
        z = {m: np.asarray(scores[m], dtype=float) for m in self.methods if m in scores}
        for m in {m for p in self.current for m in p}:
            if m not in z or len(z[m]) < (k + 1) * n:
                raise ValueError(f"AdaStop interim {k}: method {m} needs {(k + 1) * n} scores")
        self._permutation_paths(z)
        budget = self.alpha * (k + 1) / self.K
        cont = list(self.current)
        signed = {p: self.observed[p] for p in cont}  # = (k+1) (mean_i - mean_j) up to rounding
        bound, level_to_add = np.inf, 0.0
        while cont:
            values = np.sort(np.stack([self.diffs[p] for p in cont]).max(axis=0))  # (P,)
            tail = np.arange(len(values))[::-1] / self.normalization  # P(T > t) for each sorted t
            ok = self.level_spent + tail <= budget
            bound, level_to_add = (values[ok][0], tail[ok][0]) if ok.any() else (np.inf, 0.0)
            stats = [abs(signed[p]) for p in cont]
            top = int(np.argmax(stats))
            if stats[top] > 0 and stats[top] > bound:
                pair = cont.pop(top)
                self.decisions[pair] = "larger" if signed[pair] > 0 else "smaller"
                self.decided_at[pair] = k
            else:
                break
        self.boundaries.append(float(bound))
        self.level_spent += float(level_to_add)
        self.current = cont
        self.diffs = {p: self.diffs[p] for p in cont}
        if k == self.K - 1:
            for pair in cont:
                self.decisions[pair] = "equal"
                self.decided_at[pair] = k
        self.k += 1
        return self.result()

    def result(self) -> AdaStopResult:
        return AdaStopResult(list(self.methods), dict(self.decisions), self.k, self.finished,
                             list(self.boundaries), dict(self.decided_at))


def adastop(scores: dict[str, list[float]], n: int, K: int, B: int = 10_000, alpha: float = 0.05,
            seed: int | None = 0) -> AdaStopResult:
    """Replay every interim that the scores allow (scores in seed order; a pure function of them).

    Interim k runs when every method of an undecided comparison has (k+1) n scores; scores beyond
    the last complete batch wait for the rest of their batch.
    """
    test = AdaStop(list(scores), n, K, B, alpha, seed)
    while not test.finished and test.k < K:
        needed = (test.k + 1) * n
        if any(len(scores[m]) < needed for p in test.current for m in p):
            break
        test.interim({m: np.asarray(v, dtype=float) for m, v in scores.items()})
    return test.result()
