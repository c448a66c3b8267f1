"""One SFT step and one RL step: the two kinds of update the loop composes.

Each takes the pieces it needs explicitly (policy, optimizer, examples, the
config section) and returns a dict of metrics aggregated over the whole update,
not the last micro-batch.
"""

from __future__ import annotations

import math
import time

import torch

from graft.algos import ADVANTAGES, KL_ESTIMATORS, LOSS_AGG, POLICY_LOSSES
from graft.algos.losses import sft_loss, token_mean
from graft.config import Config
from graft.models.policy import Policy
from graft.rollout.sampler import Rollout, sample
from graft.tasks.base import Example, Task
from graft.train.batch import Batch, completion_logprobs, make_batch


def _apply_update(policy: Policy, optimizer: torch.optim.Optimizer, lr: float, grad_clip: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    params = [p for p in policy.module.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(grad_norm)


def sft_step(
    policy: Policy, optimizer: torch.optim.Optimizer, examples: list[Example], cfg: Config, lr: float
) -> dict:
    """Next-token NLL on the demonstrations' completion tokens (prompt tokens are not trained)."""
    t0 = time.perf_counter()
    tok = policy.tokenizer
    prompts = [tok.encode(ex.prompt) for ex in examples]
    targets = [tok.encode(ex.demonstration) + [tok.eos_id] for ex in examples]
    batch = make_batch(prompts, targets, tok.pad_id)
    total_tokens = float(batch.loss_mask.sum())
    loss_sum = 0.0
    for mb in batch.split(cfg.optim.micro_batch_size):
        logp, _ = completion_logprobs(policy, mb)
        share = float(mb.loss_mask.sum()) / total_tokens
        loss = sft_loss(logp, mb.loss_mask) * share  # token mean over the whole batch
        loss.backward()
        loss_sum += loss.item()
    grad_norm = _apply_update(policy, optimizer, lr, cfg.optim.grad_clip)
    dt = time.perf_counter() - t0
    return {
        "losses/sft": loss_sum,
        "optim/grad_norm": grad_norm,
        "optim/lr": lr,
        "mix/sft_share": 1.0,
        "perf/step_time": dt,
        "perf/tokens_per_s": total_tokens / dt,
    }


def collect_rollouts(
    policy: Policy, task: Task, examples: list[Example], cfg: Config,
    generator: torch.Generator, version: int,
) -> list[list[Rollout]]:
    """Sample ``num_generations`` completions per example and score each with the task's verifier."""
    G = cfg.rl.num_generations
    prompts = [policy.tokenizer.encode(ex.prompt) for ex in examples for _ in range(G)]
    policy.module.eval()
    flat = sample(
        policy, prompts, max_new_tokens=cfg.rl.max_new_tokens, temperature=cfg.rl.temperature,
        top_p=cfg.rl.top_p, generator=generator, policy_version=version,
    )
    policy.module.train()
    groups = [flat[i * G : (i + 1) * G] for i in range(len(examples))]
    pairs = [(ex, ro) for ex, group in zip(examples, groups) for ro in group]
    if hasattr(task, "score_many"):  # graders that run in parallel (code sandboxes, math workers)
        scores = task.score_many([(ex, ro.text) for ex, ro in pairs])
    else:
        scores = [task.score(ex, ro.text) for ex, ro in pairs]
    for (_, ro), score in zip(pairs, scores):
        ro.reward, ro.correct, ro.parts = score.reward, score.correct, dict(score.parts)
    return groups


def _policy_loss(policy: Policy, ref: Policy | None, mb: Batch, cfg: Config, share: float):
    """Loss of one micro-batch, scaled by its share of the batch's tokens, and its metric sums."""
    algo = cfg.algo
    logp, entropy = completion_logprobs(policy, mb, cfg.rl.temperature, with_entropy=True)
    per_token, clipped = POLICY_LOSSES[algo.policy_loss](
        logp=logp, old_logp=mb.old_logprobs, advantages=mb.advantages, mask=mb.loss_mask,
        clip_low=algo.clip_low, clip_high=algo.clip_high,
    )
    aggregate = LOSS_AGG[algo.loss_agg]
    loss = aggregate(per_token, mb.loss_mask)
    kl_value = 0.0
    if ref is not None:
        with torch.no_grad():
            ref_logp, _ = completion_logprobs(ref, mb, cfg.rl.temperature)
        kl = aggregate(KL_ESTIMATORS[algo.kl](logp, ref_logp), mb.loss_mask)
        loss = loss + algo.kl_coef * kl
        kl_value = kl.item()
    ent = aggregate(entropy, mb.loss_mask)
    if algo.entropy_coef:
        loss = loss - algo.entropy_coef * ent
    (loss * share).backward()
    sums = {
        "losses/policy": loss.item() * share,
        "losses/entropy": ent.item() * share,
        "losses/kl": kl_value * share,
        "losses/clip_frac": float(token_mean(clipped.float(), mb.loss_mask)) * share,
    }
    return sums


def rl_step(
    policy: Policy, ref: Policy | None, optimizer: torch.optim.Optimizer, task: Task,
    examples: list[Example], cfg: Config, lr: float, generator: torch.Generator, version: int,
) -> dict:
    """Sample groups, score, compute advantages, then ``num_iterations`` clipped updates."""
    t0 = time.perf_counter()
    groups = collect_rollouts(policy, task, examples, cfg, generator, version)
    t_rollout = time.perf_counter() - t0
    rewards = torch.tensor([[ro.reward for ro in g] for g in groups])  # (P, G)
    advantages = ADVANTAGES[cfg.algo.advantage](rewards)  # (P, G)
    flat = [ro for g in groups for ro in g]
    tok = policy.tokenizer
    batch = make_batch(
        [ro.prompt_ids for ro in flat], [ro.completion_ids for ro in flat], tok.pad_id,
        old_logprobs=[ro.logprobs for ro in flat], advantages=advantages.flatten().tolist(),
    )
    total_tokens = max(float(batch.loss_mask.sum()), 1.0)
    sums: dict[str, float] = {}
    grad_norms = []
    for _ in range(cfg.rl.num_iterations):
        for mb in batch.split(cfg.optim.micro_batch_size):
            share = float(mb.loss_mask.sum()) / total_tokens
            for key, value in _policy_loss(policy, ref, mb, cfg, share).items():
                sums[key] = sums.get(key, 0.0) + value / cfg.rl.num_iterations
        grad_norms.append(_apply_update(policy, optimizer, lr, cfg.optim.grad_clip))
    dt = time.perf_counter() - t0
    lengths = torch.tensor([len(ro.completion_ids) for ro in flat], dtype=torch.float32)
    return {
        "rollout/reward_mean": float(rewards.mean()),
        "rollout/reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "rollout/accuracy": sum(ro.correct for ro in flat) / len(flat),
        "rollout/zero_var_frac": float((rewards.max(1).values == rewards.min(1).values).float().mean()),
        "rollout/completion_len": float(lengths.mean()),
        "rollout/truncated_frac": sum(ro.finish_reason == "length" for ro in flat) / len(flat),
        **sums,
        "optim/grad_norm": sum(grad_norms) / len(grad_norms),
        "optim/lr": lr,
        "mix/sft_share": 0.0,
        "perf/step_time": dt,
        "perf/rollout_time": t_rollout,
        "perf/tokens_per_s": float(lengths.sum()) / t_rollout,
    }


def lr_at(step: int, steps: int, warmup: int, peak: float, cosine: bool) -> float:
    """Linear warm-up to ``peak``, then constant or cosine decay to 10% of peak by ``steps``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if not cosine or steps <= warmup:
        return peak
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
