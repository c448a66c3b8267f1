"""Typed statistics of one training step.

Stages fill these fields; schedules and curricula read them (``stats.optim.grad_norm``), never
a log key. ``StepStats.metrics()`` flattens them into namespaced metric keys
(``losses/policy``, ``rollout/accuracy``, ...) only where metrics are written, so renaming a
log key never changes what a run does. Fields that are None are not logged (e.g. the value
loss without a critic). Component-specific counters that no other stage reads (a rollout
source's buffer sizes, DARS's extra rollouts, a schedule's ``mix/...``) travel in ``counters``,
already namespaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


def _flat(prefix: str, section) -> dict[str, float]:
    if section is None:
        return {}
    return {f"{prefix}/{f.name}": float(getattr(section, f.name)) for f in fields(section)
            if getattr(section, f.name) is not None}


@dataclass
class RolloutStats:
    """The policy's own samples of the step's requests (not the mixer's revisions or DARS's
    extras), with the verifier's rewards; ``kl`` and ``off_policy_token_frac`` are of the
    trained batch."""

    reward_mean: float  # verifier reward
    reward_std: float
    accuracy: float  # share of correct completions
    zero_var_frac: float  # share of groups whose verifier rewards are all equal
    completion_len: float  # mean tokens
    truncated_frac: float  # share cut at rl.max_new_tokens
    tokens_per_rollout: float  # generated tokens / rollouts (a tree's shared tokens once)
    prefix_share: float  # share of sampled tokens that were shared, not generated (trees)
    generated_tokens: float
    decode_steps: float
    entropy: float | None = None  # sampling policy's per-token entropy, estimated from its samples
    # (graft.rollout.tree.sampled_entropy; every sampled row, before any row leaves the update)
    off_policy_token_frac: float | None = None  # tokens an older policy sampled (partial)
    kl: float | None = None  # mean per-token KL to the reference folded into the reward
    staleness_mean: float | None = None  # asynchronous backends: versions between sampler and learner,
    staleness_max: float | None = None  # over the trained rollouts (distributed.max_staleness >= 1)


@dataclass
class BatchStats:
    """The trained groups: what the advantages saw."""

    groups: float
    reward_mean: float  # shaped reward
    reward_std: float
    verifier_reward_mean: float  # the same rollouts' verifier reward (shaping's effect: the gap)
    skipped_rows: float | None = None  # rows left out of the update (optim.skip_zero_advantage), when on


@dataclass
class SelectStats:
    """Dynamic sampling: groups kept, prompts drawn to refill, whether the batch filled."""

    kept_groups: float
    extra_prompts: float
    extra_rollouts: float
    filled: float


@dataclass
class LossStats:
    """Aggregated over the whole update (all micro-batches, mean over PPO iterations).

    total = policy + kl_coef * kl - entropy_coef * entropy + lp_reg_coef * lp_reg (+ the value and SFT losses, which
    have their own optimizers or weights and are reported apart)."""

    policy: float | None  # the policy-gradient term alone (None: an SFT step)
    total: float
    entropy: float | None = None
    kl: float | None = None
    clip_frac: float | None = None
    value: float | None = None
    value_clip_frac: float | None = None
    sft: float | None = None
    lp_reg: float | None = None  # Lp-Reg's KL term (before algo.lp_reg_coef), when on
    lp_reg_tokens: float | None = None  # the share of loss tokens it regularised


@dataclass
class OptimStats:
    grad_norm: float  # before clipping, mean over the step's optimizer updates
    lr: float


@dataclass
class PerfStats:
    """Wall time and compute in forward-token equivalents (``train.steps.compute_metrics``)."""

    step_time: float
    tokens_per_s: float
    fwd_tokens: float
    train_tokens: float
    compute: float
    rollout_time: float | None = None
    padding_frac: float | None = None
    verify_time: float | None = None  # of rollout_time: the verifier's share
    prefill_time: float | None = None  # of rollout_time: the prompt forwards that fill the cache
    frozen_time: float | None = None  # the no-grad forwards: reference, critic, proximal log-probs
    update_time: float | None = None  # forward + backward of the losses and the optimizer steps
    backward_time: float | None = None  # of update_time: inside the losses' backward() calls
    optimizer_time: float | None = None  # of update_time: clipping and the optimizer steps


TIMING_KEYS = ("perf/step_time", "perf/rollout_time", "perf/tokens_per_s", "perf/verify_time", "perf/prefill_time",
               "perf/frozen_time", "perf/update_time", "perf/backward_time", "perf/optimizer_time",
               "perf/weight_sync_s")
"""The wall-clock metric keys: they differ run to run, so comparisons of runs leave them out."""


@dataclass
class StepStats:
    """One step. ``sft_share`` is the share of imitation in the update by loss weight."""

    losses: LossStats
    optim: OptimStats
    perf: PerfStats
    sft_share: float
    rollout: RolloutStats | None = None
    batch: BatchStats | None = None
    select: SelectStats | None = None
    counters: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat, namespaced metric keys (the JSONL / TensorBoard contract)."""
        out: dict[str, float] = {}
        for prefix, section in (("rollout", self.rollout), ("batch", self.batch), ("select", self.select),
                                ("losses", self.losses), ("optim", self.optim), ("perf", self.perf)):
            out.update(_flat(prefix, section))
        out["mix/sft_share"] = float(self.sft_share)
        out.update(self.counters)
        return out
