"""The SFT <-> RL mixer: schedules (``schedules.MIX_SCHEDULES``, config ``mix.schedule``), their pure
rules (``rules``) and their hooks into the rollout stage (``rollout_hooks``).

This package file imports nothing, so that ``graft.train.rl`` can use ``graft.mix.rules``
while ``graft.mix.rollout_hooks`` uses ``graft.train.rl`` without an import cycle.
"""
