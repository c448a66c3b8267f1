"""One validation pass over a config: every name a config may use, and every component's own checks.

``build_config`` / ``load_config`` run it after the types and ranges are checked, and ``prepare``
runs it again for configs built in code, so a config is refused up front, with the key named,
before any run directory exists. Each registered component owns the checks of its keys:

- names: every registry-backed key holds a registered name (``registries``);
- the rollout source (``rollout.strategy``): ``check_config`` of its class in
  ``graft.rollout.sources.ROLLOUT_SOURCES`` (tree shape, partial's budget);
- the mixer schedule (``mix.schedule``): ``check_config`` of its class in ``MIX_SCHEDULES``;
- the curriculum: ``Curriculum.check_config``;
- the advantage estimator: its level's needs (a tree needs tree rollouts);
- KL and shaping: an estimator when ``algo.kl_coef > 0``; the overlong window within the budget;
- the model: LoRA (``model.lora.rank > 0``) needs a Hugging Face model (``model.path``).

What needs the data or the model (the task's files, demonstrations for SFT, prompts the
tokenizer can encode) is checked by ``graft.train.loop.prepare``, which builds them.
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


def _value(cfg: Config, dotted: str):
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def name_problems(cfg: Config) -> list[str]:
    return [f"config key '{key}': unknown name {_value(cfg, key)!r}; choose one of {', '.join(names)}"
            for key, names in registries().items() if _value(cfg, key) not in names]


def config_problems(cfg: Config) -> list[str]:
    """Every problem of ``cfg`` that the config alone shows, each naming its key."""
    names = name_problems(cfg)
    if names:  # the components below are looked up by these names
        return names
    from graft.algos import ADVANTAGES
    from graft.curriculum.step import Curriculum
    from graft.mix.schedules import MIX_SCHEDULES
    from graft.rollout.sources import ROLLOUT_SOURCES

    problems = [*ROLLOUT_SOURCES[cfg.rollout.strategy].check_config(cfg),
                *MIX_SCHEDULES[cfg.mix.schedule].check_config(cfg), *Curriculum.check_config(cfg)]
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
