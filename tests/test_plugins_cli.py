"""docs/tasks.md's example trains from the command line: a Task class and reward functions of the
user's own (examples/my_task.py), named by import path, found from the current directory; the
rewards the run logs are the ones the user's code returned; a bad path is one `error:` line.

The CLI runs as ``python -P -m graft.cli`` with an absolute PYTHONPATH: like the installed `graft`
script, nothing puts the current directory on sys.path but graft's plug-in lookup itself.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import graft
from graft.tasks.dataset import DatasetTask

REPO = Path(__file__).resolve().parents[1]
SRC = str(Path(graft.__file__).resolve().parents[1])
TINY = ["name=plug", "log.progress=false", "threads=1", "model.d_model=32", "model.n_layers=1", "model.n_heads=2",
        "task.num_train=64", "task.num_test=8", "sft.steps=3", "sft.batch_size=8", "sft.warmup_steps=1",
        "rl.steps=2", "rl.num_prompts=3", "rl.num_generations=4", "rl.max_new_tokens=8",
        "eval.num_examples=6", "eval.max_new_tokens=8", "checkpoint.every=100"]
P, G = 3, 4  # rl.num_prompts, rl.num_generations: one verifier call of P x G completions per RL step

SPY = '''
"""Test spies: the example's code plus a small length bonus (so that a barely trained policy's
completions earn different rewards, and a logged value that is not the function's shows), recording
every value returned (one JSON line per call)."""
import json, os
from graft.tasks import Example, Score
from examples.my_task import ReverseTask, last_line_reward

LOG = os.environ["SPY_LOG"]

def _record(prompts, rewards):
    with open(LOG, "a") as fh:
        fh.write(json.dumps({"prompts": prompts, "rewards": rewards}) + "\\n")

def _bonus(completion):
    return 0.01 * len(completion)  # < 0.1 with rl.max_new_tokens=8: correct still means exact

class SpyTask(ReverseTask):
    def score(self, example, completion):
        score = super().score(example, completion)
        score = Score(score.reward + _bonus(completion), score.correct, score.parts)
        _record([example.prompt], [score.reward])
        return score

def graft_style(example, completion):
    reward = last_line_reward(example, completion) + _bonus(completion)
    _record([example.prompt], [reward])
    return reward

def trl_style(prompts, completions, answer, **kwargs):
    assert set(kwargs) == {"demonstration", "id"}, kwargs  # the dataset's other columns
    rewards = [last_line_reward(Example(p, a), c) + _bonus(c) for p, c, a in zip(prompts, completions, answer)]
    _record(list(prompts), rewards)
    return rewards
'''


def graft(*args, cwd, pythonpath=(), env=None):
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, *pythonpath]), **(env or {})}
    return subprocess.run([sys.executable, "-P", "-m", "graft.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=300, check=False)


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _rl_rewards_per_step(log: Path, train_prompts: set[str]) -> list[list[float]]:
    """The recorded rewards of training prompts (evaluation scores test prompts), P x G per RL step."""
    rewards = [r for call in map(json.loads, log.read_text().splitlines())
               for p, r in zip(call["prompts"], call["rewards"]) if p in train_prompts]
    assert len(rewards) == 2 * P * G, len(rewards)
    return [rewards[i:i + P * G] for i in range(0, len(rewards), P * G)]


def _check_logged(run: Path, per_step: list[list[float]], correct_at: float | None = None) -> None:
    rl_rows = [row for row in _metrics(run) if "rollout/reward_mean" in row]
    assert len(rl_rows) == len(per_step) == 2
    assert len({r for rewards in per_step for r in rewards}) > 1  # a wrong value would show
    for row, rewards in zip(rl_rows, per_step):
        assert math.isclose(row["rollout/reward_mean"], sum(rewards) / len(rewards), abs_tol=1e-6), (row, rewards)
        if correct_at is not None:
            assert math.isclose(row["rollout/accuracy"], sum(r >= correct_at for r in rewards) / len(rewards))


def test_the_example_task_trains_from_the_repository_root(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 0\n")
    run = tmp_path / "run"
    out = graft("train", str(cfg), "--out", str(run), *_sets(TINY), "--set", "task.name=examples.my_task:ReverseTask",
                cwd=REPO)
    assert out.returncode == 0, out.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "examples.my_task:ReverseTask" and summary["steps"] == 5
    assert [row["step"] for row in _metrics(run)] == [0, 1, 2, 3, 4]


def test_the_task_score_is_what_the_run_logs(tmp_path):
    """A subclass of the example task in the user's project directory records what score() returned."""
    (tmp_path / "spy.py").write_text(SPY)
    log = tmp_path / "calls.jsonl"
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task:\n  name: spy:SpyTask\n")
    out = graft("train", str(cfg), "--out", str(run), *_sets(TINY), cwd=tmp_path, pythonpath=[str(REPO)],
                env={"SPY_LOG": str(log)})
    assert out.returncode == 0, out.stderr
    sys.path.insert(0, str(REPO))
    try:
        from examples.my_task import ReverseTask
    finally:
        sys.path.pop(0)
    train_prompts = {ex.prompt for ex in ReverseTask(num_train=64, num_test=8).train_examples()}
    _check_logged(run, _rl_rewards_per_step(log, train_prompts), correct_at=1.0)


@pytest.mark.parametrize("style", ["graft_style", "trl_style"])
def test_a_reward_function_is_what_the_run_logs(tmp_path, style):
    """task.name=dataset with task.reward in both signatures; TRL's is called once per RL step."""
    sys.path.insert(0, str(REPO))
    try:
        from examples.my_task import ReverseTask
    finally:
        sys.path.pop(0)
    source = ReverseTask(num_train=40, num_test=8)  # 48 rows; the dataset task holds 8 out itself
    rows = source.train_examples() + source.test_examples()
    data = tmp_path / "reverse.jsonl"
    data.write_text("".join(json.dumps({"prompt": e.prompt, "answer": e.answer, "demonstration": e.demonstration,
                                        "id": e.meta["id"]}) + "\n" for e in rows))
    (tmp_path / "spy.py").write_text(SPY)
    log = tmp_path / "calls.jsonl"
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"task:\n  name: dataset\n  path: {data}\n  reward: spy:{style}\n  num_test: 8\n")
    out = graft("train", str(cfg), "--out", str(run), *_sets(TINY), cwd=tmp_path, pythonpath=[str(REPO)],
                env={"SPY_LOG": str(log)})
    assert out.returncode == 0, out.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    if style == "trl_style":  # batched: one call of P x G completions per RL step (evaluation: per chunk)
        assert [len(c["prompts"]) for c in calls if len(c["prompts"]) == P * G] == [P * G, P * G]
    else:
        assert {len(c["prompts"]) for c in calls} == {1}
    train_prompts = {e.prompt for e in DatasetTask(path=str(data), num_train=64, num_test=8).train_examples()}
    _check_logged(run, _rl_rewards_per_step(log, train_prompts), correct_at=1.0)


@pytest.mark.parametrize("override, expect", [
    ("task.name=examples.my_task:Nope", "config key 'task.name': module 'examples.my_task' has no attribute 'Nope'"),
    ("task.name=examples.nothing_here:Task",
     "config key 'task.name': cannot import 'examples.nothing_here': no module named 'examples.nothing_here'"),
    ("task.reward=examples.my_task:ReverseTask", "config key 'task.reward': examples.my_task:ReverseTask is a class"),
])
def test_a_bad_import_path_is_one_error_line(tmp_path, override, expect):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task:\n  name: dataset\n  path: x.jsonl\n" if "reward" in override else "{}\n")
    run = tmp_path / "never"
    out = graft("train", str(cfg), "--out", str(run), "--set", override, cwd=REPO)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert expect in lines[0], lines[0]
    assert not run.exists()
