"""Stage timings (``perf/*_time``): one way to add a block's wall seconds to a step's tally."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(tally: dict[str, float] | None, key: str) -> Iterator[None]:
    """Add the block's seconds to ``tally[key]`` (summed over repeated blocks; nothing when ``tally``
    is None). Host clock: on CUDA, kernels still queued count where they are next waited for."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if tally is not None:
            tally[key] = tally.get(key, 0.0) + time.perf_counter() - t0
