"""The SFT <-> RL mixer: schedules (``schedules.MIX_SCHEDULES``, config ``mix.schedule``), their pure
rules (``rules``) and their revisions of a round of rollouts (``revisions``: requests for hints and
injected demonstrations; the rollout source samples them, the mixer never does)."""
