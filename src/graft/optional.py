"""Optional packages a config key needs (``log.tensorboard``, ``log.wandb``): import them, or say which key
needs what and how to get it. ``graft.validation.dependency_problems`` asks before anything is written;
the loggers import them through ``need`` so that the message is the same everywhere."""

from __future__ import annotations

import importlib
from types import ModuleType

from graft.config import ConfigError


def _message(key: str, extra: str, exc: BaseException, off: str = "false") -> str:
    return (f"config key '{key}': needs the optional package {extra!r}, which cannot be imported "
            f"({type(exc).__name__}: {exc}); install it with pip install 'graft[{extra}]' "
            f"(or pip install {extra}), or set {key}={off}")


def missing_package(key: str, module: str, extra: str, off: str = "false") -> str | None:
    """None if ``module`` imports, else the problem, naming ``key`` and the extra that installs it
    (``off``: the value of ``key`` that needs no package)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install raising anything at import
        return _message(key, extra, exc, off)
    return None


def need(key: str, module: str, extra: str) -> ModuleType:
    """``module``, imported; ConfigError naming ``key`` if it cannot be."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - as above
        raise ConfigError(_message(key, extra, exc)) from None
