"""Config checks of the ``distributed`` section: what the Ray backend refuses, naming the key.

Kept apart from the Ray code so that validating a config never imports Ray; whether Ray itself
is installed is checked with the other optional packages (``graft.validation.dependency_problems``).
"""

from __future__ import annotations


def distributed_problems(cfg) -> list[str]:
    d, out = cfg.distributed, []
    if d.backend == "local":
        defaults = type(d).model_fields  # the schema's defaults, not copies of them
        changed = [key for key in ("rollout_workers", "reward_workers", "max_staleness", "rollout_worker_gpus",
                                   "weight_sync") if getattr(d, key) != defaults[key].default]
        out += [f"config key 'distributed.{key}': applies to distributed.backend=ray only (backend is local)"
                for key in changed]
        return out
    if cfg.rollout.strategy == "partial":
        out.append("config key 'rollout.strategy': partial keeps a buffer of unfinished rollouts across "
                   "steps inside one source; it does not run with distributed.backend=ray (use iid or tree)")
    if d.max_staleness == 0:
        return out
    c = cfg.curriculum
    if c.name != "uniform" or c.dars:
        key = "curriculum.name" if c.name != "uniform" else "curriculum.dars"
        out.append(f"config key '{key}': distributed.max_staleness={d.max_staleness} samples later steps' "
                   "prompts before the current step is trained; only curriculum.name=uniform without dars "
                   "chooses prompts that do not depend on the step's results")
    return out
