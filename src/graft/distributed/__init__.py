"""Where a run's rollouts and verification happen: ``distributed.backend`` names the backend.

- ``local``: in this process (``graft.rollout.sources``, ``graft.rewards.scoring``); no Ray needed.
- ``ray``: rollout worker actors (each with a policy copy, weights sent once per version through
  the object store) and reward worker actors (the task's verifier), driven from this process by a
  source with the local sources' interface (``graft.distributed.ray_backend``). With
  ``distributed.max_staleness`` >= 1 generation runs ahead of the learner, bounded by admission
  control (docs/distributed.md).

A backend gives the pipeline a rollout ``source`` and a ``verifier`` (``verify(task, groups)``);
the trainer never knows which backend it runs. This package never imports ``graft.train``.
"""

from __future__ import annotations

from graft.distributed.local import LocalBackend


def _ray_backend():
    from graft.distributed.ray_backend import RayBackend

    return RayBackend


BACKENDS = {"local": lambda: LocalBackend, "ray": _ray_backend}
"""``distributed.backend`` -> a function returning the backend class (Ray imported only when chosen)."""


def backend_class(name: str) -> type:
    return BACKENDS[name]()


def build_backend(cfg):
    """The backend ``cfg.distributed.backend`` names, built for this run."""
    return backend_class(cfg.distributed.backend)(cfg)


def distributed_problems(cfg) -> list[str]:
    """Problems of the ``distributed`` section, each naming its key (empty when fine)."""
    from graft.distributed.checks import distributed_problems as problems

    return problems(cfg)
