"""A user's own code named in a config by import path: ``package.module:Name``.

Two config keys take one (docs/tasks.md): ``task.name`` (a Task class) and ``task.reward`` (a reward
function for ``task.name: dataset``). ``graft.validation`` resolves and checks them when the config is
loaded, so a bad path is refused with the key named before anything is written.

Where the module is looked up: ``sys.path`` as it is, then the current directory, which is appended
to ``sys.path`` (once, for the rest of the process) the first time a plug-in is resolved. So
``graft train`` run from a project directory finds ``examples/my_task.py`` as ``examples.my_task``
(a folder needs no ``__init__.py``), and an installed package of the same name wins over a local
folder. Importing runs the module's top-level code, as any import does.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable

from graft.config import ConfigError

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
TASK_METHODS = ("train_examples", "test_examples", "score")
TASK_KWARGS = ("difficulty", "num_train", "num_test", "split_seed")  # + path when task.path is set


def is_import_path(value: str | None) -> bool:
    """Whether a config value names code by import path (it has a colon) rather than a registry name."""
    return isinstance(value, str) and ":" in value


def _search_current_directory() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)


def resolve(spec: str, key: str, wants: str) -> object:
    """The object ``package.module:Name`` names; ConfigError naming ``key`` if it cannot be had.
    ``wants`` says what the key needs, for the messages (e.g. "a Task class")."""
    def fail(reason: str) -> ConfigError:
        return ConfigError(f"config key '{key}': {reason}")

    module_name, sep, attr = spec.partition(":")
    if not sep:
        raise fail(f"{spec!r} is not an import path; expected package.module:Name ({wants})")
    if "/" in module_name or "\\" in module_name or module_name.endswith(".py"):
        dotted = module_name.removesuffix(".py").replace("/", ".").replace("\\", ".").strip(".")
        raise fail(f"{spec!r} names a file; give the module instead, e.g. {dotted}:{attr} "
                   "(run from the directory that holds it)")
    if not _DOTTED.fullmatch(module_name) or not _DOTTED.fullmatch(attr):
        raise fail(f"{spec!r} is not of the form package.module:Name ({wants})")
    _search_current_directory()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise fail(f"cannot import {module_name!r}: no module named {missing!r} on sys.path or in "
                       f"the current directory ({os.getcwd()})") from None
        raise fail(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything at import
        raise fail(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise fail(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _signature(obj) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins and C types have none; nothing to check then
        return None


def task_problems(spec: str, task_cfg) -> list[str]:
    """Problems of ``task.name`` = a plug-in Task class: importable, a class, the Task protocol's
    methods, and built the way ``graft.tasks.build`` builds it."""
    key = "task.name"
    try:
        cls = resolve(spec, key, "a Task class")
    except ConfigError as exc:
        return [str(exc)]
    if not inspect.isclass(cls):
        return [(f"config key '{key}': {spec} is {_kind(cls)}, not a class; task.name takes a Task class "
                 f"(methods {', '.join(TASK_METHODS)}; docs/tasks.md)")]
    missing = [m for m in TASK_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        return [(f"config key '{key}': {spec} lacks the Task method(s) {', '.join(missing)} (a Task has "
                 "train_examples(), test_examples() and score(example, completion); docs/tasks.md)")]
    if hasattr(cls, "from_config"):
        if not callable(cls.from_config):
            return [f"config key '{key}': {spec}.from_config is not callable"]
        return []
    sig = _signature(cls)
    kwargs = task_kwargs(task_cfg)
    if sig is not None:
        try:
            sig.bind(**kwargs)
        except TypeError as exc:
            return [(f"config key '{key}': {spec} cannot be built as {cls.__name__}"
                     f"({', '.join(f'{k}=...' for k in kwargs)}): {exc}; accept these keywords (or **kwargs), "
                     "or give the class a from_config(task_cfg) classmethod")]
    return []


def task_kwargs(task_cfg) -> dict:
    """The keyword arguments a task class without ``from_config`` is built with (as the registered ones)."""
    kwargs = {name: getattr(task_cfg, name) for name in TASK_KWARGS}
    if task_cfg.path is not None:
        kwargs["path"] = task_cfg.path
    return kwargs


def _kind(obj) -> str:
    if inspect.ismodule(obj):
        return "a module"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "a function"
    return f"a {type(obj).__name__} object"


# --------------------------------------------------------------------------- reward functions

GRAFT_SIGNATURE = "graft's (example, completion) -> float | Score"
TRL_SIGNATURE = "TRL's (prompts, completions, **columns) -> list[float]"
REWARD_SIGNATURES = f"{GRAFT_SIGNATURE}, or {TRL_SIGNATURE}"


def reward_style(fn: Callable) -> str:
    """``"graft"`` or ``"trl"``: which of the two reward signatures ``fn`` has (ValueError if neither).

    - a parameter named ``completions`` or ``prompts``: TRL's, called with keywords;
    - else one that takes two positional arguments ``(example, completion)``: graft's;
    - else one that takes ``**kwargs``: TRL's.
    """
    sig = _signature(fn)
    if sig is None:
        raise ValueError("its signature cannot be read; wrap it in a def with one of " + REWARD_SIGNATURES)
    params = sig.parameters
    if "completions" in params or "prompts" in params:
        positional_only = [n for n, p in params.items() if p.kind is p.POSITIONAL_ONLY and p.default is p.empty]
        if positional_only:
            raise ValueError(f"TRL-style reward functions are called with keywords, but {', '.join(positional_only)} "
                             "is positional-only")
        return "trl"
    try:
        sig.bind(None, None)
    except TypeError:
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return "trl"
        raise ValueError(f"its signature {sig} fits neither {GRAFT_SIGNATURE} nor {TRL_SIGNATURE}") from None
    return "graft"


def reward_problems(spec: str) -> list[str]:
    key = "task.reward"
    try:
        fn = resolve(spec, key, "a reward function")
    except ConfigError as exc:
        return [str(exc)]
    if inspect.isclass(fn) or inspect.ismodule(fn) or not callable(fn):
        what = "a class" if inspect.isclass(fn) else _kind(fn)
        return [f"config key '{key}': {spec} is {what}, not a function; task.reward takes {REWARD_SIGNATURES}"]
    if inspect.iscoroutinefunction(fn):
        return [f"config key '{key}': {spec} is an async function; task.reward takes a plain def"]
    try:
        reward_style(fn)
    except ValueError as exc:
        return [f"config key '{key}': {spec}: {exc}"]
    return []
