"""A reward function from the user's code (``task.reward``), in either of the two signatures.

- graft's: ``fn(example: Example, completion: str) -> float | Score``, once per completion.
- TRL's: ``fn(prompts=[...], completions=[...], **columns) -> list[float]``, once per batch: the
  completions a step verifies in one round are one call (``score_many``), and ``columns`` are the
  examples' other dataset fields (``example.meta["columns"]``), each a list aligned with
  ``completions``. A function without ``**kwargs`` gets only the keywords it names.

Which one a function has is read from its signature (``graft.plugins.reward_style``). What it
returns is checked: a number (bool, int, float, numpy scalar) or, graft's form only, a ``Score``;
not NaN or infinite; TRL's a sequence of one number per completion. Anything else stops the run
with a ``GraftError`` naming the function; an exception raised inside the function is the user's
bug and propagates with its traceback.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Sequence

from graft.errors import GraftError
from graft.plugins import resolve, reward_style
from graft.tasks.base import Example, Score

TRL_ARGS = ("prompts", "completions")


class RewardFunction:
    """``values(items)``: the function's reward (a float, or the Score it returned) per (example, completion)."""

    def __init__(self, fn: Callable, spec: str):
        self.fn, self.spec = fn, spec
        self.style = reward_style(fn)
        params = inspect.signature(fn).parameters
        self._takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        self._names = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        self._required = {n for n in self._names if params[n].default is inspect.Parameter.empty} - set(TRL_ARGS)

    @classmethod
    def load(cls, spec: str) -> RewardFunction:
        return cls(resolve(spec, "task.reward", "a reward function"), spec)

    @property
    def wants_columns(self) -> bool:
        """Whether the examples must carry their row's other fields (TRL's ``**columns``)."""
        return self.style == "trl"

    def check_columns(self, columns: Sequence[str], where: str) -> None:
        """GraftError (naming ``task.reward``) if a TRL-style function needs a column the data lacks."""
        if self.style != "trl":
            return
        clash = sorted(set(TRL_ARGS) & set(columns))
        if clash:
            raise GraftError(f"config key 'task.reward': {where} has a column named {clash[0]!r}, which TRL-style "
                             "reward functions receive as their own argument; rename the column")
        missing = sorted(self._required - set(columns))
        if missing:
            raise GraftError(f"config key 'task.reward': {self.spec} takes {', '.join(map(repr, missing))}, "
                             f"not a column of {where} (columns: {', '.join(columns) or 'none'})")

    def values(self, items: Sequence[tuple[Example, str]]) -> list[float | Score]:
        if not items:
            return []
        if self.style == "graft":
            return [self._checked(self.fn(example, completion), i) for i, (example, completion) in enumerate(items)]
        kwargs: dict[str, list] = {"prompts": [ex.prompt for ex, _ in items],
                                   "completions": [completion for _, completion in items]}
        names: dict[str, None] = {}  # the columns of every example, in first-seen order
        for example, _ in items:
            names.update(dict.fromkeys(example.meta.get("columns", {})))
        for name in names:
            kwargs[name] = [example.meta.get("columns", {}).get(name) for example, _ in items]
        if not self._takes_any:
            kwargs = {k: v for k, v in kwargs.items() if k in self._names}
        out = self.fn(**kwargs)
        if isinstance(out, (str, bytes, dict)) or not hasattr(out, "__len__"):
            raise GraftError(f"task.reward: {self.spec} returned {type(out).__name__}; a TRL-style reward "
                             f"function returns a list of {len(items)} floats, one per completion")
        if len(out) != len(items):
            raise GraftError(f"task.reward: {self.spec} returned {len(out)} rewards for {len(items)} completions")
        return [self._checked(value, i, allow_score=False) for i, value in enumerate(out)]

    def _checked(self, value, i: int, allow_score: bool = True) -> float | Score:
        reward = value.reward if allow_score and isinstance(value, Score) else value
        if not isinstance(reward, numbers.Real):
            expected = "a float or a graft.tasks.Score" if allow_score else "floats"
            raise GraftError(f"task.reward: {self.spec} returned {type(value).__name__} ({value!r:.80}) for "
                             f"completion {i} of the batch; expected {expected}")
        if not math.isfinite(float(reward)):
            raise GraftError(f"task.reward: {self.spec} returned {float(reward)} for completion {i} of the batch; "
                             "rewards must be finite")
        return value if isinstance(value, Score) else float(value)
