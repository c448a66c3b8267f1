"""Kept for imports of the previous layout: the names and checks live in ``graft.validation``."""

from graft.validation import registries, validate_config

check_names = validate_config  # the one validation pass (names and every component's checks)

__all__ = ["check_names", "registries", "validate_config"]
