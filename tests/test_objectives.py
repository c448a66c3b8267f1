"""Every registered objective name trains end to end (issue 3, acceptance 2).

The list of cases is built from the registries themselves, so a name added to
a registry without a run here fails ``test_every_registered_name_is_covered``.
"""

import math
import shutil
from pathlib import Path

import pytest
import torch

from graft.cli import packaged_config
from graft.config import build_config, load_config
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train
from graft.train.registry import registries

# smaller than the TINY run of conftest: no SFT, 2 RL steps, evaluation on 8 examples. An untrained
# policy never answers right: with the verifier's reward alone every reward and advantage is 0 and
# no objective computes a gradient. The overlong penalty varies with completion length, so rewards
# differ within groups and each objective's update has something to follow.
FAST = [
    "name=objective", "log.progress=false", "threads=1", "model.d_model=32", "model.n_layers=1", "model.n_heads=2",
    "task.difficulty=1", "task.num_train=64", "task.num_test=8", "sft.steps=0",
    "rl.steps=2", "rl.num_prompts=3", "rl.num_generations=4", "rl.max_new_tokens=12",
    "eval.num_examples=8", "eval.max_new_tokens=12", "checkpoint.every=2", "shaping.overlong_cache=4",
]

# extra settings a name needs to be exercised (KL needs a coefficient, ...)
NEEDS = {
    ("algo.kl", "k1"): ["algo.kl_coef=0.1"],
    ("algo.kl", "k2"): ["algo.kl_coef=0.1", "algo.kl_in=reward"],
    ("algo.kl", "k3"): ["algo.kl_coef=0.1"],
    ("algo.advantage", "gae"): ["rl.num_iterations=2"],
    # RAFT imitates verified completions only and an untrained policy has none: 200 SFT steps first,
    # and the verifier's reward alone (no overlong penalty, which would make every reward <= 0)
    ("algo.advantage", "raft"): ["sft.steps=200", "sft.lr=0.005", "shaping.overlong_cache=0"],
    ("algo.policy_loss", "gspo"): ["rl.num_iterations=2"],
    ("algo.policy_loss", "cispo"): ["rl.num_iterations=2", "algo.clip_low=1.0"],
    ("shaping.length", "laser"): ["shaping.target_len=6"],
    ("algo.advantage", "tree"): ["rollout.strategy=tree", "rollout.segment_len=4", "rollout.max_depth=2"],
    ("rollout.strategy", "tree"): ["rollout.segment_len=4", "rollout.max_depth=2"],
    ("algo.advantage", "tree_segment"): ["rollout.strategy=tree", "rollout.segment_len=4", "rollout.max_depth=2"],
}
# tested in tests/tasks and tests/rewards (they need data files); schedules in tests/mix/test_mix_schedules.py
SKIP_KEYS = {"task.name", "task.grader", "mix.schedule"}

CASES = [(key, name) for key, names in registries().items() if key not in SKIP_KEYS for name in names]
# switches that are not registry names
SWITCHES = {
    "dynamic_sampling": ["select.dynamic_sampling=true", "select.max_extra_prompts=6"],
    "overlong": ["shaping.overlong_cache=8"],  # FAST has 4
    "mask_truncated": ["algo.mask_truncated=true"],
    "kl_in_reward_k3": ["algo.kl=k3", "algo.kl_coef=0.1", "algo.kl_in=reward"],
}


def _finite_rows(run: Path) -> list[dict]:
    every = read_metrics(run / "metrics.jsonl")
    for r in every:
        for key, value in r.items():
            assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    rows = [r for r in every if "losses/policy" in r]  # the RL steps (a case may run SFT steps first)
    assert len(rows) == 2
    if "select/kept_groups" in rows[0]:
        # dynamic sampling selects on the verifier's rewards (DAPO's accuracy filter): the untrained
        # policy solves nothing, so every group is dropped however its shaped rewards vary, the
        # whole refill budget is spent and the step has nothing to learn from
        assert rows[0]["rollout/zero_var_frac"] == 1.0 and rows[0]["select/kept_groups"] == 0
        assert rows[0]["select/extra_prompts"] == 6 and rows[0]["optim/grad_norm"] == 0
        return rows
    # the first update follows a gradient (rewards vary within its groups): the objective acted
    assert rows[0]["batch/reward_std"] > 0 and rows[0]["optim/grad_norm"] > 0
    return rows


def test_every_registered_name_is_covered():
    assert len(CASES) >= 6 + 3 + 4 + 4 + 4
    for key in registries():
        assert key in SKIP_KEYS or any(k == key for k, _ in CASES)


@pytest.mark.parametrize(("key", "name"), CASES, ids=[f"{k}={n}" for k, n in CASES])
def test_registered_name_trains(tmp_path, key, name):
    overrides = FAST + [f"{key}={name}"] + NEEDS.get((key, name), [])
    rows = _finite_rows(_train(tmp_path, overrides))
    assert "losses/policy" in rows[-1] and rows[-1]["optim/lr"] > 0


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_switch_trains(tmp_path, switch):
    rows = _finite_rows(_train(tmp_path, FAST + SWITCHES[switch]))
    if switch == "dynamic_sampling":
        for r in rows:
            assert 0 <= r["select/kept_groups"] <= 3 and r["select/extra_prompts"] <= 6
            assert r["select/extra_rollouts"] == 4 * r["select/extra_prompts"]


def test_gae_trains_the_critic_and_resumes_exactly(tmp_path):
    # the overlong penalty makes rewards non-zero even for an untrained policy, so the critic has targets
    overrides = FAST + ["algo.advantage=gae", "rl.steps=3", "checkpoint.every=1", "checkpoint.keep=3",
                        "shaping.overlong_cache=4"]
    run = _train(tmp_path, overrides)
    rows = read_metrics(run / "metrics.jsonl")
    assert all(r["losses/value"] > 0 for r in rows)
    saved = torch.load(run / "checkpoints" / "step_3" / "critic.pt", weights_only=True)
    assert saved["head.weight"].abs().sum() > 0  # the zero-initialised head has moved
    # drop the last checkpoint and resume from step 2: the third step must come out the same
    shutil.rmtree(run / "checkpoints" / "step_3")
    train(prepare(build_config({}, overrides)), run, resume=True)
    again = read_metrics(run / "metrics.jsonl")
    for key in ("losses/policy", "losses/value", "rollout/reward_mean", "optim/grad_norm"):
        assert again[2][key] == pytest.approx(rows[2][key], abs=1e-6), key


def _train(tmp_path: Path, overrides: list[str]) -> Path:
    run = tmp_path / "run"
    train(prepare(build_config({}, overrides)), run)
    return run


RECIPES = ["grpo", "dr_grpo", "dapo", "lite_ppo", "rloo", "reinforce_pp", "gspo", "cispo", "ppo_reft"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_configs_load_and_name_registered_parts(recipe):
    cfg = load_config(packaged_config(recipe))
    assert cfg.name == recipe
    names = registries()
    assert cfg.algo.advantage in names["algo.advantage"]
    assert cfg.algo.policy_loss in names["algo.policy_loss"]
    assert cfg.algo.loss_agg in names["algo.loss_agg"]
