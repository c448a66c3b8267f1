"""Acceptance: the same config trains a local tiny Hugging Face model and the result loads with transformers."""

import math

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from graft.config import build_config
from graft.models.hf_testing import build_tiny_hf_model
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train


def test_tiny_qwen2_trains_and_saves_in_hf_format(tmp_path, tiny_overrides):
    model_dir = build_tiny_hf_model(tmp_path / "qwen2", arch="qwen2", seed=0)
    cfg = build_config({}, tiny_overrides + [f"model.path={model_dir}"])
    setup = prepare(cfg)
    before = {k: v.clone() for k, v in setup.policy.module.state_dict().items()}
    train(setup, tmp_path / "run")
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == cfg.total_steps
    assert all(math.isfinite(r.get("losses/sft", r.get("losses/policy"))) for r in rows)
    saved = tmp_path / "run" / "checkpoints" / f"step_{cfg.total_steps}" / "model"
    model = AutoModelForCausalLM.from_pretrained(saved, local_files_only=True)
    AutoTokenizer.from_pretrained(saved, local_files_only=True)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) >= len(before) // 2  # trained in place (tied/embedding rows may stay put)
    assert (tmp_path / "qwen2" / "config.json").is_file()  # the user's directory is untouched


def test_tiny_llama_loads_and_samples(tmp_path, tiny_overrides):
    model_dir = build_tiny_hf_model(tmp_path / "llama", arch="llama", seed=0)
    cfg = build_config({}, tiny_overrides + [f"model.path={model_dir}", "sft.steps=1", "rl.steps=1"])
    summary = train(prepare(cfg), tmp_path / "run")
    assert 0.0 <= summary["accuracy_after_rl"] <= 1.0
