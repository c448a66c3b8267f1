"""Acceptance: the same config trains a local tiny Hugging Face model and the result loads with transformers."""

import math
import zlib

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from graft.config import build_config
from graft.models.hf_testing import build_tiny_hf_model
from graft.tasks.base import Score
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train


def _trainable(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def _unchanged(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    return [n for n in before if torch.equal(before[n], after[n])]


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_tiny_hf_model_trains_every_parameter_and_saves_in_hf_format(
    tmp_path, tiny_overrides, monkeypatch, arch
):
    model_dir = build_tiny_hf_model(tmp_path / arch, arch=arch, seed=0)
    cfg = build_config({}, tiny_overrides + [f"model.path={model_dir}"])
    setup = prepare(cfg)
    # A random model never answers the arithmetic right: every reward is 0, every advantage 0 and
    # the RL steps would update nothing. A reward that is a fixed function of the completion's text
    # (varied within a group, deterministic) gives the policy gradient something to follow.
    monkeypatch.setattr(setup.task, "score", lambda ex, text: Score(
        reward=float(zlib.crc32(text.encode()) % 2), correct=False, parts={}))
    module = setup.policy.module
    snapshots = {0: _trainable(module)}

    def after_step(step, total, metrics):
        if step in (cfg.sft.steps, cfg.total_steps):
            snapshots[step] = _trainable(module)  # the loop trains setup.policy in place

    train(setup, tmp_path / "run", progress=after_step)
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == cfg.total_steps
    assert all(math.isfinite(r.get("losses/sft", r.get("losses/policy"))) for r in rows)
    assert all(r["optim/grad_norm"] > 0 for r in rows)
    # every trainable parameter gets a gradient from each objective: none is left out of the
    # loss (a detached head, an unused norm, a frozen embedding would stay put)
    sft_end, rl_end = snapshots[cfg.sft.steps], snapshots[cfg.total_steps]
    assert len(snapshots[0]) > 0
    assert _unchanged(snapshots[0], sft_end) == [], "not trained by SFT"
    assert _unchanged(sft_end, rl_end) == [], "not trained by RL"

    saved = tmp_path / "run" / "checkpoints" / f"step_{cfg.total_steps}" / "model"
    model = AutoModelForCausalLM.from_pretrained(saved, local_files_only=True)
    AutoTokenizer.from_pretrained(saved, local_files_only=True)
    loaded = dict(model.named_parameters())
    assert loaded.keys() == rl_end.keys()
    for name, value in rl_end.items():  # the saved model is the trained one, exactly
        assert torch.equal(loaded[name].detach(), value), name
    assert (model_dir / "config.json").is_file()  # the user's directory is untouched
