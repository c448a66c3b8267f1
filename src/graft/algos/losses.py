"""Per-token log-probabilities, the policy and SFT losses, and loss aggregation.

Everything here is a pure function of tensors: no model, no I/O, inputs never
modified. Shapes: B sequences, T completion tokens, V vocabulary; ``mask`` is
1 (or True) on tokens that count and 0 on padding / prompt tokens.

Registries (config value = key):
  - ``POLICY_LOSSES``: ``fn(logp, old_logp, advantages, mask, clip_low, clip_high)
    -> (loss (B, T), clipped (B, T) bool)``, per-token, masked tokens exactly 0,
    nan / inf under the mask never leaks into the loss or its gradient.
  - ``LOSS_AGG``: ``fn(mask (B, T), max_len) -> weights (B, T)``: the weight of
    every token in the loss of the *whole* batch, zero where the mask is 0, so
    that the batch loss is ``aggregate(x, weights)``. Weights are computed once
    for the full batch and then sliced with the rows of each micro-batch; the
    sum of the micro-batch losses is then exactly the full-batch loss, whatever
    the aggregation (a per-micro-batch mean would not be, e.g. for
    ``seq_mean_token_mean`` with micro-batches of different sizes).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

PolicyLossFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]
AggWeightsFn = Callable[[torch.Tensor, int], torch.Tensor]


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per token, computed in float32.

    log p(y_t) = z_{t, y_t} - logsumexp_v z_{t, v}. Gathering the target logit
    and subtracting the logsumexp keeps no (B, T, V) log-softmax tensor around
    (only logsumexp's own temporary, and the float32 copy when logits are in a
    lower precision).

    Args:
        logits: (B, T, V) any floating dtype; must be finite.
        targets: (B, T) long token ids in [0, V).
    Returns:
        (B, T) float32.
    """
    logits = logits.float()  # (B, T, V) no copy if already float32
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)  # (B, T)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) per token, in float32. (B, T, V) -> (B, T).

    H = -sum_v p_v log p_v, with log p from ``log_softmax`` (max-shifted, so
    large logits neither overflow nor lose precision to the cancellation in
    logsumexp(z) - sum_v p_v z_v). Logits must be finite: a -inf logit would
    give 0 * -inf = nan.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    return -(logp.exp() * logp).sum(dim=-1)  # (B, T)


def _clipped_surrogate(
    adv: torch.Tensor, ratio: torch.Tensor, on: torch.Tensor, clip_low: float, clip_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """max(-A rho, -A clip(rho, 1 - clip_low, 1 + clip_high)), 0 off the mask, and where the clip binds.

    The shared tail of PPO-clip (token ratio) and GSPO (sequence ratio). (B, T) each -> (B, T), (B, T) bool.
    """
    surrogate = -adv * ratio  # (B, T)
    surrogate_clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)  # (B, T)
    loss = torch.maximum(surrogate, surrogate_clipped)  # (B, T)
    clipped = on & (surrogate_clipped > surrogate)  # (B, T) bool
    return torch.where(on, loss, torch.zeros_like(loss)), clipped


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped surrogate with separate lower and upper clip ranges.

    PPO (Schulman et al. 2017, arXiv 1707.06347, Eq. 7) with DAPO's decoupled
    "clip-higher" (Yu et al. 2025, arXiv 2503.14476, Eq. 8, Sec. 3.1), written
    as a loss to minimise:
        rho = exp(logp - old_logp)
        L   = max(-A * rho, -A * clip(rho, 1 - clip_low, 1 + clip_high))
    DAPO uses clip_low = 0.2, clip_high = 0.28; clip_low == clip_high is PPO.

    Args:
        logp: (B, T) log pi_theta of the sampled tokens (carries the gradient).
        old_logp: (B, T) log pi_old of the same tokens, from sampling time.
        advantages: (B,) per sequence (broadcast over tokens) or (B, T) per token.
        mask: (B, T) 1/True on tokens that count.
        clip_low, clip_high: the band is [1 - clip_low, 1 + clip_high].

    Returns:
        loss: (B, T), exactly 0 where mask is 0.
        clipped: (B, T) bool, True where mask is 1 and the clipped branch is
          strictly larger, i.e. where clipping zeroes the gradient (A > 0 and
          rho > 1 + clip_high, or A < 0 and rho < 1 - clip_low).

    Deviations and choices:
      - ``old_logp`` and ``advantages`` are detached: in PPO both are
        constants of the update.
      - The log-ratio of masked tokens is set to 0 before ``exp``, so padding
        with garbage log-probs cannot produce inf / nan in the loss or, through
        ``0 * inf``, in the gradient.
      - No dual clip (Ye et al. 2020) here; it would be a separate registry entry.
    """
    adv = advantages.detach()
    if adv.dim() == logp.dim() - 1:
        adv = adv.unsqueeze(-1)  # (B, 1) one advantage per sequence
    on = mask > 0  # (B, T) bool
    log_ratio = torch.where(on, logp - old_logp.detach(), torch.zeros_like(logp))  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T)
    return _clipped_surrogate(adv, ratio, on, clip_low, clip_high)


def gspo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GSPO: PPO-style clipping of a length-normalised *sequence* importance ratio.

    "Group Sequence Policy Optimization" (Zheng et al. 2025, arXiv 2507.18071),
    Sec. 4 (the GSPO objective and its GSPO-token variant; equation numbers not
    re-checked against the PDF): the sequence ratio
        s_i = (pi_theta(y_i | x) / pi_old(y_i | x))^(1 / |y_i|)
            = exp( mean_{t in y_i} (logp_t - old_logp_t) )
    replaces the token ratio in the clipped objective, and the GSPO-token form
    (same section) lets advantages vary per token:
        log s_it = sg[log s_i] + logp_t - sg[logp_t]      (value s_i, d s_it / d logp_t = s_i)
        L_t      = max(-A_t s_it, -A_t clip(s_it, 1 - clip_low, 1 + clip_high)).
    With one advantage per sequence this is exactly GSPO: the gradient of token t
    is -A_i s_i d logp_t where unclipped, 0 where the sequence is clipped. The
    paper averages tokens per sequence and sequences per batch
    (``seq_mean_token_mean``); the aggregation is the caller's choice.

    Args:
        logp: (B, T) log pi_theta of the sampled tokens (carries the gradient).
        old_logp: (B, T) log pi_old of the same tokens.
        advantages: (B,) per sequence or (B, T) per token.
        mask: (B, T) 1/True on tokens that count.
        clip_low, clip_high: the band [1 - clip_low, 1 + clip_high] for s_i.
            The paper's ranges are tiny (3e-4 / 4e-4), because s_i is a
            per-token geometric mean; PPO's 0.2 would almost never bind.

    Returns:
        loss: (B, T), exactly 0 where mask is 0 (and on a row with no token).
        clipped: (B, T) bool, True on the masked-in tokens whose clipped branch is
          strictly larger; with per-sequence advantages that is all tokens of a
          clipped sequence or none.

    Deviations and choices:
      - ``old_logp`` and ``advantages`` are detached; masked log-ratios are set
        to 0 before the mean and before ``exp`` so padding cannot leak nan.
      - No clamp of log s_i before ``exp`` (verl clamps it at 10); like
        ``ppo_clip_loss``, graft relies on old and new policies being close.
    """
    adv = advantages.detach()
    if adv.dim() == logp.dim() - 1:
        adv = adv.unsqueeze(-1)  # (B, 1)
    on = mask > 0  # (B, T)
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    logp_on = torch.where(on, logp, zero)  # (B, T) garbage under the mask never read
    log_ratio = torch.where(on, logp - old_logp.detach(), zero)  # (B, T)
    n_tok = on.sum(dim=-1, keepdim=True).clamp(min=1).to(logp.dtype)  # (B, 1)
    log_s = log_ratio.sum(dim=-1, keepdim=True) / n_tok  # (B, 1) log s_i
    # (logp - sg[logp]) is exactly 0 in value; added first so s_it == s_i bit for bit
    log_s_tok = (logp_on - logp_on.detach()) + log_s.detach()  # (B, T)
    ratio = torch.exp(log_s_tok)  # (B, T)
    return _clipped_surrogate(adv, ratio, on, clip_low, clip_high)


def cispo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CISPO: REINFORCE on every token, weighted by a clipped, stop-gradient IS ratio.

    MiniMax-M1 (MiniMax 2025, arXiv 2506.13585), Sec. 3.1, Eq. 4 and Eq. 5:
        J = 1/sum_i |o_i| sum_i sum_t sg(r^_it) A_it log pi_theta(o_it)
        r^_it = clip(r_it, 1 - eps_low, 1 + eps_high),   r_it = pi_theta / pi_old,
    written as a per-token loss to minimise:
        L_t = -sg(clip(rho_t, 1 - clip_low, 1 + clip_high)) * A_t * logp_t.
    Unlike PPO, no token's gradient is dropped: clipping bounds the weight
    w_t = clip(rho_t), and the gradient is -w_t A_t d logp_t on every masked-in
    token. The paper's 1 / sum_i |o_i| is ``token_mean`` aggregation.

    This is the paper's (and verl's) two-sided clip
    clip(rho, 1 - clip_low, 1 + clip_high); TRL's CISPO instead caps the ratio
    at ``epsilon_high`` as an absolute value (min(rho, eps_high)), which is not
    what graft implements. The paper tunes only eps_high and sets eps_low large
    enough for no lower bound to apply; the same here is ``clip_low >= 1``.

    Args:
        logp: (B, T) log pi_theta of the sampled tokens (carries the gradient).
        old_logp: (B, T) log pi_old of the same tokens.
        advantages: (B,) per sequence or (B, T) per token.
        mask: (B, T) 1/True on tokens that count.
        clip_low, clip_high: the band [1 - clip_low, 1 + clip_high] for the weight.

    Returns:
        loss: (B, T), exactly 0 where mask is 0. Its value is -w A logp, a
          surrogate whose gradient is the CISPO gradient (not comparable in value
          with the PPO surrogate).
        clipped: (B, T) bool, masked-in tokens whose rho lies outside the band
          (their weight was clipped; unlike PPO they still get a gradient).

    Deviations and choices: masked log-ratios and log-probs are set to 0 before
    use, so nan / inf in padding never reaches the loss or the gradient. The
    paper's optional token mask M_it (its unified formulation, Eq. 6-7) is not
    part of this function.
    """
    adv = advantages.detach()
    if adv.dim() == logp.dim() - 1:
        adv = adv.unsqueeze(-1)  # (B, 1)
    on = mask > 0  # (B, T)
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    logp_on = torch.where(on, logp, zero)  # (B, T)
    log_ratio = torch.where(on, logp - old_logp.detach(), zero).detach()  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T) no gradient
    weight = ratio.clamp(1.0 - clip_low, 1.0 + clip_high)  # (B, T) sg(clip(rho))
    loss = -weight * adv * logp_on  # (B, T)
    clipped = on & ((ratio < 1.0 - clip_low) | (ratio > 1.0 + clip_high))  # (B, T) bool
    return torch.where(on, loss, torch.zeros_like(loss)), clipped


def token_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(x * m) / max(sum(m), 1) over every token of the batch. (B, T), (B, T) -> ().

    DAPO's token-level aggregation (arXiv 2503.14476, Sec. 3.3): each token
    weighs the same, whatever the length of its sequence. A batch with no
    token masked in gives 0, not nan; masked-out entries of ``x`` are never
    read, so nan / inf there does not leak into the result or its gradient.
    """
    m = mask.to(x.dtype)  # (B, T)
    x = torch.where(mask > 0, x, torch.zeros_like(x))  # (B, T)
    return (x * m).sum() / m.sum().clamp(min=1.0)  # ()


def sft_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the demonstration tokens, token mean over the batch.

    L_SFT = -sum_t m_t log p(y_t) / sum_t m_t. (B, T), (B, T) -> (); 0 when the mask is empty.
    """
    return token_mean(-logp, mask)  # ()




# ---------------------------------------------------------------- aggregation weights


def _mask_float(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) mask -> exact 0./1. floats (the mask's dtype if floating, else float32)."""
    dtype = mask.dtype if mask.is_floating_point() else torch.float32
    return (mask > 0).to(dtype)  # (B, T)


def token_mean_weights(mask: torch.Tensor, max_len: int) -> torch.Tensor:
    """Every token of the batch weighs the same: w = m / sum(m). (B, T) -> (B, T).

    DAPO's token-level policy-gradient loss (Yu et al. 2025, arXiv 2503.14476,
    Sec. 3.3, Eq. 12): 1 / sum_i |o_i| sum_i sum_t, so long sequences count in
    proportion to their length. Also Lite PPO's aggregation and CISPO's
    1 / sum_i |o_i|. ``max_len`` is unused. Empty mask: all-zero weights.
    """
    m = _mask_float(mask)  # (B, T)
    return m / m.sum().clamp(min=1.0)  # (B, T)


def seq_mean_token_mean_weights(mask: torch.Tensor, max_len: int) -> torch.Tensor:
    """Mean over tokens within a row, then mean over rows: w = m / (len_i * n). (B, T) -> (B, T).

    GRPO's original aggregation (DeepSeekMath, arXiv 2402.03300, Eq. 3:
    1/G sum_i 1/|o_i| sum_t) and GSPO's. n counts only the rows with at least
    one masked-in token: a row with no token has no mean to average (verl's
    ``seq-mean-token-mean`` excludes such rows the same way). ``max_len`` is
    unused. Empty mask: all-zero weights.
    """
    m = _mask_float(mask)  # (B, T)
    lengths = m.sum(dim=-1, keepdim=True)  # (B, 1)
    n_rows = (lengths > 0).sum().clamp(min=1).to(m.dtype)  # () rows with a token
    return m / (lengths.clamp(min=1.0) * n_rows)  # (B, T)


def seq_mean_token_sum_weights(mask: torch.Tensor, max_len: int) -> torch.Tensor:
    """Sum over tokens within a row, mean over rows: w = m / n. (B, T) -> (B, T).

    verl's ``seq-mean-token-sum``: each sequence contributes the sum of its
    token losses, so a longer sequence weighs more, and the batch mean keeps
    the scale independent of the number of rows. n counts the rows with at
    least one masked-in token, as for ``seq_mean_token_mean`` (a fully masked
    row, e.g. a filtered truncated completion, does not dilute the others).
    ``max_len`` is unused. Empty mask: all-zero weights.
    """
    m = _mask_float(mask)  # (B, T)
    n_rows = (m.sum(dim=-1) > 0).sum().clamp(min=1).to(m.dtype)  # ()
    return m / n_rows  # (B, T)


def seq_sum_norm_weights(mask: torch.Tensor, max_len: int) -> torch.Tensor:
    """Dr. GRPO: token sum per row over a constant max length, mean over rows.

    w = m / (B * max_len), (B, T) -> (B, T). "Understanding R1-Zero-Like
    Training" (Liu et al. 2025, arXiv 2503.20783), Sec. 3.1 and Fig. 1: the
    objective 1/G sum_i sum_t (GRPO's 1/|o_i| removed, its 1/G kept); the
    reference implementation (oat, used by sail-sg/understand-r1-zero) computes
    ``masked_sum(loss, mask, axis=-1, constant_normalizer=generate_max_length)``
    per row and then the mean over the rows.

    Why 1/B is kept although the often quoted short form sum_i sum_t (L m) / L_max
    has none (docs/references.md, "Dr. GRPO"): it is the paper's 1/G (and the
    implementation's row mean), and it keeps the loss scale independent of how
    many prompts and generations are in the batch; being a constant of the batch
    shape it adds no length or difficulty bias. Here B counts *all* rows, including fully masked ones:
    Dr. GRPO's point is a normaliser that does not depend on the samples.

    Args:
        mask: (B, T).
        max_len: the generation length limit (e.g. ``rl.max_new_tokens``), >= 1.
    Returns:
        (B, T) weights; all zero for an empty mask.
    """
    if max_len < 1:
        raise ValueError(f"seq_sum_norm needs max_len >= 1, got {max_len}")
    m = _mask_float(mask)  # (B, T)
    return m / (max(m.shape[0], 1) * float(max_len))  # (B, T)


def aggregate(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum of per-token values: sum(where(w > 0, x, 0) * w). (B, T), (B, T) -> ().

    Entries with zero weight are never read, so nan / inf there does not leak
    into the result or its gradient. With weights from ``LOSS_AGG`` computed on
    the full batch, the sum of ``aggregate`` over micro-batches (rows sliced
    from both x and the weights) equals the full-batch value.
    """
    on = weights > 0  # (B, T)
    return (torch.where(on, x, torch.zeros((), dtype=x.dtype, device=x.device)) * weights).sum()


POLICY_LOSSES: dict[str, PolicyLossFn] = {
    "ppo_clip": ppo_clip_loss,
    "gspo": gspo_loss,
    "cispo": cispo_loss,
}
LOSS_AGG: dict[str, AggWeightsFn] = {
    "token_mean": token_mean_weights,
    "seq_mean_token_mean": seq_mean_token_mean_weights,
    "seq_mean_token_sum": seq_mean_token_sum_weights,
    "seq_sum_norm": seq_sum_norm_weights,
}
