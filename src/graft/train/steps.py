"""The SFT step, the optimizer update and the learning-rate schedule (the RL step is in ``rl.py``).

Steps take the pieces they need explicitly (policy, optimizer, examples, the
config) and return a dict of metrics aggregated over the whole update, not the
last micro-batch.
"""

from __future__ import annotations

import time

import torch

from graft.algos.losses import sft_loss
from graft.config import Config
from graft.mix.rules import lr_at  # noqa: F401  (the learning-rate schedule; re-exported)
from graft.models.checkpointing import set_activation_checkpointing
from graft.models.policy import Policy, device_of
from graft.step_stats import LossStats, OptimStats, PerfStats, StepStats
from graft.tasks.base import Example
from graft.timing import timed
from graft.train.batch import Batch, completion_logprobs, make_batch
from graft.train.lean import settings


def apply_update(module: torch.nn.Module, optimizer: torch.optim.Optimizer, lr: float, grad_clip: float) -> float:
    """Set the learning rate, clip the global gradient norm, step, clear gradients; return the norm."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    params = [p for p in module.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(grad_norm)


def demo_batch(policy: Policy, examples: list[Example]) -> Batch:
    """Prompts + demonstrations (+ EOS) as a Batch whose loss mask covers the demonstration tokens."""
    tok = policy.tokenizer
    prompts = [tok.encode(ex.prompt) for ex in examples]
    targets = [tok.encode(ex.demonstration) + [tok.eos_id] for ex in examples]
    return make_batch(prompts, targets, tok.pad_id, device=device_of(policy))


def sft_backward(policy: Policy, batch: Batch, micro_batch_size: int, weight: float = 1.0,
                 chunk: int = 0, fused: bool = False, phases: dict[str, float] | None = None) -> float:
    """Backward ``weight`` x the token-mean NLL of the whole batch, micro-batch by micro-batch.

    ``chunk``, ``fused``: ``completion_logprobs``' memory-lean chunk size (0 = off) and head;
    ``phases``: gains the backward calls' seconds (``phases["backward"]``).
    Returns the unweighted loss. Prompt tokens are not trained.
    """
    total_tokens = float(batch.loss_mask.sum())
    loss_sum = 0.0
    for mb in batch.split(micro_batch_size):
        logp, _ = completion_logprobs(policy, mb, chunk=chunk, fused=fused)
        share = float(mb.loss_mask.sum()) / total_tokens
        loss = sft_loss(logp, mb.loss_mask) * share  # token mean over the whole batch
        with timed(phases, "backward"):
            (loss if weight == 1.0 else loss * weight).backward()
        loss_sum += loss.item()
    return loss_sum


def sft_step(
    policy: Policy, optimizer: torch.optim.Optimizer, examples: list[Example], cfg: Config, lr: float
) -> StepStats:
    """Next-token NLL on the demonstrations' completion tokens (prompt tokens are not trained)."""
    t0 = time.perf_counter()
    batch = demo_batch(policy, examples)
    set_activation_checkpointing(policy.module, cfg.optim.activation_checkpointing)
    lean = settings(cfg.optim)  # optim.* = auto resolved by prepare (graft.train.lean)
    loss_sum = sft_backward(policy, batch, lean.micro_batch_size, chunk=lean.logprob_chunk,
                            fused=lean.logprob_impl == "fused")
    grad_norm = apply_update(policy.module, optimizer, lr, cfg.optim.grad_clip)
    dt = time.perf_counter() - t0
    c = compute_metrics(0.0, float(batch.attention_mask.sum()))
    return StepStats(
        losses=LossStats(policy=None, total=loss_sum, sft=loss_sum), optim=OptimStats(grad_norm, lr),
        perf=PerfStats(step_time=dt, tokens_per_s=float(batch.loss_mask.sum()) / dt,
                       fwd_tokens=c["perf/fwd_tokens"], train_tokens=c["perf/train_tokens"],
                       compute=c["perf/compute"]),
        sft_share=1.0,
    )


def compute_metrics(fwd_tokens: float, train_tokens: float) -> dict:
    """A step's compute in forward-token equivalents (proportional to FLOPs).

    A forward pass costs about 2N FLOPs per token and a forward + backward about 6N
    (N = parameters; Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
    Sec. 2.1, attention's share ignored), so ``perf/compute = fwd + 3 * train``, where
    ``fwd`` counts real (non-pad) tokens of forward-only passes (sampling: prompt
    prefill + every generated token; reference and critic scoring) and ``train``
    those of forward + backward passes (each PPO iteration counts again). Padding is
    not counted: this is the work an ideal batcher would do; wall time shows the rest.
    """
    return {"perf/fwd_tokens": fwd_tokens, "perf/train_tokens": train_tokens,
            "perf/compute": fwd_tokens + 3.0 * train_tokens}
