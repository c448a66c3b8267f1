"""Optional packages a config key needs (``log.tensorboard``, ``log.wandb``): import them, or say which key
needs what and how to get it. ``graft.validation.dependency_problems`` asks before anything is written;
the loggers import them through ``need`` so that the message is the same everywhere."""

from __future__ import annotations

import importlib
from types import ModuleType

from graft.config import ConfigError


def _message(key: str, extra: str, exc: BaseException, install: str | None = None, off: str = "false") -> str:
    how = install or f"pip install 'graft[{extra}]' (or pip install {extra})"
    return (f"config key '{key}': needs the optional package {extra!r}, which cannot be imported "
            f"({type(exc).__name__}: {exc}); install it with {how}, or set {key}={off}")


def missing_package(key: str, module: str, extra: str, install: str | None = None, off: str = "false"
                    ) -> str | None:
    """None if ``module`` imports, else the problem, naming ``key``, how to install it (``install``,
    default the graft extra) and the value that turns it off (``off``)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install raising anything at import
        return _message(key, extra, exc, install, off)
    return None


def need(key: str, module: str, extra: str) -> ModuleType:
    """``module``, imported; ConfigError naming ``key`` if it cannot be."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - as above
        raise ConfigError(_message(key, extra, exc)) from None
