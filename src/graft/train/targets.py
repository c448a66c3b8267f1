"""From trained groups to a Batch the loss can use, in four separate stages:

    collate (pure)  ->  token masks (pure)  ->  frozen forwards (the only model calls)  ->  advantages

- ``collate``: pad prompts and completions, behaviour log-probs (``train.batch.make_batch``).
- ``token_masks``: which tokens carry loss (DAPO's overlong filter, stale tokens of partial
  rollouts), which were copied from a demonstration (``graft.mix``) and which take LUFFY's
  policy-shaping loss.
- ``frozen_forwards``: every no-grad model pass of the step in one place: the KL reference's
  log-probs, the critic's values, the current policy's log-probs of stale tokens (decoupled IS).
- ``targets``: token rewards (KL in the reward), advantages from any estimator through one input
  type (``algos.advantages.AdvantageInputs``), the truncated IS weight of stale tokens,
  aggregation weights; returns the Batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from graft.algos import ADVANTAGES, KL_ESTIMATORS, LOSS_AGG
from graft.algos.advantages import AdvantageInputs, compute_advantages, outcome_token_rewards
from graft.algos.lp_reg import lp_reg_selection
from graft.config import Config
from graft.models.policy import device_of
from graft.rollout.partial import STALE_TOKENS, stale_tokens
from graft.rollout.partial import decoupled_truncated_is as truncated_is
from graft.rollout.tree import tree_tensors
from graft.rollout.types import Group
from graft.train.batch import Batch, completion_logprobs, completion_proxy_logprobs, make_batch
from graft.train.lean import settings


def collate(groups: list[Group], pad_id: int, device: torch.device | str = "cpu") -> Batch:
    """The groups' rollouts, group-major, padded into a Batch with behaviour log-probs, on ``device``."""
    flat = [ro for g in groups for ro in g]
    return make_batch([ro.prompt_ids for ro in flat], [ro.completion_ids for ro in flat], pad_id,
                      old_logprobs=[ro.logprobs for ro in flat], device=device)


@dataclass
class TokenMasks:
    """(B, T) float masks. tokens: every completion token. loss: tokens that carry loss.
    stale: tokens an older policy version sampled (all 0 unless partial rollouts). demo:
    tokens copied from a demonstration. policy_shaping: those that take LUFFY's loss."""

    tokens: torch.Tensor
    loss: torch.Tensor
    stale: torch.Tensor
    demo: torch.Tensor
    policy_shaping: torch.Tensor
    has_versions: bool  # some rollout records per-token versions (partial rollouts)


def token_masks(groups: list[Group], batch: Batch, cfg: Config, version: int) -> TokenMasks:
    flat = [ro for g in groups for ro in g]
    tokens = batch.loss_mask  # (B, T) every completion token
    dev = tokens.device
    mask = tokens
    if cfg.algo.mask_truncated:  # DAPO overlong filtering: cut completions carry no loss
        cut = torch.tensor([ro.finish_reason == "length" for ro in flat], device=dev)  # (B,)
        mask = tokens * (~cut).float()[:, None]  # (B, T)
    has_versions = any(ro.token_versions is not None for ro in flat)
    stale = torch.zeros_like(tokens)
    if has_versions:  # partial rollouts: tokens an older policy sampled
        stale = stale_tokens([ro.token_versions for ro in flat], version, tokens.shape[1], dev) * tokens  # (B, T)
        mask = STALE_TOKENS[cfg.rollout.stale](mask, stale)  # (B, T)
    demo = torch.zeros_like(tokens)  # (B, T)
    for i, ro in enumerate(flat):
        demo[i, : ro.demo_len] = 1.0
    shaping = demo * torch.tensor([float(ro.policy_shaping) for ro in flat], device=dev)[:, None]  # (B, T)
    return TokenMasks(tokens, mask, stale, demo, shaping, has_versions)


@dataclass
class Frozen:
    """No-grad forwards of the step, (B, T) each or None when not needed."""

    ref_logprobs: torch.Tensor | None = None  # the KL reference (algo.kl on)
    values: torch.Tensor | None = None  # the critic at scoring time (gae)
    prox_logprobs: torch.Tensor | None = None  # the current policy on stale tokens (stale_is_cap)
    proxy_logprobs: torch.Tensor | None = None  # Lp-Reg's min-p proxy of the policy (algo.lp_reg_coef)
    fwd_rows: int = 0  # how many full-batch forwards were run (compute accounting)


def needs_prox(masks: TokenMasks, cfg: Config) -> bool:
    return cfg.rollout.stale_is_cap is not None and bool(masks.stale.any())


@torch.no_grad()
def frozen_forwards(learner, batch: Batch, masks: TokenMasks, cfg: Config) -> Frozen:
    """Every forward the step runs without gradients, in one place."""
    out = Frozen()
    lean = settings(cfg.optim)
    kw = {"chunk": lean.logprob_chunk, "fused": lean.logprob_impl == "fused"}
    if learner.ref is not None:
        out.ref_logprobs, _ = completion_logprobs(learner.ref, batch, cfg.rl.temperature, **kw)
        out.fwd_rows += 1
    if learner.critic is not None:
        out.values = learner.critic.values(batch.ids, batch.attention_mask, batch.prompt_width,
                                           masks.tokens.shape[1]) * masks.tokens  # (B, T)
        out.fwd_rows += 1
    if needs_prox(masks, cfg):
        out.prox_logprobs, _ = completion_logprobs(learner.policy, batch, cfg.rl.temperature, **kw)
        out.fwd_rows += 1
    if cfg.algo.lp_reg_coef > 0:
        out.proxy_logprobs = completion_proxy_logprobs(learner.policy, batch, cfg.rl.temperature,
                                                       cfg.algo.lp_reg_min_p, chunk=lean.logprob_chunk or 1024)
        out.fwd_rows += 1
    return out


def targets(groups: list[Group], batch: Batch, masks: TokenMasks, frozen: Frozen, cfg: Config
            ) -> tuple[Batch, float | None]:
    """The Batch with loss mask, per-token advantages, value targets, aggregation weights and the
    demonstration masks; and the mean per-token KL folded into the reward (None when it is not)."""
    algo, tokens, mask = cfg.algo, masks.tokens, masks.loss
    P, G = len(groups), len(groups[0]) if groups else 0
    rewards = torch.tensor([ro.shaped_reward for g in groups for ro in g], dtype=torch.float32,
                           device=tokens.device)  # (B,)
    token_rewards = outcome_token_rewards(rewards, tokens)  # (B, T) reward on the last token
    kl_reward = None
    if frozen.ref_logprobs is not None and algo.kl_in == "reward":  # KL as a per-token reward penalty
        kl = KL_ESTIMATORS[algo.kl](batch.old_logprobs, frozen.ref_logprobs) * tokens  # (B, T)
        token_rewards = token_rewards - algo.kl_coef * kl
        kl_reward = float(kl.sum() / tokens.sum().clamp(min=1))
    spec = ADVANTAGES[algo.advantage]
    ancestors = token_node = None
    if spec.level == "tree":
        ancestors, token_node = tree_tensors(groups, tokens.shape[1], tokens.device)  # (P, G, D), (B, T)
    inputs = AdvantageInputs(rewards=token_rewards.sum(-1).view(P, G), token_rewards=token_rewards, mask=mask,
                             tokens=tokens, values=frozen.values, ancestors=ancestors, token_node=token_node,
                             gamma=algo.gamma, lam=algo.lam)
    advantages, returns = compute_advantages(spec, inputs)  # (B, T) each
    weights = LOSS_AGG[algo.loss_agg](mask, cfg.rl.max_new_tokens)  # (B, T) over the whole batch
    old_logprobs = batch.old_logprobs
    if frozen.prox_logprobs is not None:  # decoupled PPO with truncated IS on stale tokens
        old, is_weight = truncated_is(frozen.prox_logprobs, batch.old_logprobs, masks.stale, cfg.rollout.stale_is_cap)
        old_logprobs = old * tokens
        advantages = advantages * is_weight  # (B, T) the loss is linear in the advantage
    old_values = frozen.values if frozen.values is not None else torch.zeros_like(tokens)
    lp_reg = None
    if frozen.proxy_logprobs is not None:  # chosen on the whole batch: micro-batching cannot move it
        lp_reg = lp_reg_selection(batch.old_logprobs, frozen.proxy_logprobs, advantages * mask, mask,
                                  algo.lp_reg_frac)
    batch = replace(batch, old_logprobs=old_logprobs, loss_mask=mask, advantages=advantages * mask,
                    loss_weights=weights, old_values=old_values, returns=returns, demo_mask=masks.demo * mask,
                    policy_shaping_mask=masks.policy_shaping * mask, ref_logprobs=frozen.ref_logprobs,
                    proxy_logprobs=frozen.proxy_logprobs, lp_reg_mask=lp_reg)
    return batch, kl_reward


def build_batch(learner, groups: list[Group], cfg: Config, version: int = 0) -> tuple[Batch, dict]:
    """All four stages for groups whose rewards are shaped: the Batch and its statistics
    (``rollout/kl`` with KL in the reward, ``rollout/off_policy_token_frac`` with per-token
    versions). For tests and benchmarks; ``rl_step`` runs the stages itself."""
    batch = collate(groups, learner.policy.tokenizer.pad_id, device_of(learner.policy))
    masks = token_masks(groups, batch, cfg, version)
    batch, kl = targets(groups, batch, masks, frozen_forwards(learner, batch, masks, cfg), cfg)
    info = {} if kl is None else {"rollout/kl": kl}
    if masks.has_versions:
        info["rollout/off_policy_token_frac"] = float(masks.stale.sum() / masks.tokens.sum().clamp(min=1))
    return batch, info
