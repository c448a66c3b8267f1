"""The curriculum's part of an RL step: which prompts, and (DARS) how many rollouts each.

The loop asks ``Curriculum.prompts`` for the step's examples and the rollout hook to use, runs the
RL step, then calls ``Curriculum.observe`` for the curriculum's metrics (and, for ``pcl``, to fit
the pass-rate predictor on what the step's rollouts showed). With ``curriculum.name: uniform``
and ``curriculum.dars: false`` the examples are the uniform stream's and the hook is the mixer's,
untouched: the step is exactly what it was without a curriculum.

Everything stays a function of the step and of checkpointed state: the pool is a slice of the
seeded uniform stream at a position derived from the step, its features come from the policy,
and the predictor's weights are saved with every checkpoint (``state_dict``), so resume is exact.
"""

from __future__ import annotations

import torch

from graft.config import Config, ConfigError
from graft.curriculum.dars import dars_allocation
from graft.curriculum.pcl import (
    fit_predictor,
    nearest_to_target,
    predict_pass_rate,
    prompt_features,
)
from graft.curriculum.uniform import UniformStream
from graft.models.policy import Policy
from graft.rollout.sampler import Group
from graft.tasks.base import Example, Task
from graft.train.rl import RolloutHook, sample_groups


def check_curriculum(cfg: Config) -> None:
    """Raise ConfigError, naming the key, for curriculum settings that cannot work together."""
    c, G = cfg.curriculum, cfg.rl.num_generations
    if (c.name != "uniform" or c.dars) and cfg.rollout.partial:
        raise ConfigError(f"config key 'curriculum.{'name' if c.name != 'uniform' else 'dars'}': cannot be "
                          "combined with rollout.partial (partial rollouts train groups carried over from "
                          "earlier steps, so a step's pass rates no longer belong to the prompts it chose)")
    if not c.dars:
        return
    if c.dars_extra == 0:
        raise ConfigError("config key 'curriculum.dars_extra': is 0 with curriculum.dars on; "
                          f"give a budget of extra rollouts, a multiple of rl.num_generations ({G})")
    if c.dars_extra % G:
        raise ConfigError(f"config key 'curriculum.dars_extra': {c.dars_extra} must be a multiple of "
                          f"rl.num_generations ({G}): extra rollouts come in whole groups")
    if cfg.select.dynamic_sampling:
        raise ConfigError("config key 'curriculum.dars': cannot be combined with select.dynamic_sampling "
                          "(its batch is capped at rl.num_prompts groups, which would drop the extra groups)")


def pass_rates(groups: list[Group]) -> torch.Tensor:
    """Share of correct completions (the verifier's verdict) in each group: (P,) float32."""
    return torch.tensor([sum(ro.correct for ro in g) / len(g) for g in groups], dtype=torch.float32)


class Curriculum:
    """Chooses each RL step's prompts from ``stream`` (``curriculum.name``) and adds DARS rollouts."""

    def __init__(self, cfg: Config, stream: UniformStream):
        self.cfg, self.stream = cfg, stream
        self.weights: torch.Tensor | None = None  # pcl predictor [w, b] (C + 1,), made at first use
        self._features = self._predicted = self._observed = None
        self._pool_tokens = 0.0

    @property
    def active(self) -> bool:
        return self.cfg.curriculum.name != "uniform" or self.cfg.curriculum.dars

    def prompts(self, policy: Policy, rl_index: int, hook: RolloutHook | None
                ) -> tuple[list[Example], RolloutHook | None]:
        """The examples of RL step ``rl_index`` and the rollout hook to run them with."""
        c, m = self.cfg.curriculum, self.cfg.rl.num_prompts
        if c.name == "uniform":
            examples = self.stream.take(rl_index * m, m)
        else:  # pcl: the m of the next pool_factor x m prompts predicted nearest the target
            pool = self.stream.take(rl_index * m * c.pool_factor, m * c.pool_factor)
            ids = [policy.tokenizer.encode(ex.prompt) for ex in pool]
            features = prompt_features(policy, ids)
            self._pool_tokens = float(sum(len(p) for p in ids))  # the pool's prefill: forward tokens
            if self.weights is None:  # predicts 0.5 everywhere until it has seen a step
                self.weights = torch.zeros(features.shape[1] + 1)
            predicted = predict_pass_rate(self.weights, features)  # (k m,)
            chosen = nearest_to_target(predicted, c.target, m)  # (m,)
            examples = [pool[i] for i in chosen.tolist()]
            self._features, self._predicted = features[chosen], predicted[chosen]
        if not self.active:
            return examples, hook  # today's step, untouched
        self._observed = None
        return examples, self._hook(hook)

    def _hook(self, inner: RolloutHook | None) -> RolloutHook:
        """Record the first round's pass rates, run the mixer's hook, then add DARS's extra groups."""
        cfg = self.cfg

        def hook(policy: Policy, task: Task, examples: list[Example], groups: list[Group], cfg_: Config,
                 generator: torch.Generator, version: int) -> tuple[list[Group], dict]:
            rates = pass_rates(groups)  # (P,) the policy's own first round
            info: dict[str, float] = {}
            if self._observed is None:  # the step's first draw is the chosen prompts
                self._observed = rates
                info["perf/fwd_tokens"] = self._pool_tokens  # pcl's feature forward counts as compute
            if inner is not None:
                groups, inner_info = inner(policy, task, examples, groups, cfg_, generator, version)
                for key, value in inner_info.items():
                    info[key] = info.get(key, 0.0) + value
            if cfg.curriculum.dars:
                G = cfg.rl.num_generations
                alloc = dars_allocation(rates, G, cfg.curriculum.dars_extra // G, cfg.curriculum.dars_threshold)
                extra = [ex for ex, k in zip(examples, alloc.tolist()) for _ in range(k)]
                more = sample_groups(policy, task, extra, cfg, generator, version) if extra else []
                groups = list(groups) + more
                info["curriculum/dars_extra_rollouts"] = float(len(extra) * G)
                info["curriculum/dars_hard_prompts"] = float((alloc > 0).sum())
                info["perf/fwd_tokens"] = info.get("perf/fwd_tokens", 0.0) + float(
                    sum(len(ro.prompt_ids) + len(ro.completion_ids) for g in more for ro in g))
            return groups, info

        return hook

    def observe(self) -> dict:
        """Metrics of the step just run; for pcl, fit the predictor on its observed pass rates
        (calibration is measured first, on predictions made before seeing them)."""
        if not self.active or self._observed is None:
            return {}
        realised = self._observed  # (m,)
        metrics = {
            "curriculum/realised_pass_rate": float(realised.mean()),
            "curriculum/zero_var_frac": float(((realised == 0) | (realised == 1)).float().mean()),
        }
        if self.cfg.curriculum.name == "pcl":
            c = self.cfg.curriculum
            metrics["curriculum/pred_pass_rate"] = float(self._predicted.mean())
            metrics["curriculum/pred_mae"] = float((self._predicted - realised).abs().mean())
            self.weights = fit_predictor(self.weights, self._features, realised, c.predictor_lr,
                                         c.predictor_steps)
        self._observed = None
        return metrics

    def state_dict(self) -> dict:
        return {"weights": None if self.weights is None else self.weights.clone()}

    def load_state_dict(self, state: dict | None) -> None:
        weights = (state or {}).get("weights")
        self.weights = None if weights is None else weights.clone()
