"""Uniform prompt order: every example once per epoch, reshuffled each epoch.

The stream is a pure function of (seed, position): item k of the stream is
item ``k mod N`` of epoch ``k // N``'s permutation. Resuming a run only needs
the position, which the loop derives from the step number.
"""

from __future__ import annotations

import numpy as np


class UniformStream:
    def __init__(self, items: list, seed: int):
        if not items:
            raise ValueError("cannot draw from an empty list of examples")
        self.items = items
        self.seed = seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            rng = np.random.default_rng([self.seed, epoch])
            self._perms = {epoch: rng.permutation(len(self.items))}  # keep one epoch cached
        return self._perms[epoch]

    def take(self, position: int, count: int) -> list:
        """Items ``position .. position + count - 1`` of the infinite shuffled stream."""
        n = len(self.items)
        return [self.items[self._perm(k // n)[k % n]] for k in range(position, position + count)]
