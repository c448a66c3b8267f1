"""Every CLI entry point on a tiny budget, and bad input: one clear line, non-zero exit, no traceback."""

import json
import subprocess
import sys

import pytest


def graft(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "graft.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, check=False)


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def test_list_shows_registries():
    out = graft("list")
    assert out.returncode == 0
    for name in ("arithmetic", "countdown", "grpo", "ppo_clip", "token_mean", "k3"):
        assert name in out.stdout


def test_train_then_eval(tmp_path, tiny_overrides):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 0\n")
    run = tmp_path / "run"
    out = graft("train", str(cfg), "--out", str(run), *_sets(tiny_overrides))
    assert out.returncode == 0, out.stderr
    assert "after SFT" in out.stdout and "after RL" in out.stdout
    out = graft("eval", str(run))
    assert out.returncode == 0, out.stderr
    result = json.loads((run / "eval" / "step_8.json").read_text())
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["sampled_accuracy"] <= 1.0
    # a checkpoint directory works too
    assert graft("eval", str(run / "checkpoints" / "step_8")).returncode == 0
    # an existing run is not overwritten without --resume
    again = graft("train", str(cfg), "--out", str(run), *_sets(tiny_overrides))
    assert again.returncode == 2 and "already exists" in again.stderr


def _bad(tmp_path, args, expect):
    run = tmp_path / "never"
    out = graft(*args, "--out", str(run)) if args[0] == "train" else graft(*args)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert expect in lines[0], lines[0]
    assert not run.exists()


def test_missing_config_file(tmp_path):
    _bad(tmp_path, ["train", str(tmp_path / "missing.yaml")], "config file not found")


def test_malformed_yaml(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("rl:\n  steps: [1, 2\n")
    _bad(tmp_path, ["train", str(f)], "bad.yaml (line")


@pytest.mark.parametrize("override,expect", [
    ("rl.stepz=3", "unknown config key 'rl.stepz'"),
    ("rl.steps=three", "config key 'rl.steps'"),
    ("algo.advantage=nope", "config key 'algo.advantage': unknown name 'nope'"),
    ("task.name=nope", "config key 'task.name': unknown name 'nope'"),
    ("model.path=/definitely/not/here", "/definitely/not/here"),
])
def test_bad_keys_and_values(tmp_path, override, expect):
    f = tmp_path / "c.yaml"
    f.write_text("{}\n")
    _bad(tmp_path, ["train", str(f), "--set", override], expect)


def test_dataset_row_without_prompt(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "1+1=", "answer": "2"}\n{"answer": "3"}\n')
    f = tmp_path / "c.yaml"
    f.write_text(f"task:\n  name: jsonl\n  path: {data}\nsft:\n  steps: 0\n")
    _bad(tmp_path, ["train", str(f)], "data.jsonl:2: field 'prompt' is missing")


def test_eval_of_missing_run(tmp_path):
    _bad(tmp_path, ["eval", str(tmp_path / "nothing")], "no such run or checkpoint")


def test_quickstart_reports_its_teacher(tmp_path, tiny_overrides):
    run = tmp_path / "qs"
    out = graft("quickstart", "--out", str(run), *_sets([*tiny_overrides, "task.teacher_error=0.6"]))
    assert out.returncode == 0, out.stderr
    line = next(x for x in (out.stdout + out.stderr).splitlines() if "the teacher's demonstrations" in x)
    share = float(line.split(":")[1].split()[0])
    assert 0.4 < share < 0.8, line  # 61% of the 10,000 default prompts' demonstrations; fewer prompts here
