"""Pure math of RL updates behind name registries (config value = registry key)."""

from graft.algos.advantages import ADVANTAGES
from graft.algos.kl import KL_ESTIMATORS
from graft.algos.losses import LOSS_AGG, POLICY_LOSSES

__all__ = ["ADVANTAGES", "KL_ESTIMATORS", "LOSS_AGG", "POLICY_LOSSES"]
