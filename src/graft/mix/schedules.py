"""Mixer schedules: each step, a schedule decides how much of the update is imitation.

A schedule is a small object with four methods, looked up by ``mix.schedule`` in
``MIX_SCHEDULES``; the loop never branches on its name:

    plan(step) -> Plan                   what this step does (SFT or RL, SFT weight, lr)
    revise(plan, groups, tokenizer)      rollout Requests that revise a round of verified groups
      -> [Request]                       (hints, injected demonstrations); never samples itself
    observe(step, plan, stats) -> {}     update the state from the step's typed ``StepStats``;
                                         return the schedule's metrics (``mix/...``)
    state_dict() / load_state_dict()     everything it keeps (buffers, averages, RNG) for checkpoints

Every schedule starts with ``sft.steps`` SFT steps (the warm-up: learning rate with linear warm-up
and cosine decay from ``sft.lr``), then decides the ``rl.steps`` mixed steps. In the mixed phase
the RL steps use ``rl.lr`` (after ``rl.warmup_steps``) and SFT steps ``mix.sft_lr`` (default
``rl.lr``), with the RL phase's optimizer. Data order stays a function of the step: SFT steps on the
demonstration stream read position ``step * sft.batch_size``, RL steps read the prompt stream at
``(step - sft.steps) * rl.num_prompts`` whatever kind the other steps were.

``mix/sft_share`` (logged by the steps, ``rules.sft_share``) is the share of imitation in the
update by loss weight: 1 for an SFT step, 0 for a pure RL step, in between for mixtures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from graft.config import Config
from graft.mix.revisions import failing, hint_requests, inject_requests
from graft.mix.rules import linear_weight, lr_at, sasr_sft_probability, uft_hint_probability
from graft.rollout.types import Group, Request
from graft.step_stats import StepStats
from graft.tasks.base import Example


@dataclass(frozen=True)
class Plan:
    """What one step does.

    rl:         True: sample the policy and take a policy-gradient step; False: an SFT step.
    lr:         the learning rate of the step's optimizer update.
    sft_weight: RL step: weight of an SFT loss on demonstrations added to the RL loss (0 = none).
    demos:      demonstrations to imitate (SFT step, or RL step with sft_weight > 0);
                None = the next ``sft.batch_size`` of the demonstration stream.
    hint_p:     RL step of ``hints``: the expected hint fraction of this step's revisions.
    info:       the schedule's own metrics for this step (``mix/...``), logged as they are.
    """

    rl: bool
    lr: float
    sft_weight: float = 0.0
    demos: tuple[Example, ...] | None = None
    hint_p: float = 0.0
    info: dict = field(default_factory=dict)


def _warmup(cfg: Config, step: int) -> Plan | None:
    """The SFT warm-up's plan for ``step < sft.steps`` (every schedule starts with it), else None."""
    if step >= cfg.sft.steps:
        return None
    return Plan(rl=False, lr=lr_at(step, cfg.sft.steps, cfg.sft.warmup_steps, cfg.sft.lr, cosine=True))


def _rl_lr(cfg: Config, step: int) -> float:
    return lr_at(step - cfg.sft.steps, cfg.rl.steps, cfg.rl.warmup_steps, cfg.rl.lr, cosine=False)


def _sft_lr(cfg: Config) -> float:
    return cfg.mix.sft_lr if cfg.mix.sft_lr is not None else cfg.rl.lr


class Schedule:
    """The interface, with the defaults of a schedule that keeps no state."""

    uses_demonstrations = True  # after the warm-up; checked before a run starts

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @staticmethod
    def check_config(cfg: Config) -> list[str]:
        """Problems of this schedule's config keys, each naming its key (empty when fine)."""
        return []

    def plan(self, step: int) -> Plan:
        raise NotImplementedError

    def revise(self, plan: Plan, groups: list[Group], tokenizer) -> list[Request]:
        """Requests that revise a round of verified groups (none by default)."""
        return []

    def observe(self, step: int, plan: Plan, stats: StepStats) -> dict:
        """Update the state from the finished step; return extra metrics to log."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class SftThenRL(Schedule):
    """``sft.steps`` SFT steps, then ``rl.steps`` RL steps: the classic two-stage recipe (default)."""

    uses_demonstrations = False

    def plan(self, step: int) -> Plan:
        return _warmup(self.cfg, step) or Plan(rl=True, lr=_rl_lr(self.cfg, step))


class Interleaved(Schedule):
    """ReLIFT (arXiv 2506.07527): RL steps; prompts on which every rollout failed go with their
    demonstrations to a buffer (``revise``); when it holds
    ``mix.buffer_size`` items, the next step is one SFT step on the oldest ``buffer_size`` of them,
    which then leave the buffer. The SFT step takes the place of an RL step in the step count.
    ReLIFT (Ma et al. 2025, "Learning What Reinforcement Learning Can't", arXiv 2506.07527,
    Sec. 3; equation numbers not checked). Its revision asks for nothing: it only records."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.buffer: list[Example] = []
        self._buffered = 0

    def plan(self, step: int) -> Plan:
        warm, size = _warmup(self.cfg, step), self.cfg.mix.buffer_size
        if warm is not None:
            return warm
        self._buffered = 0
        if len(self.buffer) >= size:
            return Plan(rl=False, lr=_sft_lr(self.cfg), demos=tuple(self.buffer[:size]))
        return Plan(rl=True, lr=_rl_lr(self.cfg, step))

    def revise(self, plan: Plan, groups: list[Group], tokenizer) -> list[Request]:
        found = failing(groups)
        self.buffer.extend(groups[i].example for i in found)
        self._buffered += len(found)
        return []

    def observe(self, step: int, plan: Plan, stats: StepStats) -> dict:
        if not plan.rl and plan.demos is not None:
            del self.buffer[: len(plan.demos)]
        counts = {"mix/buffered": float(self._buffered)} if plan.rl else {}
        return {**counts, "mix/buffer_items": float(len(self.buffer))}

    def state_dict(self) -> dict:
        return {"buffer": list(self.buffer)}

    def load_state_dict(self, state: dict) -> None:
        self.buffer[:] = state["buffer"]


class Adaptive(Schedule):
    """SASR-style (arXiv 2505.13026): each mixed step is SFT with probability
    p = clip(g / g_ref, mix.adaptive_p_min, mix.adaptive_p_max) (``rules.sasr_sft_probability``),
    else RL, drawn from a seeded generator that is checkpointed.

    g is a moving average (decay ``mix.adaptive_ema``) of the gradient norms (before clipping) of
    the SFT steps taken so far; g_ref is its value at the end of the warm-up. Without a warm-up
    (``sft.steps: 0``) the first mixed step is an SFT step and sets g_ref. RL steps do not move g:
    the ratio changes when an SFT step measures how far the policy now is from the demonstrations.
    """

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.grad_norm: float | None = None  # g
        self.ref: float | None = None  # g_ref
        self.rng = torch.Generator().manual_seed(cfg.seed + 3)

    def plan(self, step: int) -> Plan:
        warm, mix = _warmup(self.cfg, step), self.cfg.mix
        if warm is not None:
            return warm
        if self.ref is None:
            return Plan(rl=False, lr=_sft_lr(self.cfg), info={"mix/p_sft": 1.0})
        p = sasr_sft_probability(self.grad_norm, self.ref, mix.adaptive_p_min, mix.adaptive_p_max)
        draw = float(torch.rand((), generator=self.rng))
        if draw < p:
            return Plan(rl=False, lr=_sft_lr(self.cfg), info={"mix/p_sft": p})
        return Plan(rl=True, lr=_rl_lr(self.cfg, step), info={"mix/p_sft": p})

    def observe(self, step: int, plan: Plan, stats: StepStats) -> dict:
        if not plan.rl:
            g, decay = stats.optim.grad_norm, self.cfg.mix.adaptive_ema
            self.grad_norm = g if self.grad_norm is None else decay * self.grad_norm + (1 - decay) * g
            if step == self.cfg.sft.steps - 1 or (self.ref is None and step >= self.cfg.sft.steps):
                self.ref = self.grad_norm
        ratio = self.grad_norm / self.ref if self.ref else 1.0
        return {"mix/grad_norm_ratio": ratio}

    def state_dict(self) -> dict:
        return {"grad_norm": self.grad_norm, "ref": self.ref, "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.grad_norm, self.ref = state["grad_norm"], state["ref"]
        self.rng.set_state(state["rng"])


class Hints(Schedule):
    """RL steps in which failing groups are resampled with a demonstration prefix as a hint
    (``revisions.hint_requests``: Guide's importance correction, UFT's hint lengths). The expected
    hint fraction follows UFT's cosine p(t) from ``mix.hint_p_high`` down to ``mix.hint_p_low``
    over ``mix.hint_steps`` mixed steps, then 0 (``rules.uft_hint_probability``). Logs ``mix/hint_p``
    and ``mix/hint_len`` (mean hint tokens over the hinted groups; 0 when none was hinted)."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.rng = torch.Generator().manual_seed(cfg.seed + 4)  # hint lengths
        self._hinted = self._hint_tokens = 0

    def plan(self, step: int) -> Plan:
        warm, mix = _warmup(self.cfg, step), self.cfg.mix
        if warm is not None:
            return warm
        horizon = mix.hint_steps or self.cfg.rl.steps
        p = uft_hint_probability(step - self.cfg.sft.steps, horizon, mix.hint_p_low, mix.hint_p_high)
        self._hinted = self._hint_tokens = 0
        return Plan(rl=True, lr=_rl_lr(self.cfg, step), hint_p=p, info={"mix/hint_p": p})

    def revise(self, plan: Plan, groups: list[Group], tokenizer) -> list[Request]:
        rl = self.cfg.rl
        requests = hint_requests(groups, failing(groups), tokenizer, plan.hint_p, self.rng,
                                 rl.num_generations, rl.max_new_tokens)
        self._hinted += len(requests)
        self._hint_tokens += sum(len(r.prefix) for r in requests)
        return requests

    def observe(self, step: int, plan: Plan, stats: StepStats) -> dict:
        if not plan.rl:
            return {}
        n = self._hinted
        return {"mix/hinted_groups": float(n), "mix/hint_tokens": float(self._hint_tokens),
                "mix/hint_len": self._hint_tokens / n if n else 0.0}

    def state_dict(self) -> dict:
        return {"rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.set_state(state["rng"])


class Inject(Schedule):
    """LUFFY (arXiv 2504.14945): RL steps in which a failing group's last rollout is replaced by the
    demonstration, trained with policy shaping f(p) = p / (p + mix.inject_gamma)
    (``revisions.inject_requests``). Keeps only the step's count of injections."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self._injected = 0

    def plan(self, step: int) -> Plan:
        self._injected = 0
        return _warmup(self.cfg, step) or Plan(rl=True, lr=_rl_lr(self.cfg, step))

    def revise(self, plan: Plan, groups: list[Group], tokenizer) -> list[Request]:
        requests = inject_requests(groups, failing(groups))
        self._injected += len(requests)
        return requests

    def observe(self, step: int, plan: Plan, stats: StepStats) -> dict:
        return {"mix/injected": float(self._injected)} if plan.rl else {}


class Weighted(Schedule):
    """RL steps whose loss adds w(t) x the SFT loss on the next ``sft.batch_size`` demonstrations:
    w moves linearly from ``mix.sft_weight`` to ``mix.sft_weight_end`` (default: constant) over the
    ``rl.steps`` mixed steps (``rules.linear_weight``). Logs ``mix/sft_weight``. Stateless."""

    def plan(self, step: int) -> Plan:
        warm, mix = _warmup(self.cfg, step), self.cfg.mix
        if warm is not None:
            return warm
        end = mix.sft_weight if mix.sft_weight_end is None else mix.sft_weight_end
        w = linear_weight(step - self.cfg.sft.steps, self.cfg.rl.steps, mix.sft_weight, end)
        return Plan(rl=True, lr=_rl_lr(self.cfg, step), sft_weight=w, info={"mix/sft_weight": w})


MIX_SCHEDULES: dict[str, type] = {
    "sft_then_rl": SftThenRL,
    "interleaved": Interleaved,
    "adaptive": Adaptive,
    "hints": Hints,
    "inject": Inject,
    "weighted": Weighted,
}
