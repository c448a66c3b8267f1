"""Advantage estimators: rewards in, advantages out, one function per published variant.

Three kinds, told apart by ``AdvantageSpec.level`` so the trainer can call any
entry of ``ADVANTAGES`` without branching on its name:

  - ``"group"``:  ``fn(rewards (P, G)) -> (P, G)``: one row per prompt, one
    column per completion of that prompt (a group); one advantage per completion.
  - ``"token"``:  ``fn(token_rewards (B, T), mask (B, T), gamma) -> (B, T)``:
    per-token advantages from per-token rewards (see ``outcome_token_rewards``).
  - ``"critic"``: ``fn(token_rewards (B, T), values (B, T), mask (B, T), gamma, lam)
    -> (advantages (B, T), returns (B, T))``: needs a learned value head.
  - ``"tree"``:   ``fn(rewards (P, G), ancestors (P, G, D), token_node (B, T), mask (B, T))
    -> (B, T)``: group rewards plus the sampling tree of each group (``rollout.strategy: tree``;
    ``graft.rollout.tree.tree_tensors`` builds the structure from the rollouts).

Every function is pure (inputs never modified) and gives exactly 0 where there
is nothing to learn from (a group of one, a group whose rewards are all equal,
masked tokens), never nan. One exception by definition: ``raft`` imitates a
group's best rewarded completions, so a group that is all correct (or a correct
group of one) keeps advantage 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

LEVELS = ("group", "token", "critic", "tree")


@dataclass(frozen=True)
class AdvantageSpec:
    """A registry entry: the estimator and the calling convention it follows (see module doc)."""

    fn: Callable
    level: str  # "group" | "token" | "critic" | "tree"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"AdvantageSpec.level must be one of {LEVELS}, got {self.level!r}")


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """Integer / bool tensors become float32; floating ones are returned as they are (not copied)."""
    return x if x.is_floating_point() else x.float()


def _flat_groups(rewards: torch.Tensor) -> torch.Tensor:
    """(P, G) -> (P, 1) bool, True where every reward of the group equals the first one."""
    return (rewards == rewards[..., :1]).all(dim=-1, keepdim=True)  # (P, 1)


# ---------------------------------------------------------------- group level: (P, G) -> (P, G)


def grpo_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO outcome-supervision advantage, one value per completion.

    DeepSeekMath (Shao et al. 2024, arXiv 2402.03300), Sec. 4.1.2 "Outcome
    Supervision RL with GRPO": A_i = (r_i - mean(r)) / std(r), mean and std over
    the G completions of one prompt; every token of o_i gets A_i.

    Args:
        rewards: (P, G) sequence rewards, any real or integer dtype.
        eps: added to the std so a near-constant group does not blow up.

    Returns:
        (P, G) advantages, in the rewards' floating dtype (float32 for integer input).

    Deviations and choices:
      - ``+ eps`` in the denominator (eps = 1e-6), as TRL and verl do; the paper has none.
      - The std is the unbiased (Bessel, divide by G - 1) one, as in TRL and verl;
        the paper does not say which.
      - G == 1: the std of one sample is undefined (G - 1 = 0), and there is
        nothing to compare against, so the advantage is 0.
      - A group whose rewards are all equal gets exactly 0. Floating-point
        ``r - mean(r)`` is not always exactly 0 (eight rewards of 0.3 leave
        3e-8, which divided by std + eps would be 0.03), so such groups are
        zeroed explicitly.
    """
    rewards = _as_float(rewards)  # (P, G); a new tensor below, the caller's is untouched
    if rewards.shape[-1] < 2:
        return torch.zeros_like(rewards)  # (P, 1)
    mean = rewards.mean(dim=-1, keepdim=True)  # (P, 1)
    std = rewards.std(dim=-1, keepdim=True, unbiased=True)  # (P, 1)
    centered = (rewards - mean).masked_fill(_flat_groups(rewards), 0.0)  # (P, G)
    return centered / (std + eps)  # (P, G)


def dr_grpo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Dr. GRPO advantage: the group mean as baseline, no division by the std.

    "Understanding R1-Zero-Like Training: A Critical Perspective" (Liu et al.
    2025, arXiv 2503.20783), Sec. 3.1 and Fig. 1: A_i = r_i - mean_j r_j. Dropping
    GRPO's 1/std removes its "question-difficulty bias" (groups that are almost
    all right or all wrong get their advantages scaled up). The other half of
    Dr. GRPO, no 1/|o_i| length normalisation, is the loss aggregation
    ``seq_sum_norm`` in ``graft.algos.losses``.

    Args:
        rewards: (P, G) sequence rewards, any real or integer dtype.
    Returns:
        (P, G) advantages, float (float32 for integer input).

    Choices: a group whose rewards are all equal (which includes G == 1) gets
    exactly 0 (see ``grpo_advantages`` for why this is explicit).
    """
    rewards = _as_float(rewards)  # (P, G)
    centered = rewards - rewards.mean(dim=-1, keepdim=True)  # (P, G)
    return centered.masked_fill(_flat_groups(rewards), 0.0)  # (P, G)


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """RLOO: REINFORCE with the leave-one-out mean of the other completions as baseline.

    "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from
    Human Feedback in LLMs" (Ahmadian et al. 2024, arXiv 2402.14740), Sec. 3
    (RLOO estimator, from Kool et al. 2019):
        A_i = r_i - 1/(G-1) sum_{j != i} r_j = G/(G-1) (r_i - mean_j r_j).
    The baseline of sample i does not depend on r_i, so the estimator is unbiased.

    Args:
        rewards: (P, G) sequence rewards, any real or integer dtype.
    Returns:
        (P, G) advantages, float (float32 for integer input).

    Choices: computed as (G r_i - sum_j r_j) / (G - 1), the leave-one-out form
    itself; G == 1 (no other sample to compare with) gives 0; a group of equal
    rewards gives exactly 0.
    """
    rewards = _as_float(rewards)  # (P, G)
    G = rewards.shape[-1]
    if G < 2:
        return torch.zeros_like(rewards)  # (P, 1)
    total = rewards.sum(dim=-1, keepdim=True)  # (P, 1)
    adv = (G * rewards - total) / (G - 1)  # (P, G)
    return adv.masked_fill(_flat_groups(rewards), 0.0)  # (P, G)


def lite_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Lite PPO advantage: group mean as baseline, divided by the std of the whole batch.

    "Part I: Tricks or Traps? A Deep Dive into RL for LLM Reasoning" (Liu et al.
    2025, arXiv 2508.08221), advantage-normalisation study and "Lite PPO": the
    mean is taken over the G completions of one prompt (group level) and the
    std over all P * G rewards of the batch (batch level):
        A_{p,i} = (r_{p,i} - mean_j r_{p,j}) / (std_{all q,j} r_{q,j} + eps).
    The other half of Lite PPO is token-level loss aggregation (``token_mean``).

    Args:
        rewards: (P, G) sequence rewards, any real or integer dtype.
        eps: added to the batch std.
    Returns:
        (P, G) advantages, float (float32 for integer input).

    Deviations and choices:
      - The paper states the group-mean / batch-std rule in words (and the
        study's equations for group and batch normalisation); the exact
        equation number was not checked against the PDF for this docstring.
      - Which std: the unbiased one (divide by P*G - 1), with eps = 1e-6. That
        is what the paper's own framework computes (ROLL's ``reward_norm``
        with ``norm_std_type="batch"``: ``rewards.std()``, torch's default
        unbiased estimate, then ``/ (std + 1e-6)``) and what TRL's
        ``scale_rewards="batch"`` does; with hundreds of rewards the two
        estimates differ by well under 1 %.
      - A group whose rewards are all equal gets exactly 0 (as in
        ``grpo_advantages``); so does a batch of one reward or a constant batch.
    """
    rewards = _as_float(rewards)  # (P, G)
    if rewards.numel() < 2:
        return torch.zeros_like(rewards)  # one reward: no spread to normalise by
    centered = rewards - rewards.mean(dim=-1, keepdim=True)  # (P, G)
    centered = centered.masked_fill(_flat_groups(rewards), 0.0)  # (P, G)
    std = rewards.std(unbiased=True)  # () over all P * G rewards
    return centered / (std + eps)  # (P, G)


def raft_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """RAFT / rejection-sampling fine-tuning as an advantage: 1 on a group's best completions.

    RAFT (Dong et al. 2023, arXiv 2304.06767, Algorithm 1) samples K responses per prompt, keeps
    the highest-reward one and fine-tunes on the kept samples; "A Minimalist Approach to LLM
    Reasoning: from Rejection Sampling to Reinforce" (Xiong et al. 2025, arXiv 2504.11343; its
    abstract: "trains only on positively rewarded samples"; the section and equation were not
    checked for this docstring) uses it with a 0/1 verifier reward as an RLVR baseline. As a
    per-completion advantage under a policy-gradient loss on fresh samples (ratio 1):
        A_i = 1  if r_i = max_j r_j and max_j r_j > 0,   else 0,
    so -A_i log pi(o_i) over the batch is SFT on the verified completions: no baseline and no
    gradient from the wrong ones.

    Args:
        rewards: (P, G) sequence rewards, any real or integer dtype.
    Returns:
        (P, G) advantages, 1.0 or 0.0, float (float32 for integer input).

    Choices: ties at the maximum all count (every positively rewarded sample, as in the 2025
    paper; RAFT's best-of-K picks one, which with 0/1 rewards is an arbitrary correct one); a group whose best reward is
    0 or negative (nothing verified) gets 0; a group that is all correct gets 1 everywhere (the
    module's one exception to "all equal gives 0": RAFT imitates it too). With shaped rewards
    (length shaping) only the group's best-shaped completions are kept.
    """
    rewards = _as_float(rewards)  # (P, G)
    best = rewards.amax(dim=-1, keepdim=True)  # (P, 1)
    keep = (rewards == best) & (best > 0)  # (P, G)
    return keep.to(rewards.dtype)  # (P, G)


# ---------------------------------------------------------------- token level helpers


def outcome_token_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Put each sequence's reward on its last masked-in token. (B,), (B, T) -> (B, T).

    The usual way to turn an outcome reward into token rewards for a token-level
    estimator (REINFORCE++, GAE): r_t = R on the final token, 0 elsewhere. A row
    with an empty mask gets all zeros.
    """
    rewards = _as_float(rewards)  # (B,)
    on = mask > 0  # (B, T)
    T = on.shape[-1]
    positions = torch.arange(T, device=on.device).expand_as(on)  # (B, T)
    last = torch.where(on, positions, torch.full_like(positions, -1)).amax(dim=-1)  # (B,)
    is_last = positions == last.unsqueeze(-1)  # (B, T); nowhere for an empty row (last = -1)
    return torch.where(is_last, rewards.unsqueeze(-1), torch.zeros((), dtype=rewards.dtype, device=rewards.device))


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Masked whitening over every masked-in entry of the batch. (B, T), (B, T) -> (B, T).

    (x - mean) / (std + eps), with mean and std over the entries where mask is 1;
    masked-out entries are exactly 0 and are never read (nan there does not leak).
    This is the global-batch advantage normalisation of REINFORCE++ and of PPO
    implementations (OpenRLHF, verl's ``masked_whiten``).

    Choices: the std is the population one (divide by the number of masked-in
    entries), as OpenRLHF computes it. When every masked-in entry is equal (which
    includes a single entry), the result is exactly 0 rather than rounding noise
    divided by a near-zero std.
    """
    x = _as_float(x)
    on = mask > 0  # (B, T)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    x = torch.where(on, x, zero)  # (B, T) garbage under the mask never read
    n = on.sum()
    if n == 0:
        return torch.zeros_like(x)
    mean = x.sum() / n  # ()
    var = (torch.where(on, x - mean, zero) ** 2).sum() / n  # ()
    first = x[on][0]
    if bool((x[on] == first).all()):
        return torch.zeros_like(x)  # constant: nothing to normalise
    return torch.where(on, (x - mean) / (var.sqrt() + eps), zero)  # (B, T)


def _discounted_returns(token_rewards: torch.Tensor, on: torch.Tensor, gamma: float):
    """G_t = r_t + gamma * G_{next masked-in t'}, masked-out positions skipped and set to 0."""
    B, T = token_rewards.shape
    returns = torch.zeros_like(token_rewards)  # (B, T)
    running = torch.zeros(B, dtype=token_rewards.dtype, device=token_rewards.device)  # (B,)
    for t in range(T - 1, -1, -1):
        g = token_rewards[:, t] + gamma * running  # (B,)
        running = torch.where(on[:, t], g, running)  # masked-out: carry the next return over
        returns[:, t] = torch.where(on[:, t], g, torch.zeros_like(g))
    return returns  # (B, T)


# ---------------------------------------------------------------- token level: (B, T) -> (B, T)


def reinforce_pp_advantages(
    token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, eps: float = 1e-8
) -> torch.Tensor:
    """REINFORCE++ advantage: discounted token returns, whitened over the whole batch.

    "REINFORCE++: A Simple and Efficient Approach for Aligning Large Language
    Models" (Hu 2025, arXiv 2501.03262), Sec. 3 (advantage of token t =
    discounted sum of the rewards from t on, the per-token KL penalty folded into
    those rewards; then normalised with the mean and std of all advantages of the
    global batch; the equation numbers differ between the paper's arXiv versions
    and are not cited):
        G_t = sum_{k >= t, m_k = 1} gamma^{n(t, k)} r_k,   A = (G - mean(G)) / (std(G) + eps)
    where n(t, k) counts the masked-in tokens after t up to k (= k - t when the
    mask has no holes).

    Args:
        token_rewards: (B, T) per-token rewards, e.g. ``outcome_token_rewards`` minus
            a KL penalty; entries under the mask are ignored.
        mask: (B, T) 1 on completion tokens.
        gamma: discount (the paper and OpenRLHF use 1.0).
        eps: added to the std.
    Returns:
        (B, T) advantages, exactly 0 where mask is 0.

    Deviations and choices:
      - Whitening as in ``whiten``: population std over the masked-in tokens (as
        OpenRLHF), ``/ (std + eps)`` where OpenRLHF uses ``rsqrt(max(var, 1e-8))``
        (the same for any non-degenerate batch); constant returns (e.g. a single
        token, or every reward equal) give exactly 0.
      - Masked-out positions inside a row (e.g. tool output) are skipped: they are
        not actions, so they neither earn nor discount.
      - The KL-in-reward term and the "baseline" variant (group mean subtracted
        first) are left to the caller, who builds ``token_rewards``.
    """
    token_rewards = _as_float(token_rewards)  # (B, T)
    on = mask > 0  # (B, T)
    rewards = torch.where(on, token_rewards, torch.zeros((), dtype=token_rewards.dtype, device=on.device))
    returns = _discounted_returns(rewards, on, gamma)  # (B, T)
    return whiten(returns, on, eps=eps)  # (B, T)


# ---------------------------------------------------------------- critic level


def gae_advantages(
    token_rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation, and the value targets (returns) for the critic.

    Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized
    Advantage Estimation" (arXiv 1506.02438), Eq. 16:
        A_t = sum_{l >= 0} (gamma lam)^l delta_{t+l},   delta_t = r_t + gamma V_{t+1} - V_t,
    computed backwards as A_t = delta_t + gamma lam A_{t+1}. Value targets
    R_t = A_t + V_t (the TD(lambda) return). PPO with a value head on
    token-level rewards (reward on the last token, optionally minus a KL
    penalty) is how ReFT (Luong et al. 2024, arXiv 2401.08967) trains.

    Args:
        token_rewards: (B, T) per-token rewards (``outcome_token_rewards``).
        values: (B, T) V(s_t) from the value head. Detached here: advantages and
            returns are targets, not differentiated.
        mask: (B, T) 1 on completion tokens.
        gamma, lam: discount and GAE lambda.
    Returns:
        advantages (B, T) and returns (B, T), both exactly 0 where mask is 0.

    Choices:
      - V after the last masked-in token is 0 (the episode ends with the
        completion); masked-out positions inside a row are skipped (the next
        state of token t is the next masked-in token).
      - No whitening inside: the PPO trainer may apply ``whiten`` to the
        advantages (ReFT and OpenRLHF do); the returns must stay unwhitened.
      - nan / inf in ``values`` or ``token_rewards`` under the mask is never read.
    """
    token_rewards = _as_float(token_rewards).detach()  # (B, T)
    values = _as_float(values).detach()  # (B, T)
    on = mask > 0  # (B, T)
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    r = torch.where(on, token_rewards, zero)  # (B, T)
    v = torch.where(on, values, zero)  # (B, T)
    B, T = v.shape
    adv = torch.zeros_like(v)  # (B, T)
    next_value = torch.zeros(B, dtype=v.dtype, device=v.device)  # (B,) V of the next masked-in token
    next_adv = torch.zeros(B, dtype=v.dtype, device=v.device)  # (B,)
    for t in range(T - 1, -1, -1):
        delta = r[:, t] + gamma * next_value - v[:, t]  # (B,)
        a = delta + gamma * lam * next_adv  # (B,)
        adv[:, t] = torch.where(on[:, t], a, zero)
        next_value = torch.where(on[:, t], v[:, t], next_value)
        next_adv = torch.where(on[:, t], a, next_adv)
    returns = torch.where(on, adv + v, zero)  # (B, T)
    return adv, returns


# ---------------------------------------------------------------- tree level


def tree_subgroup_advantages(
    rewards: torch.Tensor, ancestors: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each leaf's GRPO advantage within every subtree it belongs to. -> (adv, valid), both (P, G, D + 1).

    TreePO (Li et al. 2025, arXiv 2508.17445, Sec. 3, tree-based segment-level advantage
    estimation, Fig. 3): the leaves below a tree node form a sub-group; leaf i's advantage in the
    sub-group S of its ancestor at depth j is the group-normalised
        A_{i,j} = (r_i - mean_{k in S} r_k) / (std_{k in S} r_k + eps).
    Level 0 is the whole group (the prompt, the root): A_{i,0} is GRPO's advantage. Level j >= 1 is
    the sub-group of the leaf's node ``ancestors[..., j - 1]``.

    Args:
        rewards: (P, G) leaf rewards.
        ancestors: (P, G, D) long: node id at each depth of each leaf's path (ids unique within a
            group; -1 past the end of a shorter path).
        eps: added to each sub-group's std.
    Returns:
        adv (P, G, D + 1) and valid (P, G, D + 1) bool: True where the level is a real sub-group
        of more than one leaf (a sub-group of one compares the leaf with itself: no information).

    Choices (as ``grpo_advantages``): unbiased std; a sub-group whose rewards are all equal gives
    exactly 0 (it stays valid: it counts in the average, as in TreePO's best-performing plain
    average). Deviation: the official implementation centres each sub-group without dividing by
    its std and whitens the result over the batch; here each sub-group is GRPO-normalised, so a
    flat tree (every leaf its own branch) gives GRPO exactly.
    """
    rewards = _as_float(rewards)  # (P, G)
    P, G = rewards.shape
    root = torch.zeros((P, G, 1), dtype=torch.long, device=rewards.device)
    ids = torch.cat([root, ancestors.long()], dim=-1)  # (P, G, L) L = D + 1 levels
    real = ids >= 0  # (P, G, L)
    same = (ids[:, :, None, :] == ids[:, None, :, :]) & real[:, :, None, :] & real[:, None, :, :]  # (P, G, G, L)
    r = rewards[:, None, :, None]  # (P, 1, G, 1) the other leaf's reward
    size = same.sum(2)  # (P, G, L) leaves in the sub-group
    zero = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    mean = torch.where(same, r, zero).sum(2) / size.clamp(min=1)  # (P, G, L)
    sq = torch.where(same, (r - mean[:, :, None, :]) ** 2, zero).sum(2)  # (P, G, L)
    std = (sq / (size - 1).clamp(min=1)).sqrt()  # (P, G, L) unbiased
    top = torch.where(same, r, torch.full((), float("-inf"), device=r.device)).amax(2)  # (P, G, L)
    low = torch.where(same, r, torch.full((), float("inf"), device=r.device)).amin(2)  # (P, G, L)
    valid = real & (size > 1)  # (P, G, L)
    adv = (rewards[..., None] - mean) / (std + eps)  # (P, G, L)
    adv = torch.where(valid & (top != low), adv, zero)
    return adv, valid


def _tree_prefix_means(rewards: torch.Tensor, ancestors: torch.Tensor) -> torch.Tensor:
    """(P, G, L): entry l is the mean of a leaf's valid sub-group advantages over levels 0..l."""
    adv, valid = tree_subgroup_advantages(rewards, ancestors)  # (P, G, L)
    total = (adv * valid).cumsum(-1)  # (P, G, L)
    count = valid.cumsum(-1)  # (P, G, L)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))


def tree_advantages(
    rewards: torch.Tensor, ancestors: torch.Tensor, token_node: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """TreePO's leaf advantage on every token of the leaf. -> (B, T), B = P * G.

    TreePO (arXiv 2508.17445, Sec. 3, Fig. 3): a leaf's final advantage is the plain average of
    its sub-group advantages over every sub-tree it belongs to (the root and each ancestor node
    with more than one leaf below it, ``tree_subgroup_advantages``):
        A_i = (1 / |J_i|) sum_{j in J_i} A_{i,j},
    and, like GRPO's, it goes on every completion token of the leaf. With a flat tree (i.i.d.
    sampling) the root is the only sub-group and A_i is GRPO's advantage.

    Args:
        rewards: (P, G); ancestors: (P, G, D) long, see ``tree_subgroup_advantages``.
        token_node: (B, T) long, unused here (the signature of the ``tree`` level).
        mask: (B, T) 1 on completion tokens.
    Returns:
        (B, T), 0 where mask is 0.
    """
    leaf = _tree_prefix_means(rewards, ancestors)[..., -1].reshape(-1, 1)  # (B, 1)
    return leaf * (mask > 0)  # (B, T)


def tree_segment_advantages(
    rewards: torch.Tensor, ancestors: torch.Tensor, token_node: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Segment-level credit on the tree: a token's advantage comes only from the sub-groups whose
    members differ in that token. -> (B, T), B = P * G.

    A token written by the k-th node on a leaf's path (``token_node`` = k) is shared by every leaf
    below that node, so comparisons among those leaves say nothing about it; it averages the
    leaf's sub-group advantages (``tree_subgroup_advantages``) over the root and the node's strict
    ancestors only, levels 0..k:
        A_{i,t} = mean_{j <= k(t), j valid} A_{i,j}.
    The tokens of a leaf's last node get TreePO's leaf advantage (``tree_advantages``); the first
    node's tokens get GRPO's. A flat tree gives GRPO on every token.

    This refines TreePO's estimator (which puts the leaf advantage on all of the leaf's tokens)
    towards its segment-level reading; it is graft's choice, not an equation of the paper.

    Args:
        rewards: (P, G); ancestors: (P, G, D) long, see ``tree_subgroup_advantages``.
        token_node: (B, T) long: index on the leaf's path of the node that generated each token.
        mask: (B, T) 1 on completion tokens.
    Returns:
        (B, T), 0 where mask is 0.
    """
    prefix = _tree_prefix_means(rewards, ancestors)  # (P, G, L)
    prefix = prefix.reshape(-1, prefix.shape[-1])  # (B, L)
    level = token_node.long().clamp(0, prefix.shape[-1] - 1)  # (B, T)
    return prefix.gather(1, level) * (mask > 0)  # (B, T)


ADVANTAGES: dict[str, AdvantageSpec] = {
    "grpo": AdvantageSpec(grpo_advantages, "group"),
    "dr_grpo": AdvantageSpec(dr_grpo_advantages, "group"),
    "rloo": AdvantageSpec(rloo_advantages, "group"),
    "lite": AdvantageSpec(lite_advantages, "group"),
    "raft": AdvantageSpec(raft_advantages, "group"),
    "reinforce_pp": AdvantageSpec(reinforce_pp_advantages, "token"),
    "gae": AdvantageSpec(gae_advantages, "critic"),
    "tree": AdvantageSpec(tree_advantages, "tree"),
    "tree_segment": AdvantageSpec(tree_segment_advantages, "tree"),
}


# ---------------------------------------------------------------- one input type for every level


@dataclass(frozen=True)
class AdvantageInputs:
    """Everything any estimator may read, as tensors (built once per step by the trainer).

    rewards:       (P, G) sequence rewards (the sum of each row's ``token_rewards``).
    token_rewards: (B, T) per-token rewards (outcome on the last token, minus KL if in reward).
    mask:          (B, T) 1 on tokens that carry loss (completion tokens, less masked ones).
    tokens:        (B, T) 1 on every completion token (the critic reads values on all of them).
    values:        (B, T) critic values at scoring time, or None (levels other than ``critic``).
    ancestors:     (P, G, D) long, token_node (B, T) long: the sampling trees, or None.
    gamma, lam:    discount and GAE lambda.
    """

    rewards: torch.Tensor
    token_rewards: torch.Tensor
    mask: torch.Tensor
    tokens: torch.Tensor
    values: torch.Tensor | None = None
    ancestors: torch.Tensor | None = None
    token_node: torch.Tensor | None = None
    gamma: float = 1.0
    lam: float = 0.95


def _group_level(fn: Callable, x: AdvantageInputs) -> tuple[torch.Tensor, torch.Tensor]:
    return fn(x.rewards).reshape(-1, 1) * x.mask, torch.zeros_like(x.tokens)  # (B, T)


def _token_level(fn: Callable, x: AdvantageInputs) -> tuple[torch.Tensor, torch.Tensor]:
    return fn(x.token_rewards, x.mask, x.gamma), torch.zeros_like(x.tokens)  # (B, T)


def _tree_level(fn: Callable, x: AdvantageInputs) -> tuple[torch.Tensor, torch.Tensor]:
    return fn(x.rewards, x.ancestors, x.token_node, x.mask), torch.zeros_like(x.tokens)  # (B, T)


def _critic_level(fn: Callable, x: AdvantageInputs) -> tuple[torch.Tensor, torch.Tensor]:
    advantages, returns = fn(x.token_rewards, x.values, x.tokens, x.gamma, x.lam)  # (B, T) each
    return whiten(advantages, x.mask), returns  # PPO's usual advantage normalisation; returns raw


_LEVEL_CALLS = {"group": _group_level, "token": _token_level, "tree": _tree_level, "critic": _critic_level}


def compute_advantages(spec: AdvantageSpec, inputs: AdvantageInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages (B, T), value targets (B, T); zeros without a critic) of any registered
    estimator; each level's calling convention is in the module docstring."""
    return _LEVEL_CALLS[spec.level](spec.fn, inputs)
