"""The curriculum's part of an RL step: which prompts, and (DARS) how many rollouts each.

The step asks ``Curriculum.requests`` for the step's rollout requests, gives ``Curriculum.revise``
the first round of verified groups (it records their pass rates and returns DARS's extra
requests), then calls ``Curriculum.observe`` for the curriculum's metrics (and, for ``pcl``, to
fit the pass-rate predictor on what the step's rollouts showed). With ``curriculum.name: uniform``
and ``curriculum.dars: false`` the requests are the uniform stream's next ``rl.num_prompts``
prompts and nothing is revised: the step is exactly what it was without a curriculum. The
curriculum never samples: it returns requests, the rollout source samples them.

Everything stays a function of the step and of checkpointed state: the pool is a slice of the
seeded uniform stream at a position derived from the step, its features come from the policy,
and the predictor's weights are saved with every checkpoint (``state_dict``), so resume is exact.
"""

from __future__ import annotations

import torch

from graft.config import Config
from graft.curriculum.dars import dars_allocation
from graft.curriculum.pcl import (
    fit_predictor,
    nearest_to_target,
    predict_pass_rate,
    prompt_features,
)
from graft.curriculum.uniform import UniformStream
from graft.models.policy import Policy
from graft.rollout.types import Group, Request


def curriculum_problems(cfg: Config) -> list[str]:
    """Curriculum settings that cannot work together, each naming its key (empty when fine)."""
    c, G, out = cfg.curriculum, cfg.rl.num_generations, []
    if (c.name != "uniform" or c.dars) and cfg.rollout.strategy == "partial":
        out.append(f"config key 'curriculum.{'name' if c.name != 'uniform' else 'dars'}': cannot be "
                   "combined with rollout.strategy=partial (partial rollouts train groups carried over from "
                   "earlier steps, so a step's pass rates no longer belong to the prompts it chose)")
    if not c.dars:
        return out
    if c.dars_extra == 0:
        out.append("config key 'curriculum.dars_extra': is 0 with curriculum.dars on; "
                   f"give a budget of extra rollouts, a multiple of rl.num_generations ({G})")
    elif c.dars_extra % G:
        out.append(f"config key 'curriculum.dars_extra': {c.dars_extra} must be a multiple of "
                   f"rl.num_generations ({G}): extra rollouts come in whole groups")
    if cfg.select.dynamic_sampling:
        out.append("config key 'curriculum.dars': cannot be combined with select.dynamic_sampling "
                   "(its batch is capped at rl.num_prompts groups, which would drop the extra groups)")
    return out


def pass_rates(groups: list[Group]) -> torch.Tensor:
    """Share of correct completions (the verifier's verdict) in each group: (P,) float32."""
    return torch.tensor([g.pass_rate for g in groups], dtype=torch.float32)


class Curriculum:
    """Chooses each RL step's prompts from ``stream`` (``curriculum.name``) and adds DARS requests."""

    def __init__(self, cfg: Config, stream: UniformStream):
        self.cfg, self.stream = cfg, stream
        self.weights: torch.Tensor | None = None  # pcl predictor [w, b] (C + 1,), made at first use
        self._features = self._predicted = self._observed = None
        self.fwd_tokens = 0.0  # the step's forward tokens of pcl's pool features (compute)
        self.counters: dict[str, float] = {}  # the step's DARS counters

    check_config = staticmethod(curriculum_problems)

    @property
    def active(self) -> bool:
        return self.cfg.curriculum.name != "uniform" or self.cfg.curriculum.dars

    def requests(self, policy: Policy, rl_index: int) -> list[Request]:
        """The rollout requests of RL step ``rl_index``: ``rl.num_generations`` completions each."""
        c, m, G = self.cfg.curriculum, self.cfg.rl.num_prompts, self.cfg.rl.num_generations
        self._observed, self.fwd_tokens, self.counters = None, 0.0, {}
        if c.name == "uniform":
            examples = self.stream.take(rl_index * m, m)
        else:  # pcl: the m of the next pool_factor x m prompts predicted nearest the target
            pool = self.stream.take(rl_index * m * c.pool_factor, m * c.pool_factor)
            ids = [policy.tokenizer.encode(ex.prompt) for ex in pool]
            features = prompt_features(policy, ids)
            self.fwd_tokens = float(sum(len(p) for p in ids))  # the pool's prefill: forward tokens
            if self.weights is None:  # predicts 0.5 everywhere until it has seen a step
                self.weights = torch.zeros(features.shape[1] + 1)
            predicted = predict_pass_rate(self.weights, features)  # (k m,)
            chosen = nearest_to_target(predicted, c.target, m)  # (m,)
            examples = [pool[i] for i in chosen.tolist()]
            self._features, self._predicted = features[chosen], predicted[chosen]
        return [Request(ex, n=G) for ex in examples]

    def revise(self, groups: list[Group]) -> list[Request]:
        """Record the first round's pass rates (the policy's own groups of the chosen prompts);
        with DARS, return extra requests of ``rl.num_generations`` for the hard prompts."""
        if not self.active:
            return []
        rates = pass_rates(groups)  # (P,)
        self._observed = rates
        c, G = self.cfg.curriculum, self.cfg.rl.num_generations
        if not c.dars:
            return []
        alloc = dars_allocation(rates, G, c.dars_extra // G, c.dars_threshold)  # (P,) extra groups
        extra = [Request(g.example, n=G) for g, k in zip(groups, alloc.tolist()) for _ in range(k)]
        self.counters = {"curriculum/dars_extra_rollouts": float(len(extra) * G),
                         "curriculum/dars_hard_prompts": float((alloc > 0).sum())}
        return extra

    def observe(self) -> dict:
        """Metrics of the step just run; for pcl, fit the predictor on its observed pass rates
        (calibration is measured first, on predictions made before seeing them)."""
        if not self.active or self._observed is None:
            return {}
        realised = self._observed  # (m,)
        metrics = {
            **self.counters,
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
