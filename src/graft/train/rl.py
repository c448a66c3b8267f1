"""One RL step, read top to bottom as the dataflow:

    prompts -> rollouts -> rewards (+ shaping) -> selection -> advantages -> losses -> update

Every formula comes from a registry of pure functions (``graft.algos``,
``graft.rewards.shaping``) chosen by config name; this file only wires them:
it never branches on a name. What varies by estimator is the *kind* of input
an advantage needs (``AdvantageSpec.level``: group rewards, token rewards, or
token rewards plus a critic's values).

The mixer (``graft.mix``) reaches into a step in three explicit places: a
rollout hook that may rewrite freshly sampled groups (hints, injected
demonstrations) or look at them (ReLIFT's buffer); demonstration tokens inside
groups (``Rollout.demo_len``), some of which take LUFFY's shaped loss; and an
optional SFT loss on demonstrations added to the RL loss with a weight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from graft.algos import ADVANTAGES, KL_ESTIMATORS, LOSS_AGG, POLICY_LOSSES
from graft.algos.advantages import outcome_token_rewards, whiten
from graft.algos.losses import aggregate
from graft.algos.selection import informative_groups
from graft.algos.value import clipped_value_loss
from graft.config import Config
from graft.mix.rules import policy_shaping_loss, sft_share
from graft.models.checkpointing import set_activation_checkpointing
from graft.models.critic import Critic
from graft.models.policy import Policy
from graft.rewards.shaping import LENGTH_SHAPING, overlong_penalty
from graft.rollout.partial import STALE_TOKENS, PartialRollouts, stale_tokens
from graft.rollout.partial import decoupled_truncated_is as truncated_is
from graft.rollout.sampler import Group, Rollout, sample
from graft.rollout.tree import generated_tokens, sample_tree, token_metrics, tree_tensors
from graft.tasks.base import Example, Task
from graft.train.batch import Batch, completion_logprobs, make_batch, padding_fraction
from graft.train.steps import apply_update, compute_metrics, demo_batch, sft_backward

RolloutHook = Callable[
    [Policy, Task, list[Example], list[Group], Config, torch.Generator, int], tuple[list[Group], dict]
]
"""``hook(policy, task, examples, groups, cfg, generator, version) -> (groups, info)``: sees each set
of freshly sampled, scored groups before selection and returns the groups to train on (new lists,
the sampled rollouts untouched) plus counters that are summed over the step's draws."""


@dataclass
class Learner:
    """What an RL step updates: the policy and its optimizer; the frozen reference (KL on);
    the critic and its optimizer (``algo.advantage: gae``)."""

    policy: Policy
    optimizer: torch.optim.Optimizer
    ref: Policy | None = None
    critic: Critic | None = None
    critic_optimizer: torch.optim.Optimizer | None = None


# ---------------------------------------------------------------- rollouts and rewards


def sample_groups(
    policy: Policy, task: Task, examples: list[Example], cfg: Config,
    generator: torch.Generator, version: int,
) -> list[Group]:
    """``num_generations`` completions per example, scored by the task's verifier, then shaped."""
    G = cfg.rl.num_generations
    prompts = [policy.tokenizer.encode(ex.prompt) for ex in examples]
    policy.module.eval()
    flat = SAMPLERS[cfg.rollout.strategy](policy, prompts, cfg, generator, version)
    policy.module.train()
    groups = [flat[i * G : (i + 1) * G] for i in range(len(examples))]
    score_groups(task, examples, groups, cfg)
    return groups


def score_groups(task: Task, examples: list[Example], groups: list[Group], cfg: Config) -> None:
    """Fill each rollout's reward, verdict and reward parts from the task's verifier, then shape."""
    pairs = [(ex, ro) for ex, group in zip(examples, groups) for ro in group]
    if hasattr(task, "score_many"):  # graders that run in parallel (code sandboxes, math workers)
        scores = task.score_many([(ex, ro.text) for ex, ro in pairs])
    else:
        scores = [task.score(ex, ro.text) for ex, ro in pairs]
    for (_, ro), score in zip(pairs, scores):
        ro.reward, ro.correct, ro.parts = score.reward, score.correct, dict(score.parts)
    shape_rewards(groups, cfg)


def _sample_iid(policy: Policy, prompts: list[list[int]], cfg: Config, generator: torch.Generator,
                version: int) -> list[Rollout]:
    return sample(
        policy, prompts, max_new_tokens=cfg.rl.max_new_tokens, temperature=cfg.rl.temperature,
        top_p=cfg.rl.top_p, generator=generator, policy_version=version, repeats=cfg.rl.num_generations,
        share_prefill=cfg.rollout.share_prefill, compact=cfg.rollout.compact,
    )


def _sample_tree(policy: Policy, prompts: list[list[int]], cfg: Config, generator: torch.Generator,
                 version: int) -> list[Rollout]:
    ro = cfg.rollout
    return sample_tree(
        policy, prompts, num_generations=cfg.rl.num_generations, max_new_tokens=cfg.rl.max_new_tokens,
        temperature=cfg.rl.temperature, top_p=cfg.rl.top_p, generator=generator, policy_version=version,
        segment_len=ro.segment_len, branch=ro.branch, max_depth=ro.max_depth, branch_entropy=ro.branch_entropy,
    )


SAMPLERS: dict[str, Callable[..., list[Rollout]]] = {"iid": _sample_iid, "tree": _sample_tree}
"""``rollout.strategy`` -> ``fn(policy, prompts, cfg, generator, version)``: ``num_generations``
rollouts per prompt, prompt-major."""


def shape_rewards(groups: list[Group], cfg: Config) -> None:
    """Add DAPO's overlong penalty and the configured length shaping to each rollout's reward.

    The verifier's reward stays in ``parts['verifier']``; ``reward`` becomes the shaped one.
    """
    sh = cfg.shaping
    rewards = torch.tensor([[ro.reward for ro in g] for g in groups], dtype=torch.float32)  # (P, G)
    correct = torch.tensor([[ro.correct for ro in g] for g in groups], dtype=torch.bool)  # (P, G)
    lengths = torch.tensor([[len(ro.completion_ids) for ro in g] for g in groups], dtype=torch.float32)
    shaped = LENGTH_SHAPING[sh.length](rewards, correct, lengths, sh)  # (P, G)
    if sh.overlong_cache:
        penalty = overlong_penalty(lengths.flatten(), cfg.rl.max_new_tokens, sh.overlong_cache)
        shaped = shaped + penalty.view_as(shaped)  # (P, G)
    for g, row_before, row_after in zip(groups, rewards, shaped):
        for ro, before, after in zip(g, row_before.tolist(), row_after.tolist()):
            ro.parts["verifier"] = before
            ro.reward = after


def gather_groups(
    policy: Policy, task: Task, examples: list[Example], draw_extra: Callable[[int, int], list[Example]],
    cfg: Config, generator: torch.Generator, version: int, hook: RolloutHook | None = None,
    partial: PartialRollouts | None = None,
) -> tuple[list[Group], list[Group], dict]:
    """Sample the step's groups; with dynamic sampling drop zero-variance groups and refill.

    DAPO dynamic sampling (Yu et al. 2025, arXiv 2503.14476, Eq. 11's constraint
    0 < |correct| < G): here a group is kept when its *shaped* rewards are not all
    equal (equal rewards give zero advantage for every group estimator, so the
    group teaches nothing). Refills draw ``draw_extra(offset, count)`` prompts
    until ``num_prompts`` groups are kept or ``select.max_extra_prompts`` is spent.

    A mixer ``hook`` rewrites each set of sampled groups before selection (so a failing
    group it repairs with a hint or a demonstration can be kept).

    With ``partial`` (APRIL, ``graft.rollout.partial``) the step's groups are the first
    ``num_prompts`` to complete among the buffered ones and ``examples`` plus
    ``draw_extra(0, n)`` new prompts; the others stay buffered (no dynamic sampling then).

    Returns (groups to train on, every group the policy sampled itself, metrics).
    """
    info: dict[str, float] = {}

    def draw(batch: list[Example]) -> tuple[list[Group], list[Group]]:
        if partial is None:
            own = sample_groups(policy, task, batch, cfg, generator, version)
            lengths = [len(ro.completion_ids) for g in own for ro in g]
            generated = sum(generated_tokens(g) for g in own)  # a tree's shared prefixes count once
            info["rollout/generated_tokens"] = info.get("rollout/generated_tokens", 0.0) + generated
            info["rollout/decode_steps"] = info.get("rollout/decode_steps", 0.0) + max(lengths, default=0)
        else:
            batch, own, counts = partial.step(policy, batch, cfg, generator, version)
            score_groups(task, batch, own, cfg)
            info.update(counts)
        if hook is None:
            return own, own
        mixed, counts = hook(policy, task, batch, own, cfg, generator, version)
        for key, value in counts.items():
            info[key] = info.get(key, 0.0) + value
        return own, mixed

    if partial is not None:
        examples = examples + draw_extra(0, partial.new_prompts(cfg) - len(examples))
    sampled, groups = draw(examples)
    if not cfg.select.dynamic_sampling:
        return groups, sampled, info
    want, budget = cfg.rl.num_prompts, cfg.select.max_extra_prompts
    sampled = list(sampled)
    kept = [g for g, ok in zip(groups, _informative(groups)) if ok]
    extra = 0
    while len(kept) < want and extra < budget:
        count = min(want - len(kept), budget - extra)
        own, more = draw(draw_extra(extra, count))
        extra += count
        sampled += own
        kept += [g for g, ok in zip(more, _informative(more)) if ok]
    kept = kept[:want]
    info |= {
        "select/kept_groups": float(len(kept)),
        "select/extra_prompts": float(extra),
        "select/extra_rollouts": float(extra * cfg.rl.num_generations),
        "select/filled": float(len(kept) == want),
    }
    return kept, sampled, info


def _informative(groups: list[Group]) -> list[bool]:
    rewards = torch.tensor([[ro.reward for ro in g] for g in groups], dtype=torch.float32)  # (P, G)
    return informative_groups(rewards).tolist()


# ---------------------------------------------------------------- advantages


@torch.no_grad()
def build_batch(learner: Learner, groups: list[Group], cfg: Config,
                version: int | None = None) -> tuple[Batch, dict]:
    """Pad the groups into a Batch with loss mask, per-token advantages and aggregation weights.

    ``version`` (partial rollouts): tokens sampled by an older policy are kept or masked as
    ``rollout.stale`` says, and their share is logged."""
    algo = cfg.algo
    flat = [ro for g in groups for ro in g]
    P, G = len(groups), cfg.rl.num_generations
    batch = make_batch(
        [ro.prompt_ids for ro in flat], [ro.completion_ids for ro in flat],
        learner.policy.tokenizer.pad_id, old_logprobs=[ro.logprobs for ro in flat],
    )
    tokens = batch.loss_mask  # (B, T) every completion token
    mask = tokens
    if algo.mask_truncated:  # DAPO overlong filtering: cut completions carry no loss
        cut = torch.tensor([ro.finish_reason == "length" for ro in flat])  # (B,)
        mask = tokens * (~cut).float()[:, None]  # (B, T)
    info: dict[str, float] = {}
    stale = None
    if version is not None:  # partial rollouts: tokens an older policy sampled
        stale = stale_tokens([ro.token_versions for ro in flat], version, tokens.shape[1]) * tokens  # (B, T)
        mask = STALE_TOKENS[cfg.rollout.stale](mask, stale)  # (B, T)
        info["rollout/off_policy_token_frac"] = float(stale.sum() / tokens.sum().clamp(min=1))
    rewards = torch.tensor([ro.reward for ro in flat], dtype=torch.float32)  # (B,)
    token_rewards = outcome_token_rewards(rewards, tokens)  # (B, T) reward on the last token
    if learner.ref is not None and algo.kl_in == "reward":  # KL as a per-token reward penalty
        ref_logp, _ = completion_logprobs(learner.ref, batch, cfg.rl.temperature,
                                          chunk=cfg.optim.logprob_chunk, fused=_fused(cfg))
        kl = KL_ESTIMATORS[algo.kl](batch.old_logprobs, ref_logp) * tokens  # (B, T)
        token_rewards = token_rewards - algo.kl_coef * kl
        info["rollout/kl"] = float(kl.sum() / tokens.sum().clamp(min=1))

    spec = ADVANTAGES[algo.advantage]
    old_values = returns = torch.zeros_like(tokens)
    if spec.level == "group":  # one advantage per completion, from its group's rewards
        seq_rewards = token_rewards.sum(-1).view(P, G)  # (P, G) = rewards when no KL in reward
        advantages = spec.fn(seq_rewards).reshape(-1, 1) * mask  # (B, T)
    elif spec.level == "token":  # per-token returns, normalised over the batch
        advantages = spec.fn(token_rewards, mask, algo.gamma)  # (B, T)
    elif spec.level == "tree":  # group rewards and the groups' sampling trees (rollout.strategy: tree)
        ancestors, token_node = tree_tensors(groups, tokens.shape[1])  # (P, G, D), (B, T)
        advantages = spec.fn(token_rewards.sum(-1).view(P, G), ancestors, token_node, mask)  # (B, T)
    else:  # "critic": GAE on the critic's values
        old_values = learner.critic.values(batch.ids, batch.attention_mask, batch.prompt_width,
                                           tokens.shape[1]) * tokens  # (B, T)
        advantages, returns = spec.fn(token_rewards, old_values, tokens, algo.gamma, algo.lam)
        advantages = whiten(advantages, mask)  # (B, T) PPO's usual advantage normalisation
    weights = LOSS_AGG[algo.loss_agg](mask, cfg.rl.max_new_tokens)  # (B, T) over the whole batch
    demo = torch.zeros_like(tokens)  # (B, T) tokens copied from a demonstration (graft.mix)
    for i, ro in enumerate(flat):
        demo[i, : ro.demo_len] = 1.0
    shaped = demo * torch.tensor([float(ro.shaped) for ro in flat])[:, None]  # (B, T)
    if stale is not None and cfg.rollout.stale_is_cap is not None and bool(stale.any()):
        prox, _ = completion_logprobs(learner.policy, batch, cfg.rl.temperature, chunk=cfg.optim.logprob_chunk,
                                      fused=_fused(cfg))
        old, is_weight = truncated_is(prox, batch.old_logprobs, stale, cfg.rollout.stale_is_cap)
        batch = replace(batch, old_logprobs=old * tokens)
        advantages = advantages * is_weight  # (B, T) the loss is linear in the advantage
    batch = replace(batch, loss_mask=mask, advantages=advantages * mask, loss_weights=weights,
                    old_values=old_values, returns=returns, demo_mask=demo * mask, shaped_mask=shaped * mask)
    return batch, info


# ---------------------------------------------------------------- losses and update


def _fused(cfg: Config) -> bool:
    return cfg.optim.logprob_impl == "fused"


def _policy_loss(learner: Learner, mb: Batch, cfg: Config, total_tokens: float) -> dict:
    """Backward the micro-batch's part of the batch loss; return its part of the metrics."""
    algo = cfg.algo
    logp, entropy = completion_logprobs(learner.policy, mb, cfg.rl.temperature, with_entropy=True,
                                        chunk=cfg.optim.logprob_chunk, fused=_fused(cfg))
    per_token, clipped = POLICY_LOSSES[algo.policy_loss](
        logp=logp, old_logp=mb.old_logprobs, advantages=mb.advantages, mask=mb.loss_mask,
        clip_low=algo.clip_low, clip_high=algo.clip_high,
    )
    if bool(mb.shaped_mask.any()):  # LUFFY: injected demonstration tokens, shaped and never clipped
        shaped = mb.shaped_mask > 0  # (b, T)
        luffy = policy_shaping_loss(logp, mb.advantages, mb.shaped_mask, cfg.mix.inject_gamma)  # (b, T)
        per_token = torch.where(shaped, luffy, per_token)
        clipped = clipped & ~shaped
    w = mb.loss_weights  # (b, T) weights of the whole batch: micro-batch losses add up exactly
    loss = aggregate(per_token, w)
    kl_value = 0.0
    if learner.ref is not None and algo.kl_in == "loss":
        with torch.no_grad():
            ref_logp, _ = completion_logprobs(learner.ref, mb, cfg.rl.temperature, chunk=cfg.optim.logprob_chunk,
                                              fused=_fused(cfg))
        kl = aggregate(KL_ESTIMATORS[algo.kl](logp, ref_logp), w)
        loss = loss + algo.kl_coef * kl
        kl_value = kl.item()
    ent = aggregate(entropy, w)
    if algo.entropy_coef:
        loss = loss - algo.entropy_coef * ent
    loss.backward()
    return {
        "losses/policy": loss.item(),
        "losses/entropy": ent.item(),
        "losses/kl": kl_value,
        "losses/clip_frac": float((clipped & (mb.loss_mask > 0)).sum()) / total_tokens,
    }


def _value_loss(learner: Learner, mb: Batch, cfg: Config, total_tokens: float) -> dict:
    values = learner.critic.values(mb.ids, mb.attention_mask, mb.prompt_width, mb.targets.shape[1])
    weights = mb.loss_mask / total_tokens  # (b, T) token mean over the whole batch
    loss, clipped = clipped_value_loss(values, mb.old_values, mb.returns, weights, cfg.algo.value_clip)
    loss.backward()
    return {"losses/value": loss.item(),
            "losses/value_clip_frac": float(clipped.sum()) / total_tokens}


def update(learner: Learner, batch: Batch, cfg: Config, lr: float,
           sft_batch: Batch | None = None, sft_weight: float = 0.0) -> dict:
    """``num_iterations`` passes over the batch, one optimizer step each (PPO epochs).

    With ``sft_batch``, every pass also backwards ``sft_weight`` x the token-mean NLL of its
    demonstrations into the same gradient (the ``weighted`` mixer)."""
    total_tokens = max(float(batch.loss_mask.sum()), 1.0)
    set_activation_checkpointing(learner.policy.module, cfg.optim.activation_checkpointing)
    sums: dict[str, float] = {}
    grad_norms = []
    split = batch.split_by_length if cfg.optim.sort_by_length else batch.split
    micro_batches = split(cfg.optim.micro_batch_size)
    for _ in range(cfg.rl.num_iterations):
        for mb in micro_batches:
            parts = _policy_loss(learner, mb, cfg, total_tokens)
            if learner.critic is not None:
                parts.update(_value_loss(learner, mb, cfg, total_tokens))
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value / cfg.rl.num_iterations
        if sft_batch is not None:
            sft = sft_backward(learner.policy, sft_batch, cfg.optim.micro_batch_size, sft_weight,
                               cfg.optim.logprob_chunk, fused=_fused(cfg))
            sums["losses/sft"] = sums.get("losses/sft", 0.0) + sft / cfg.rl.num_iterations
        grad_norms.append(apply_update(learner.policy.module, learner.optimizer, lr, cfg.optim.grad_clip))
        if learner.critic is not None:
            apply_update(learner.critic, learner.critic_optimizer, cfg.algo.critic_lr, cfg.optim.grad_clip)
    return {**sums, "optim/grad_norm": sum(grad_norms) / len(grad_norms),
            "perf/padding_frac": padding_fraction(micro_batches)}


def rl_step(
    learner: Learner, task: Task, examples: list[Example],
    draw_extra: Callable[[int, int], list[Example]], cfg: Config, lr: float,
    generator: torch.Generator, version: int, hook: RolloutHook | None = None,
    demos: list[Example] = (), sft_weight: float = 0.0, partial: PartialRollouts | None = None,
) -> dict:
    """Sample groups (through the mixer's ``hook``), score and shape, select, compute advantages,
    update (plus ``sft_weight`` x SFT on ``demos`` when set). Returns the step's metrics."""
    t0 = time.perf_counter()
    groups, sampled, metrics = gather_groups(learner.policy, task, examples, draw_extra, cfg,
                                             generator, version, hook, partial)
    t_rollout = time.perf_counter() - t0
    sft_batch = demo_batch(learner.policy, list(demos)) if sft_weight and demos else None
    flat = [ro for g in sampled for ro in g]
    rollout_fwd = metrics.pop("perf/rollout_fwd_tokens", None)  # partial: what this step decoded
    if rollout_fwd is None:
        rollout_fwd = sum(len(ro.prompt_ids) + len(ro.completion_ids) for ro in flat)
    fwd = metrics.pop("perf/fwd_tokens", 0.0) + rollout_fwd
    train_tokens, share = 0.0, 0.0
    if groups:
        batch, info = build_batch(learner, groups, cfg, version if partial is not None else None)
        metrics.update(info)
        metrics.update(update(learner, batch, cfg, lr, sft_batch, sft_weight if sft_batch else 0.0))
        real = float(batch.attention_mask.sum())
        n_iter, has_critic = cfg.rl.num_iterations, learner.critic is not None
        kl_ref = learner.ref is not None
        fwd += real * ((kl_ref and cfg.algo.kl_in == "reward") + has_critic
                       + n_iter * (kl_ref and cfg.algo.kl_in == "loss"))
        train_tokens = n_iter * real * (1 + has_critic)
        if sft_batch is not None:
            train_tokens += n_iter * float(sft_batch.attention_mask.sum())
        w = batch.loss_weights  # (B, T)
        share = sft_share(float(w.sum()), float((w * batch.demo_mask).sum()),
                          sft_weight if sft_batch else 0.0)
    else:  # dynamic sampling found no informative group within its budget: nothing to learn from
        metrics.update({"losses/policy": 0.0, "optim/grad_norm": 0.0})
    dt = time.perf_counter() - t0
    rewards = torch.tensor([[ro.reward for ro in g] for g in sampled])  # (P', G)
    lengths = torch.tensor([len(ro.completion_ids) for ro in flat], dtype=torch.float32)
    return {
        "rollout/reward_mean": float(rewards.mean()),
        "rollout/reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "rollout/verifier_reward_mean": sum(ro.parts["verifier"] for ro in flat) / len(flat),
        "rollout/accuracy": sum(ro.correct for ro in flat) / len(flat),
        "rollout/zero_var_frac": 1.0 - sum(_informative(sampled)) / len(sampled),
        "rollout/completion_len": float(lengths.mean()),
        "rollout/truncated_frac": sum(ro.finish_reason == "length" for ro in flat) / len(flat),
        **token_metrics(sampled),
        **metrics,
        "optim/lr": lr,
        "mix/sft_share": share,
        "perf/step_time": dt,
        "perf/rollout_time": t_rollout,
        "perf/tokens_per_s": (float(lengths.sum()) if partial is None
                              else metrics["rollout/generated_tokens"]) / t_rollout,
        **compute_metrics(fwd, train_tokens),
    }
