"""The SFT step, the optimizer update and the learning-rate schedule (the RL step is in ``rl.py``).

Steps take the pieces they need explicitly (policy, optimizer, examples, the
config) and return a dict of metrics aggregated over the whole update, not the
last micro-batch.
"""

from __future__ import annotations

import math
import time

import torch

from graft.algos.losses import sft_loss
from graft.config import Config
from graft.models.policy import Policy
from graft.tasks.base import Example
from graft.train.batch import completion_logprobs, make_batch


def apply_update(module: torch.nn.Module, optimizer: torch.optim.Optimizer, lr: float, grad_clip: float) -> float:
    """Set the learning rate, clip the global gradient norm, step, clear gradients; return the norm."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    params = [p for p in module.parameters() if p.requires_grad]
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
    grad_norm = apply_update(policy.module, optimizer, lr, cfg.optim.grad_clip)
    dt = time.perf_counter() - t0
    return {
        "losses/sft": loss_sum,
        "optim/grad_norm": grad_norm,
        "optim/lr": lr,
        "mix/sft_share": 1.0,
        "perf/step_time": dt,
        "perf/tokens_per_s": total_tokens / dt,
    }


def lr_at(step: int, steps: int, warmup: int, peak: float, cosine: bool) -> float:
    """Linear warm-up to ``peak``, then constant or cosine decay to 10% of peak by ``steps``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if not cosine or steps <= warmup:
        return peak
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
