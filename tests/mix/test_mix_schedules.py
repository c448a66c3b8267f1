"""Every mixer schedule trains from the config (issue 4, acceptance 1) and resumes exactly.

The case lists are built from ``MIX_SCHEDULES``: a schedule added to the registry without a run
here fails ``test_every_schedule_is_covered``; one that keeps state gets a resume test.
"""

import math
import shutil
from pathlib import Path

import pytest
import torch

from graft.cli import packaged_config
from graft.config import ConfigError, build_config, load_config
from graft.errors import GraftError
from graft.mix.schedules import MIX_SCHEDULES
from graft.train.checkpoint import load_trainer_state
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

# the quickstart config, shrunk: 1 SFT warm-up step, 3 mixed steps, evaluation on 8 examples
FAST = [
    "log.progress=false", "threads=1", "model.d_model=32", "model.n_layers=1", "model.n_heads=2",
    "task.difficulty=1", "task.num_train=64", "task.num_test=8", "sft.steps=1", "sft.batch_size=8",
    "sft.warmup_steps=0", "rl.steps=3", "rl.num_prompts=3", "rl.num_generations=4",
    "rl.max_new_tokens=16", "eval.num_examples=8", "eval.max_new_tokens=16", "checkpoint.every=1",
    "checkpoint.keep=5", "mix.buffer_size=4", "mix.sft_lr=0.001",
]
SCHEDULES = sorted(MIX_SCHEDULES)
STATEFUL = [n for n in SCHEDULES if MIX_SCHEDULES[n](build_config({}, FAST)).state_dict()]
COMPARED = ("losses/sft", "losses/policy", "rollout/reward_mean", "optim/grad_norm", "mix/sft_share",
            "perf/compute")


def _overrides(name: str) -> list[str]:
    return FAST + [f"mix.schedule={name}", f"name={name}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """name -> run directory of that schedule's FAST run, trained once per module."""
    runs: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in runs:
            runs[name] = tmp_path_factory.mktemp(name) / "run"
            train(prepare(load_config(packaged_config("quickstart"), _overrides(name))), runs[name])
        return runs[name]

    return get


def test_every_schedule_is_covered():
    assert set(SCHEDULES) == {"sft_then_rl", "interleaved", "adaptive", "hints", "inject", "weighted"}
    assert set(STATEFUL) == {"interleaved", "adaptive", "hints"}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_trains_from_the_config(trained, name):
    rows = read_metrics(trained(name) / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(4))
    for r in rows:
        for key, value in r.items():
            assert isinstance(value, (int, float)) and math.isfinite(value), (name, key, value)
        assert 0.0 <= r["mix/sft_share"] <= 1.0 and r["perf/compute"] > 0
    assert rows[0]["mix/sft_share"] == 1.0  # the warm-up
    mixed = rows[1:]
    shares = [r["mix/sft_share"] for r in mixed]
    if name == "sft_then_rl":
        assert shares == [0.0] * 3
    if name == "interleaved":  # 3 failing prompts per RL step, buffer of 4: RL, RL, SFT
        assert shares == [0.0, 0.0, 1.0]
        assert [r["mix/buffer_items"] for r in mixed] == [3.0, 6.0, 2.0]
    if name == "adaptive":  # the reference is set in the warm-up, so the first mixed step draws
        assert all(0.1 <= r["mix/p_sft"] <= 0.9 for r in mixed)
        assert all(r["mix/sft_share"] in (0.0, 1.0) for r in mixed)
    if name == "hints":  # an untrained policy fails everywhere: every group is hinted
        assert [r["mix/hint_p"] for r in mixed][-1] == pytest.approx(0.05)
        assert all(r["mix/hinted_groups"] == 3.0 and r["mix/hint_len"] >= 0 for r in mixed)
        assert mixed[0]["mix/hint_len"] > 0 and all(0 < s < 1 for s in shares if s)
    if name == "inject":
        assert all(r["mix/injected"] == 3.0 and 0 < r["mix/sft_share"] < 1 for r in mixed)
    if name == "weighted":  # constant weight 0.1: share 0.1 / 1.1 by loss weight
        assert shares == pytest.approx([0.1 / 1.1] * 3, abs=1e-6)  # float32 sum of weights
        assert all("losses/sft" in r and "losses/policy" in r for r in mixed)


@pytest.mark.parametrize("name", STATEFUL)
def test_stateful_schedule_resumes_exactly(trained, tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(trained(name), run)
    rows = read_metrics(run / "metrics.jsonl")
    # back to the checkpoint after 2 steps (interleaved: 3 items buffered, the SFT step still ahead);
    # the last two steps must come out the same
    for step in (3, 4):
        shutil.rmtree(run / "checkpoints" / f"step_{step}")
    train(prepare(load_config(packaged_config("quickstart"), _overrides(name))), run, resume=True)
    again = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in again] == [r["step"] for r in rows]
    for want, got in zip(rows[2:], again[2:]):
        for key in COMPARED:
            if key in want:
                assert got[key] == pytest.approx(want[key], abs=1e-6), (name, want["step"], key)
        assert {k for k in want if k.startswith("mix/")} == {k for k in got if k.startswith("mix/")}
    # and the schedule ends in the same state (buffer, moving averages, RNG)
    ref_state = load_trainer_state(trained(name) / "checkpoints" / "step_4")["mix"]
    new_state = load_trainer_state(run / "checkpoints" / "step_4")["mix"]
    assert ref_state.keys() == new_state.keys()
    for key, value in ref_state.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, new_state[key]), key
        else:
            assert value == pytest.approx(new_state[key], abs=1e-6) if isinstance(value, float) \
                else value == new_state[key], key


def test_mix_names_and_values_are_checked_up_front():
    with pytest.raises(ConfigError, match="mix.schedule"):
        prepare(build_config({}, ["mix.schedule=alternating"]))
    with pytest.raises(ConfigError, match="adaptive_p_min"):
        build_config({}, ["mix.adaptive_p_min=0.8", "mix.adaptive_p_max=0.2"])
    with pytest.raises(ConfigError, match="unknown config key 'mix.bufer_size'"):
        build_config({}, ["mix.bufer_size=3"])
    with pytest.raises(GraftError, match="needs demonstrations"):
        prepare(build_config({}, ["task.num_train=20", "task.demo_fraction=0", "sft.steps=0",
                                  "mix.schedule=inject"]))
