"""rl.weight_decay: the RL phase's optimizer decays by it, SFT's by optim.weight_decay; unset, both
decay by optim.weight_decay. A checkpoint keeps each phase's decay through a resume."""

import shutil

import torch

from graft.config import build_config
from graft.models.load import create_policy
from graft.train.loop import prepare, start_rl, train


def _decay(optimizer: torch.optim.Optimizer) -> set[float]:
    return {g["weight_decay"] for g in optimizer.param_groups}


def test_the_rl_phase_decays_by_its_own_setting(tiny_overrides):
    for rl, expected in (([], {1.0}), (["rl.weight_decay=0"], {0.0}), (["rl.weight_decay=0.25"], {0.25})):
        cfg = build_config({}, tiny_overrides + ["optim.weight_decay=1.0", *rl])
        assert _decay(start_rl(create_policy(cfg.model, cfg.seed), cfg).optimizer) == expected


def test_sft_decays_and_rl_does_not_and_checkpoints_say_so(tmp_path, tiny_overrides):
    """What the run saved: the optimizer state of the checkpoint at the end of SFT (step 4 of the
    tiny run's 4 + 4) decays by optim.weight_decay, the last one's (step 8) by rl.weight_decay."""
    run = tmp_path / "run"
    cfg = build_config({}, tiny_overrides + ["optim.weight_decay=1.0", "rl.weight_decay=0",
                                             "checkpoint.every=4", "checkpoint.keep=10"])
    train(prepare(cfg), run)
    groups = {step: torch.load(run / "checkpoints" / f"step_{step}" / "trainer.pt",
                               weights_only=False)["optimizer"]["param_groups"] for step in (4, 8)}
    assert {g["weight_decay"] for g in groups[4]} == {1.0}
    assert {g["weight_decay"] for g in groups[8]} == {0.0}

    # resuming from the step-4 checkpoint (end of SFT) goes on to the same RL-phase decay
    cut = tmp_path / "cut"
    train(prepare(cfg), cut)
    for step_dir in (cut / "checkpoints").iterdir():
        if int(step_dir.name.split("_")[1]) > 4:
            shutil.rmtree(step_dir)
    train(prepare(cfg), cut, resume=True)
    resumed = torch.load(cut / "checkpoints" / "step_8" / "trainer.pt", weights_only=False)
    assert {g["weight_decay"] for g in resumed["optimizer"]["param_groups"]} == {0.0}
