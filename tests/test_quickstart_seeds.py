"""bench/quickstart_seeds.py: seed parsing and the JSON it writes (a tiny, seconds-long quickstart)."""

import json
import sys

import pytest
from bench_scripts import load


@pytest.fixture(scope="module")
def qs():
    return load("quickstart_seeds.py")


def test_parse_seeds(qs):
    assert qs.parse_seeds("0,1,2") == [0, 1, 2]
    assert qs.parse_seeds("3-5") == [3, 4, 5]
    assert qs.parse_seeds("7") == [7]


def test_writes_one_row_per_seed_with_the_gain(qs, tmp_path, monkeypatch):
    out = tmp_path / "seeds.json"
    tiny = ["threads=1", "model.d_model=16", "model.n_layers=1", "model.n_heads=2", "task.num_train=64",
            "task.num_test=8", "eval.num_examples=8", "sft.steps=2", "sft.batch_size=8", "rl.steps=1",
            "rl.num_prompts=2", "rl.num_generations=2", "rl.max_new_tokens=8", "eval.max_new_tokens=8"]
    argv = ["quickstart_seeds.py", "--seeds", "0-1", "--out", str(out), "--runs", str(tmp_path / "runs")]
    for kv in tiny:
        argv += ["--set", kv]
    monkeypatch.setattr(sys, "argv", argv)
    qs.main()
    result = json.loads(out.read_text())
    assert [r["seed"] for r in result["runs"]] == [0, 1]
    assert result["overrides"] == tiny and result["threads"] == 1 and result["rl_steps"] == 1
    for row in result["runs"]:
        summary = json.loads((tmp_path / "runs" / f"seed{row['seed']}" / "summary.json").read_text())
        assert row["accuracy_after_sft"] == summary["accuracy_after_sft"]
        assert row["gain"] == pytest.approx(summary["accuracy_after_rl"] - summary["accuracy_after_sft"])
        assert row["eval_examples"] == 8
    gains = [r["gain"] for r in result["runs"]]
    assert result["min_gain"] == pytest.approx(min(gains), abs=1e-4)
    assert result["mean_gain"] == pytest.approx(sum(gains) / 2, abs=1e-4)
