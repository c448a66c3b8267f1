"""The in-process backend: the configured rollout source and the task's verifier, called here."""

from __future__ import annotations

from graft.rewards.scoring import InProcessVerifier
from graft.rollout.sources import source_class


class LocalBackend:
    """``distributed.backend: local``: everything in the learner's process (the default)."""

    def __init__(self, cfg):
        self.source = source_class(cfg)(cfg)  # rollout.engine, rollout.strategy
        self.verifier = InProcessVerifier()

    def close(self) -> None:
        pass
