"""Two runs' per-step metrics compared key by key (one helper for every 'trains exactly like' test)."""

from __future__ import annotations

import pytest

from graft.step_stats import TIMING_KEYS


def assert_same_metrics(got: list[dict], want: list[dict], skip=()) -> None:
    """The same steps with the same keys, every value within 1e-6, wall-clock keys (and ``skip``)
    left out."""
    ignored = set(TIMING_KEYS) | set(skip)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        keys = [k for k in w if k not in ignored]
        assert [k for k in g if k not in ignored] == keys
        for k in keys:
            assert g[k] == pytest.approx(w[k], abs=1e-6), (w["step"], k)
