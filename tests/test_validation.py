"""One validation pass: load_config refuses, naming the key, every config that prepare refuses
for the config alone (what needs the task's data or the model's tokenizer is prepare's)."""

import pytest

from graft.config import Config, ConfigError, load_config
from graft.curriculum.step import Curriculum
from graft.mix.schedules import MIX_SCHEDULES
from graft.rollout.sources import ROLLOUT_SOURCES
from graft.train.loop import prepare
from graft.validation import config_problems, registries

TINY = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "task.num_train=20", "task.num_test=4"]

BAD = [  # (overrides, the key the message must name)
    (["algo.advantage=ppo2"], "algo.advantage"),
    (["algo.policy_loss=dpo"], "algo.policy_loss"),
    (["algo.loss_agg=max"], "algo.loss_agg"),
    (["algo.kl=k9"], "algo.kl"),
    (["shaping.length=short"], "shaping.length"),
    (["mix.schedule=random"], "mix.schedule"),
    (["task.name=chess"], "task.name"),
    (["task.grader=vibes"], "task.grader"),
    (["algo.kl_coef=0.1"], "algo.kl"),
    (["shaping.overlong_cache=64"], "shaping.overlong_cache"),
    (["algo.advantage=tree"], "algo.advantage"),
    (["rollout.strategy=tree", "rl.num_generations=8", "rollout.branch=2", "rollout.max_depth=2"],
     "rollout.branch"),
    (["rollout.strategy=tree", "rl.max_new_tokens=16", "rollout.segment_len=8"], "rollout.max_depth"),
    (["rollout.strategy=partial", "select.dynamic_sampling=true"], "rollout.strategy"),
    (["rollout.strategy=partial", "rollout.over_provision=3", "select.max_extra_prompts=4"],
     "rollout.over_provision"),
    (["curriculum.dars=true"], "curriculum.dars_extra"),
    (["curriculum.dars=true", "curriculum.dars_extra=6"], "curriculum.dars_extra"),
    (["curriculum.dars=true", "curriculum.dars_extra=8", "select.dynamic_sampling=true"], "curriculum.dars"),
    (["curriculum.name=pcl", "rollout.strategy=partial"], "curriculum.name"),
    (["rollout.engine=vllm"], "rollout.engine"),  # the tiny transformer: vLLM serves HF models only
    (["rollout.engine=vllm", "model.path=m", "rollout.strategy=tree"], "rollout.engine"),
    (["rollout.engine=vllm", "model.path=m", "rl.top_p=0.9", "rl.temperature=0.7"], "rl.top_p"),
    (["distributed.rollout_workers=2"], "distributed.rollout_workers"),
    (["distributed.max_staleness=1"], "distributed.max_staleness"),
    (["distributed.rollout_worker_gpus=1"], "distributed.rollout_worker_gpus"),
    (["distributed.weight_sync=broadcast"], "distributed.weight_sync"),
    (["distributed.backend=ray", "rollout.strategy=partial"], "rollout.strategy"),
    (["distributed.backend=ray", "distributed.max_staleness=1", "curriculum.name=pcl"], "curriculum.name"),
    (["distributed.backend=ray", "distributed.max_staleness=2", "curriculum.dars=true",
      "curriculum.dars_extra=8"], "curriculum.dars"),
]


def _unchecked(overrides) -> Config:
    """The same config built without the pass (as code that constructs a Config directly would)."""
    tree: dict = {}
    for text in TINY + overrides:
        key, value = text.split("=", 1)
        section, field = key.split(".")
        tree.setdefault(section, {})[field] = int(value) if value.isdigit() else (
            float(value) if value.replace(".", "", 1).isdigit() else {"true": True}.get(value, value))
    return Config.model_validate(tree)


@pytest.mark.parametrize("overrides, key", BAD)
def test_load_config_and_prepare_refuse_alike(overrides, key):
    with pytest.raises(ConfigError, match=f"'{key}'") as at_load:
        load_config(None, TINY + overrides)
    with pytest.raises(ConfigError) as at_prepare:
        prepare(_unchecked(overrides))
    assert str(at_prepare.value) == str(at_load.value)


def test_every_problem_is_reported_at_once():
    problems = config_problems(_unchecked(["algo.kl_coef=0.1", "shaping.overlong_cache=64"]))
    assert len(problems) == 2 and "'algo.kl'" in problems[0] and "'shaping.overlong_cache'" in problems[1]


def test_every_registered_component_checks_its_own_keys():
    for cls in [*ROLLOUT_SOURCES.values(), *MIX_SCHEDULES.values(), Curriculum]:
        assert callable(cls.check_config) and cls.check_config(load_config(None, TINY)) == []
    assert registries()["rollout.strategy"] == ["iid", "partial", "tree"]


def test_the_moved_partial_switch_names_its_replacement():
    with pytest.raises(ConfigError, match="rollout.strategy=partial"):
        load_config(None, ["rollout.partial=true"])
