"""One RL step, read top to bottom as the dataflow:

    requests -> rollouts -> verified groups -> selection -> shaping -> batch -> advantages
             -> losses -> update -> StepStats

Every stage is a function of plain data (``graft.rollout.types``) in its own module:
``train.collect`` (sources, verifier, the mixer's and curriculum's revision requests, dynamic
sampling), ``rewards.scoring.shape_groups``, ``train.targets`` (collation, token masks, the
frozen forwards, advantages) and ``update`` below. Every formula comes from a registry of pure
functions chosen by config name (``graft.algos``, ``graft.rewards.shaping``); this file only
wires them and never branches on a name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from graft.algos import KL_ESTIMATORS, POLICY_LOSSES
from graft.algos.losses import aggregate
from graft.algos.lp_reg import lp_reg_penalty
from graft.algos.selection import trained_rows
from graft.algos.value import clipped_value_loss
from graft.config import Config
from graft.curriculum.step import Curriculum
from graft.mix.rules import policy_shaping_loss, sft_share
from graft.mix.schedules import Plan, Schedule
from graft.models.checkpointing import set_activation_checkpointing
from graft.models.critic import Critic
from graft.models.policy import Policy, device_of
from graft.rewards.scoring import shape_groups
from graft.rollout.tree import token_metrics
from graft.rollout.types import Group, Request
from graft.step_stats import BatchStats, LossStats, OptimStats, PerfStats, RolloutStats, StepStats
from graft.tasks.base import Example, Task
from graft.timing import timed
from graft.train.batch import Batch, completion_logprobs, padding_fraction
from graft.train.collect import PLAIN, Collected, collect, informative, keyed, step_seed
from graft.train.lean import settings
from graft.train.steps import apply_update, compute_metrics, demo_batch, sft_backward
from graft.train.targets import collate, frozen_forwards, targets, token_masks


@dataclass
class Learner:
    """What an RL step updates: the policy and its optimizer; the frozen reference (KL on);
    the critic and its optimizer (``algo.advantage: gae``)."""

    policy: Policy
    optimizer: torch.optim.Optimizer
    ref: Policy | None = None
    critic: Critic | None = None
    critic_optimizer: torch.optim.Optimizer | None = None


@dataclass
class Pipeline:
    """The run's RL components, each chosen by a config name and built once by the loop."""

    cfg: Config
    task: Task
    source: object  # rollout.strategy (graft.rollout.sources), run where distributed.backend says
    schedule: Schedule  # mix.schedule
    curriculum: Curriculum  # curriculum.name / dars
    verifier: object = None  # distributed.backend's verifier stage (None = in this process)
    backend: object = None  # distributed.backend (graft.distributed), closed when the run ends


def step_requests(pipe: Pipeline, policy: Policy, rl_index: int, refill_stream) -> tuple[list[Request], list]:
    """RL step ``rl_index``'s rollout requests (the curriculum's, plus the prompts a partial
    source needs to fill its flight) and its refill prompts (dynamic sampling's spares): the
    next ``select.max_extra_prompts`` of ``refill_stream``, a function of the step (resumable)."""
    cfg = pipe.cfg
    budget = cfg.select.max_extra_prompts
    requests = pipe.curriculum.requests(policy, rl_index)
    refills = refill_stream.take(rl_index * budget, budget)
    more = pipe.source.prompts_wanted(len(requests)) - len(requests)
    return requests + [Request(ex, n=cfg.rl.num_generations) for ex in refills[:more]], refills


def announce_ahead(pipe: Pipeline, policy: Policy, step: int, total_steps: int, refill_stream) -> None:
    """An asynchronous source (``lookahead`` k > 0: ``distributed.max_staleness``) learns the
    requests of steps step+1 .. step+k now, to sample them while this step trains. The requests
    are the ones ``step_requests`` will return at those steps (the checks allow this only with a
    curriculum whose prompts are a function of the step)."""
    sft_steps = pipe.cfg.sft.steps
    for later in range(step + 1, min(step + pipe.source.lookahead, total_steps - 1) + 1):
        if pipe.source.announced(later):  # announced at an earlier step: its requests are the same
            continue
        requests = step_requests(pipe, policy, later - sft_steps, refill_stream)[0]
        # keyed as collect() keys that step's first round, so the job sampled ahead is the one asked for
        pipe.source.ahead(later, keyed(requests, step_seed(pipe.cfg.seed, later), 0, PLAIN))


def rl_step(learner: Learner, pipe: Pipeline, requests: list[Request], refills: list[Example], plan: Plan,
            demos: list[Example], seed: int, version: int) -> StepStats:
    """Sample, verify and select groups for ``requests`` (``refills``: dynamic sampling's spare
    prompts; ``seed``: the step's sampling key, ``train.collect.step_seed``), shape rewards, build
    the batch, update (plus ``plan.sft_weight`` x SFT on ``demos``)."""
    cfg, policy = pipe.cfg, learner.policy
    t0 = time.perf_counter()
    got = collect(pipe.source, policy, pipe.task, requests, refills, pipe.schedule, plan, pipe.curriculum, cfg,
                  seed, version, pipe.verifier)  # requests -> rollouts -> verified groups -> selection
    t_rollout = time.perf_counter() - t0
    shape_groups(got.groups, cfg.shaping, cfg.rl.max_new_tokens)  # once, over the trained groups
    sft_batch = demo_batch(policy, list(demos)) if plan.sft_weight and demos else None
    sft_weight = plan.sft_weight if sft_batch is not None else 0.0
    batch, trained, skipped, kl, frozen_rows, off_policy = None, None, 0, None, 0, None
    losses, grad_norm, padding = LossStats(policy=0.0, total=0.0), 0.0, None  # nothing to learn from
    phases: dict[str, float] = {}  # seconds per stage of the update (perf/*_time)
    if got.groups:
        batch = collate(got.groups, policy.tokenizer.pad_id, device_of(policy))
        masks = token_masks(got.groups, batch, cfg, version)
        with timed(phases, "frozen"):
            frozen = frozen_forwards(learner, batch, masks, cfg)  # reference, critic, proximal
        batch, kl = targets(got.groups, batch, masks, frozen, cfg)  # advantages, weights
        trained, skipped = trained_part(learner, batch, cfg)  # zero-advantage rows left out (optional)
        with timed(phases, "update"):
            losses, grad_norm, padding = update(learner, trained, cfg, plan.lr, sft_batch, sft_weight, phases,
                                                total_tokens=float(batch.loss_mask.sum()))
        if skipped and losses.entropy is not None:  # the trained rows' entropy, not a share of the batch's
            losses = replace(losses, entropy=losses.entropy * float(batch.loss_weights.sum())
                             / max(float(trained.loss_weights.sum()), 1e-12))
        frozen_rows = frozen.fwd_rows
        off_policy = float(masks.stale.sum() / masks.tokens.sum().clamp(min=1)) if masks.has_versions else None
    return StepStats(
        losses=losses, optim=OptimStats(grad_norm, plan.lr),
        perf=_perf(got, batch, trained, sft_batch, frozen_rows, learner.critic is not None, cfg,
                   time.perf_counter() - t0, t_rollout, padding, pipe.curriculum.fwd_tokens, phases),
        sft_share=_share(batch, sft_weight),
        rollout=_rollout_stats(got, kl, off_policy, _staleness(got.groups, version, pipe.source)),
        batch=_batch_stats(got.groups, skipped if cfg.optim.skip_zero_advantage else None), select=got.select,
        counters=dict(got.report.counters),
    )


# ---------------------------------------------------------------- statistics of the step


def _staleness(groups: list[Group], version: int, source) -> tuple[float, float] | None:
    """(mean, max) of version - the version that sampled each trained rollout, for a source that
    samples ahead of the learner (``lookahead`` > 0); None otherwise."""
    if not source.lookahead or not groups:
        return None
    lags = [version - ro.policy_version for g in groups for ro in g]
    return sum(lags) / len(lags), float(max(lags))


def _rollout_stats(got: Collected, kl: float | None, off_policy: float | None,
                   staleness: tuple[float, float] | None = None) -> RolloutStats:
    sampled = got.sampled
    flat = [ro for g in sampled for ro in g]
    rewards = torch.tensor([[ro.verifier_reward for ro in g] for g in sampled], device="cpu")  # (P', G)
    lengths = torch.tensor([len(ro.completion_ids) for ro in flat], dtype=torch.float32, device="cpu")
    tm = token_metrics(sampled)
    return RolloutStats(
        reward_mean=float(rewards.mean()), reward_std=float(rewards.std()) if rewards.numel() > 1 else 0.0,
        accuracy=sum(ro.correct for ro in flat) / len(flat),
        zero_var_frac=1.0 - sum(informative(sampled)) / len(sampled),
        completion_len=float(lengths.mean()),
        truncated_frac=sum(ro.finish_reason == "length" for ro in flat) / len(flat),
        tokens_per_rollout=tm["rollout/tokens_per_rollout"], prefix_share=tm["rollout/prefix_share"],
        entropy=tm["rollout/entropy"],
        generated_tokens=got.own.generated_tokens, decode_steps=got.own.decode_steps,
        off_policy_token_frac=off_policy, kl=kl,
        staleness_mean=None if staleness is None else staleness[0],
        staleness_max=None if staleness is None else staleness[1],
    )


def _batch_stats(groups: list[Group], skipped: int | None = None) -> BatchStats | None:
    if not groups:
        return None
    shaped = torch.tensor([ro.shaped_reward for g in groups for ro in g], device="cpu")  # (B,)
    verifier = torch.tensor([ro.verifier_reward for g in groups for ro in g], device="cpu")  # (B,)
    return BatchStats(groups=float(len(groups)), reward_mean=float(shaped.mean()),
                      reward_std=float(shaped.std()) if shaped.numel() > 1 else 0.0,
                      verifier_reward_mean=float(verifier.mean()),
                      skipped_rows=None if skipped is None else float(skipped))


def _share(batch: Batch | None, sft_weight: float) -> float:
    if batch is None:
        return 0.0
    w = batch.loss_weights  # (B, T)
    return sft_share(float(w.sum()), float((w * batch.demo_mask).sum()), sft_weight)


def _perf(got: Collected, batch: Batch | None, trained: Batch | None, sft_batch: Batch | None, frozen_rows: int,
          has_critic: bool, cfg: Config, step_time: float, t_rollout: float, padding: float | None,
          curriculum_fwd: float, phases: dict[str, float]) -> PerfStats:
    """Compute in forward-token equivalents: sampling (every call of the step), the curriculum's
    feature forward, the frozen forwards (over ``batch``); the tokens of ``trained`` (the rows the
    update computed) count once per PPO iteration."""
    fwd = got.report.fwd_tokens + curriculum_fwd
    train_tokens = 0.0
    if batch is not None:
        n_iter = cfg.rl.num_iterations
        fwd += float(batch.attention_mask.sum()) * frozen_rows
        train_tokens = n_iter * float(trained.attention_mask.sum()) * (1 + has_critic)
        if sft_batch is not None:
            train_tokens += n_iter * float(sft_batch.attention_mask.sum())
    c = compute_metrics(fwd, train_tokens)
    return PerfStats(step_time=step_time, tokens_per_s=got.own.generated_tokens / t_rollout,
                     fwd_tokens=c["perf/fwd_tokens"], train_tokens=c["perf/train_tokens"],
                     compute=c["perf/compute"], rollout_time=t_rollout, padding_frac=padding,
                     verify_time=got.verify_time, prefill_time=got.report.prefill_time,
                     frozen_time=phases.get("frozen"), update_time=phases.get("update"),
                     backward_time=phases.get("backward"), optimizer_time=phases.get("optimizer"))


# ---------------------------------------------------------------- losses and update


def _fused(cfg: Config) -> bool:
    return settings(cfg.optim).logprob_impl == "fused"


def _policy_loss(learner: Learner, mb: Batch, cfg: Config, total_tokens: float,
                 phases: dict[str, float] | None = None) -> dict:
    """Backward the micro-batch's part of the batch loss; return its part of the loss statistics
    (``phases``: gains the backward's seconds)."""
    algo = cfg.algo
    logp, entropy = completion_logprobs(learner.policy, mb, cfg.rl.temperature, with_entropy=True,
                                        chunk=settings(cfg.optim).logprob_chunk, fused=_fused(cfg))
    per_token, clipped = POLICY_LOSSES[algo.policy_loss](
        logp=logp, old_logp=mb.old_logprobs, advantages=mb.advantages, mask=mb.loss_mask,
        clip_low=algo.clip_low, clip_high=algo.clip_high,
    )
    if bool(mb.policy_shaping_mask.any()):  # LUFFY: injected demonstration tokens, shaped and never clipped
        shaped = mb.policy_shaping_mask > 0  # (b, T)
        luffy = policy_shaping_loss(logp, mb.advantages, mb.policy_shaping_mask, cfg.mix.inject_gamma)  # (b, T)
        per_token = torch.where(shaped, luffy, per_token)
        clipped = clipped & ~shaped
    w = mb.loss_weights  # (b, T) weights of the whole batch: micro-batch losses add up exactly
    pg = aggregate(per_token, w)
    loss = pg
    kl_value = 0.0
    if mb.ref_logprobs is not None and algo.kl_in == "loss":
        kl = aggregate(KL_ESTIMATORS[algo.kl](logp, mb.ref_logprobs), w)
        loss = loss + algo.kl_coef * kl
        kl_value = kl.item()
    ent = aggregate(entropy, w)
    if algo.entropy_coef:
        loss = loss - algo.entropy_coef * ent
    lp = {}
    if mb.lp_reg_mask is not None:  # Lp-Reg: KL toward the min-p proxy on the selected tokens
        reg = aggregate(lp_reg_penalty(logp, mb.proxy_logprobs, mb.lp_reg_mask), w)
        loss = loss + algo.lp_reg_coef * reg
        lp = {"lp_reg": reg.item(), "lp_reg_tokens": float(mb.lp_reg_mask.sum()) / total_tokens}
    with timed(phases, "backward"):
        loss.backward()
    return {"policy": pg.item(), "total": loss.item(), "entropy": ent.item(), "kl": kl_value,
            "clip_frac": float((clipped & (mb.loss_mask > 0)).sum()) / total_tokens, **lp}


def _value_loss(learner: Learner, mb: Batch, cfg: Config, total_tokens: float,
                phases: dict[str, float] | None = None) -> dict:
    values = learner.critic.values(mb.ids, mb.attention_mask, mb.prompt_width, mb.targets.shape[1])
    weights = mb.loss_mask / total_tokens  # (b, T) token mean over the whole batch
    loss, clipped = clipped_value_loss(values, mb.old_values, mb.returns, weights, cfg.algo.value_clip)
    with timed(phases, "backward"):
        loss.backward()
    return {"value": loss.item(), "value_clip_frac": float(clipped.sum()) / total_tokens}


def trained_part(learner: Learner, batch: Batch, cfg: Config) -> tuple[Batch, int]:
    """(the rows the update computes, how many were left out): with ``optim.skip_zero_advantage``
    and no term but the policy loss acting on every row (no KL in the loss, no entropy bonus, no
    critic), the rows ``trained_rows`` finds (when it finds none, the first row alone, so that the
    optimizer still steps on a zero gradient as it would); otherwise the whole batch."""
    algo = cfg.algo
    other_terms = (batch.ref_logprobs is not None and algo.kl_in == "loss") or algo.entropy_coef != 0 \
        or learner.critic is not None
    if not cfg.optim.skip_zero_advantage or other_terms:
        return batch, 0
    keep = (batch.policy_shaping_mask > 0).any(dim=-1)  # (B,) LUFFY's rows
    if batch.lp_reg_mask is not None:
        keep = keep | batch.lp_reg_mask.any(dim=-1)
    rows = trained_rows(batch.advantages, batch.loss_mask, keep)  # (B,)
    if bool(rows.all()):
        return batch, 0
    index = rows.nonzero().flatten() if bool(rows.any()) else torch.zeros(1, dtype=torch.long, device=rows.device)
    return batch.rows(index), len(batch) - len(index)


def update(learner: Learner, batch: Batch, cfg: Config, lr: float, sft_batch: Batch | None = None,
           sft_weight: float = 0.0, phases: dict[str, float] | None = None,
           total_tokens: float | None = None) -> tuple[LossStats, float, float]:
    """``num_iterations`` passes over the batch, one optimizer step each (PPO epochs).

    With ``sft_batch``, every pass also backwards ``sft_weight`` x the token-mean NLL of its
    demonstrations into the same gradient (the ``weighted`` mixer). Returns the losses (mean over
    passes), the mean gradient norm before clipping and the micro-batches' padding share.
    ``total_tokens``: the loss tokens of the whole batch when ``batch`` is a part of it (the
    statistics' denominator; default: ``batch``'s own). When
    ``phases`` is given: ``phases["optimizer"]``, the seconds of clipping and optimizer steps, and
    ``phases["backward"]``, those inside the losses' ``backward()`` calls (every micro-batch, pass
    and loss: policy, value, SFT)."""
    total_tokens = max(float(batch.loss_mask.sum()) if total_tokens is None else total_tokens, 1.0)
    set_activation_checkpointing(learner.policy.module, cfg.optim.activation_checkpointing)
    sums: dict[str, float] = {}
    grad_norms = []
    lean = settings(cfg.optim)  # optim.* = auto resolved by prepare (graft.train.lean)
    split = batch.split_by_length if lean.sort_by_length else batch.split
    micro_batches = split(lean.micro_batch_size)
    for _ in range(cfg.rl.num_iterations):
        for mb in micro_batches:
            parts = _policy_loss(learner, mb, cfg, total_tokens, phases)
            if learner.critic is not None:
                parts.update(_value_loss(learner, mb, cfg, total_tokens, phases))
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value / cfg.rl.num_iterations
        if sft_batch is not None:
            sft = sft_backward(learner.policy, sft_batch, lean.micro_batch_size, sft_weight,
                               lean.logprob_chunk, fused=_fused(cfg), phases=phases)
            sums["sft"] = sums.get("sft", 0.0) + sft / cfg.rl.num_iterations
        with timed(phases, "optimizer"):
            grad_norms.append(apply_update(learner.policy.module, learner.optimizer, lr, cfg.optim.grad_clip))
            if learner.critic is not None:
                apply_update(learner.critic, learner.critic_optimizer, cfg.algo.critic_lr, cfg.optim.grad_clip)
    return LossStats(**sums), sum(grad_norms) / len(grad_norms), padding_fraction(micro_batches)
