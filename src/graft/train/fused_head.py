"""Per-token log-probabilities (and entropies) straight from final hidden states, in chunks.

The RL and SFT losses only need, at each completion position, log p(target) and (for the
entropy bonus or its metric) the entropy of the next-token distribution. The plain path
builds the whole (N, V) float32 logit matrix, keeps it (and a log-softmax of it) for backward:
with N = 64 x 128 completion tokens and V = 32,000 that is ~1 GB per copy.

``fused_token_logprobs`` is an exact replacement: an autograd function that

- forward: for each chunk of ``chunk`` positions computes the chunk's logits
  z = h W^T / tau, their logsumexp, log p(y) = z_y - lse and the entropy H = lse - sum_v p_v z_v,
  and keeps only h, W, y and the two (N,) vectors lse and H;
- backward: recomputes each chunk's logits and applies the closed-form gradients
  (p = softmax(z), e_y the one-hot target, g and k the incoming gradients of log p(y) and H)

      dL/dz = g (e_y - p) - k p (log p + H)        (n, V)
      dL/dh = dL/dz W / tau,   dL/dW += (dL/dz)^T h / tau,

  so at most one (chunk, V) logit block and its softmax are alive at any time, and no
  autograd graph of the softmax is recorded (``optim.logprob_impl: fused``).

This is the blockwise log-sum-exp with logits recomputed in backward of Cut Cross-Entropy
(Wijmans et al. 2024, "Cut Your Losses in Large-Vocabulary Language Models", arXiv
2411.09009, Sec. 4), here in plain PyTorch chunks (no custom kernel) and extended with the
entropy and its gradient, which the RL loss needs. Deviation from the paper: no gradient
filtering or vocabulary sorting (both approximate); every gradient term is computed, so the
result equals the plain computation up to float rounding.
"""

from __future__ import annotations

import torch


def _chunk_logits(h: torch.Tensor, weight: torch.Tensor, tau: float) -> torch.Tensor:
    """One chunk's tempered logits: (n, C) -> (n, V), float32 or wider (recomputed in backward)."""
    z = (h.to(weight.dtype) @ weight.t()).to(_acc(weight))  # (n, V)
    return z / tau if tau != 1.0 else z


def _acc(weight: torch.Tensor) -> torch.dtype:
    """Softmax dtype: float32, or float64 for a float64 head (so gradcheck can run in float64)."""
    return torch.promote_types(weight.dtype, torch.float32)


class _FusedLogprob(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, tau: float, chunk: int):
        N = hidden.shape[0]
        logp = hidden.new_empty(N, dtype=_acc(weight))  # (N,)
        ent, lses = torch.empty_like(logp), torch.empty_like(logp)  # (N,) each
        for s in range(0, N, chunk):
            h, t = hidden[s : s + chunk], targets[s : s + chunk]  # (n, C), (n,)
            z = _chunk_logits(h, weight, tau)  # (n, V), this chunk's own tensor: shifted in place
            m = z.amax(-1, keepdim=True)  # (n, 1)
            z -= m  # (n, V) z - max z
            e = z.exp()  # (n, V) unnormalised softmax
            log_sum = e.sum(-1).log()  # (n,)
            logp[s : s + chunk] = z.gather(-1, t[:, None])[:, 0] - log_sum
            # H = log sum_v e_v - sum_v e_v (z_v - m) / sum_v e_v (max-shifted: no overflow, no cancellation)
            ent[s : s + chunk] = log_sum - (e[:, None, :] @ z[:, :, None])[:, 0, 0] / log_sum.exp()
            lses[s : s + chunk] = m[:, 0] + log_sum
        ctx.save_for_backward(hidden, weight, targets, lses, ent)
        ctx.tau, ctx.chunk = tau, chunk
        ctx.set_materialize_grads(False)  # an unused output (the entropy, as a metric) gets None
        return logp, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        hidden, weight, targets, lses, ent = ctx.saved_tensors
        tau, chunk = ctx.tau, ctx.chunk
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.zeros_like(hidden) if need_h else None  # (N, C)
        grad_w = torch.zeros(weight.shape, dtype=_acc(weight), device=weight.device) if need_w else None  # (V, C)
        for s in range(0, hidden.shape[0], chunk):
            h, t = hidden[s : s + chunk], targets[s : s + chunk]  # (n, C), (n,)
            logq = _chunk_logits(h, weight, tau)  # (n, V) recomputed, never kept
            logq -= lses[s : s + chunk, None]  # (n, V) log p
            p = logq.exp()  # (n, V)
            if g_ent is not None:  # -k p (log p + H)
                gz = (logq + ent[s : s + chunk, None]).mul_(p).mul_(-g_ent[s : s + chunk, None])
                if g_logp is not None:
                    gz -= p.mul_(g_logp[s : s + chunk, None])
            elif g_logp is not None:
                gz = p.mul_(-g_logp[s : s + chunk, None])  # (n, V) -g p
            else:
                gz = torch.zeros_like(p)
            if g_logp is not None:  # + g e_y
                gz.scatter_add_(-1, t[:, None], g_logp[s : s + chunk, None])
            if tau != 1.0:
                gz /= tau
            gz = gz.to(weight.dtype)
            if need_h:
                grad_h[s : s + chunk] = (gz @ weight).to(hidden.dtype)  # (n, C)
            if need_w:  # (V, C) += (V, n) @ (n, C); a bf16 head's product is summed over chunks in float32
                if grad_w.dtype == gz.dtype:
                    grad_w.addmm_(gz.t(), h.to(weight.dtype))
                else:
                    grad_w += gz.t() @ h.to(weight.dtype)
        return grad_h, None if grad_w is None else grad_w.to(weight.dtype), None, None, None


def fused_token_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
    chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log softmax(h W^T / temperature)[target] and the entropy of that softmax, per position.

    Args:
        hidden: (N, C) final hidden states (after the final norm) at the positions to score.
        weight: (V, C) the LM head's weight (a plain bias-free linear head).
        targets: (N,) long token ids in [0, V).
        temperature: logits are divided by it (the sampling temperature).
        chunk: positions per block; peak extra memory ~ 3 x chunk x V floats.
    Returns:
        (logp (N,), entropy (N,)), float32, both differentiable w.r.t. ``hidden`` and ``weight``.
    """
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    return _FusedLogprob.apply(hidden, weight, targets, float(temperature), int(chunk))
