"""Stand-in random generators for the teachers' draws (only ``random()`` is called)."""

from __future__ import annotations


class Always:
    """Every draw is ``value``: 0.0 makes every optional piece / slip happen, 0.99 none (at p < 0.99)."""

    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


class Draws:
    """The given draws, in turn."""

    def __init__(self, *values: float):
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)
