"""The curriculum inside the loop: uniform leaves the step alone, pcl + dars run, log, resume exactly."""

import shutil

import pytest

from graft.config import ConfigError, build_config
from graft.curriculum.step import Curriculum
from graft.curriculum.uniform import UniformStream
from graft.tasks.arithmetic import ArithmeticTask
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

PCL = ["curriculum.name=pcl", "curriculum.pool_factor=3"]
DARS = ["curriculum.dars=true", "curriculum.dars_extra=8"]
KEYS = ("curriculum/pred_mae", "curriculum/pred_pass_rate", "curriculum/realised_pass_rate",
        "curriculum/zero_var_frac")


def _rows(tmp, overrides):
    train(prepare(build_config({}, overrides)), tmp)
    return read_metrics(tmp / "metrics.jsonl")


def test_uniform_is_todays_step(tiny_overrides):
    """curriculum.name=uniform, dars off: the stream's next prompts as requests of
    rl.num_generations, no revision, no metrics; so the RL step is the one without a curriculum."""
    cfg = build_config({}, tiny_overrides)
    stream = UniformStream(ArithmeticTask(num_train=50, num_test=5).train_examples(), seed=3)
    curriculum = Curriculum(cfg, stream)
    setup = prepare(cfg)
    for rl_index in (0, 5):
        requests = curriculum.requests(setup.policy, rl_index)
        assert [r.example for r in requests] == stream.take(rl_index * 4, 4)
        assert all(r.n == cfg.rl.num_generations and not r.prefix and not r.demonstration for r in requests)
        assert curriculum.revise([]) == [] and curriculum.fwd_tokens == 0.0
        assert curriculum.observe() == {}
    assert curriculum.state_dict() == {"weights": None}


@pytest.mark.parametrize("overrides, key", [
    (["curriculum.name=hard"], "curriculum.name"),
    (["curriculum.target=1.0"], "curriculum.target"),
    (["curriculum.pool_factor=0"], "curriculum.pool_factor"),
    (["curriculum.dars=true"], "curriculum.dars_extra"),
    (["curriculum.dars=true", "curriculum.dars_extra=6"], "curriculum.dars_extra"),
    (DARS + ["select.dynamic_sampling=true"], "curriculum.dars"),
    (PCL + ["rollout.strategy=partial"], "curriculum.name"),
    (DARS + ["rollout.strategy=partial"], "curriculum.dars"),
])
def test_bad_curriculum_config_names_the_key(tiny_overrides, overrides, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        prepare(build_config({}, tiny_overrides + overrides))


def test_pcl_and_dars_train_and_log(tmp_path, tiny_overrides):
    rows = _rows(tmp_path / "pcl", tiny_overrides + PCL + DARS)
    rl = [r for r in rows if "losses/policy" in r]
    assert len(rl) == 4
    for r in rl:
        assert set(KEYS) <= set(r) and "curriculum/dars_extra_rollouts" in r
        assert 0.0 <= r["curriculum/pred_pass_rate"] <= 1.0
        assert r["curriculum/realised_pass_rate"] == r["rollout/accuracy"]  # first round = own samples
        assert r["curriculum/dars_extra_rollouts"] % 4 == 0 and r["curriculum/dars_extra_rollouts"] <= 8
    assert rl[0]["curriculum/pred_pass_rate"] == 0.5  # an untrained predictor
    assert rl[-1]["curriculum/pred_pass_rate"] != 0.5  # fit online after each step


def test_dars_adds_rollouts_but_keeps_the_first_round(tmp_path, tiny_overrides):
    """DARS samples after the first round: the first RL step's own rollouts (and their metrics) are
    those of a run without DARS, while forward tokens grow by the extra groups it sampled."""
    base = [r for r in _rows(tmp_path / "a", tiny_overrides) if "losses/policy" in r]
    dars = [r for r in _rows(tmp_path / "b", tiny_overrides + DARS) if "losses/policy" in r]
    assert dars[0]["curriculum/dars_extra_rollouts"] > 0
    for key in ("rollout/reward_mean", "rollout/accuracy", "rollout/completion_len"):
        assert dars[0][key] == base[0][key], key
    assert dars[0]["perf/fwd_tokens"] > base[0]["perf/fwd_tokens"]
    assert "curriculum/dars_extra_rollouts" not in base[0]


def test_resume_with_pcl_is_exact(tmp_path, tiny_overrides):
    """Resume from a checkpoint taken after two RL steps: the predictor's weights come back, so
    the following steps choose and predict exactly as the uninterrupted run did."""
    overrides = tiny_overrides + PCL + ["checkpoint.every=1", "checkpoint.keep=20"]
    ref = _rows(tmp_path / "ref", overrides)
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "ref", cut)
    for step in (7, 8):
        shutil.rmtree(cut / "checkpoints" / f"step_{step}")
    (cut / "summary.json").unlink()
    train(prepare(build_config({}, overrides)), cut, resume=True)
    resumed = read_metrics(cut / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [r["step"] for r in ref]
    for want, got in zip(ref[6:], resumed[6:]):
        for key in (*KEYS, "losses/policy", "rollout/reward_mean", "optim/grad_norm"):
            assert got[key] == want[key], (want["step"], key)
