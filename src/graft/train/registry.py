"""Every name a config may use, in one place: `graft list` prints it, `check_names` enforces it."""

from __future__ import annotations

from graft.config import Config, ConfigError


def registries() -> dict[str, list[str]]:
    from graft.algos import ADVANTAGES, KL_ESTIMATORS, LOSS_AGG, POLICY_LOSSES
    from graft.mix.schedules import MIX_SCHEDULES
    from graft.rewards import GRADERS
    from graft.rewards.shaping import LENGTH_SHAPING
    from graft.tasks import TASKS

    return {
        "task.name": sorted(TASKS),
        "task.grader": sorted(GRADERS),
        "algo.advantage": sorted(ADVANTAGES),
        "algo.policy_loss": sorted(POLICY_LOSSES),
        "algo.loss_agg": sorted(LOSS_AGG),
        "algo.kl": ["none", *sorted(KL_ESTIMATORS)],
        "shaping.length": sorted(LENGTH_SHAPING),
        "mix.schedule": sorted(MIX_SCHEDULES),
    }


def check_names(cfg: Config) -> None:
    """Raise ConfigError naming the key when a config value is not a registered name."""
    values = {
        "task.name": cfg.task.name,
        "task.grader": cfg.task.grader,
        "algo.advantage": cfg.algo.advantage,
        "algo.policy_loss": cfg.algo.policy_loss,
        "algo.loss_agg": cfg.algo.loss_agg,
        "algo.kl": cfg.algo.kl,
        "shaping.length": cfg.shaping.length,
        "mix.schedule": cfg.mix.schedule,
    }
    for key, names in registries().items():
        if values[key] not in names:
            raise ConfigError(f"config key '{key}': unknown name {values[key]!r}; choose one of {', '.join(names)}")
    from graft.curriculum.step import check_curriculum

    check_curriculum(cfg)
    if cfg.algo.kl_coef > 0 and cfg.algo.kl == "none":
        raise ConfigError("config key 'algo.kl': is 'none' but algo.kl_coef > 0; pick an estimator (k1, k2, k3)")
    from graft.rollout.tree import check_tree_config

    problems = check_tree_config(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
    if cfg.shaping.overlong_cache >= cfg.rl.max_new_tokens:
        raise ConfigError(
            f"config key 'shaping.overlong_cache': {cfg.shaping.overlong_cache} must be below "
            f"rl.max_new_tokens ({cfg.rl.max_new_tokens})"
        )
