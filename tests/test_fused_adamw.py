"""optim.fused_adamw: torch's fused AdamW gives the per-tensor loop's update to float rounding."""

import torch

from graft.config import build_config
from graft.train.loop import _optimizer


def _sft_params(tiny_overrides, fused: bool, steps: int = 12) -> list[torch.Tensor]:
    from graft.models.load import create_policy
    from graft.tasks.build import build_task
    from graft.train.batch import completion_logprobs
    from graft.train.steps import apply_update, demo_batch

    cfg = build_config({}, tiny_overrides + [f"optim.fused_adamw={str(fused).lower()}"])
    policy = create_policy(cfg.model, cfg.seed)
    opt = _optimizer(policy.module, cfg, 1e-2)
    examples = build_task(cfg.task).train_examples()[:16]
    batch = demo_batch(policy, examples)
    for _ in range(steps):
        logp, _ = completion_logprobs(policy, batch, 1.0)
        loss = -(logp * batch.loss_mask).sum() / batch.loss_mask.sum()
        loss.backward()
        apply_update(policy.module, opt, 1e-2, cfg.optim.grad_clip)
    return [p.detach().clone() for p in policy.module.parameters()]


def test_the_flag_picks_the_kernel(tiny_overrides):
    on = _optimizer(torch.nn.Linear(4, 4), build_config({}, tiny_overrides), 1e-3)
    off = _optimizer(torch.nn.Linear(4, 4), build_config({}, tiny_overrides + ["optim.fused_adamw=false"]), 1e-3)
    assert on.defaults["fused"] is True and not off.defaults["fused"]


def test_fused_and_per_tensor_updates_agree_to_rounding(tiny_overrides):
    fused, plain = _sft_params(tiny_overrides, True), _sft_params(tiny_overrides, False)
    moved = max((a - b).abs().max().item() for a, b in zip(fused, _initial(tiny_overrides)))
    diff = max((a - b).abs().max().item() for a, b in zip(fused, plain))
    assert moved > 1e-2  # the 12 steps (lr 1e-2) really trained
    assert diff < 1e-4 * moved  # the two kernels differ by rounding, not by what they compute


def _initial(tiny_overrides) -> list[torch.Tensor]:
    from graft.models.load import create_policy

    cfg = build_config({}, tiny_overrides)
    return [p.detach().clone() for p in create_policy(cfg.model, cfg.seed).module.parameters()]
