"""The configured task: ``task.name`` looked up in the registry (or, for ``package.module:Class``, the
user's Task class, ``graft.plugins``), built from the ``task`` section."""

from __future__ import annotations

import inspect

from graft.errors import GraftError
from graft.tasks.base import DemoSubset, Task


def build_task(task_cfg) -> Task:
    task = _make_task(task_cfg)
    if task_cfg.demo_fraction < 1.0:  # demonstrations on a seeded share of the training prompts only
        task = DemoSubset(task, task_cfg.demo_fraction, task_cfg.split_seed)
    return task


def task_class(name: str) -> type:
    """The class ``task.name`` names: a registered one, or a plug-in by import path."""
    from graft.plugins import is_import_path, resolve
    from graft.tasks import TASKS

    if is_import_path(name):
        return resolve(name, "task.name", "a Task class")
    if name not in TASKS:
        raise GraftError(f"config key 'task.name': unknown name {name!r}; choose one of {', '.join(sorted(TASKS))}")
    return TASKS[name]


def _make_task(task_cfg) -> Task:
    from graft.plugins import task_kwargs

    cls = task_class(task_cfg.name)
    if task_cfg.teacher_error and "teacher_error" not in inspect.signature(cls).parameters:
        raise GraftError(f"config key 'task.teacher_error' is {task_cfg.teacher_error}, but task {task_cfg.name} "
                         "has no modelled teacher slip (arithmetic has; the quickstart config sets 0.6 for it): "
                         "set it to 0, e.g. --set task.teacher_error=0")
    if task_cfg.demo_style != "plain" and "demo_style" not in inspect.signature(cls).parameters:
        raise GraftError(f"config key 'task.demo_style': task {task_cfg.name} has only its plain "
                         f"demonstrations, no {task_cfg.demo_style} teacher (arithmetic has); leave it at plain")
    if hasattr(cls, "from_config"):  # a task that reads its own config keys
        task = cls.from_config(task_cfg)
    else:
        kwargs = task_kwargs(task_cfg)
        if task_cfg.teacher_error:
            kwargs["teacher_error"] = task_cfg.teacher_error
        if task_cfg.demo_style != "plain":
            kwargs["demo_style"] = task_cfg.demo_style
        try:
            task = cls(**kwargs)
        except (ValueError, TypeError) as exc:
            raise GraftError(f"task {task_cfg.name}: {exc}") from None
    if not isinstance(getattr(task, "name", None), str):
        raise GraftError(f"config key 'task.name': {task_cfg.name} built a task without a `name` string "
                         "attribute (the Task protocol: name, train_examples(), test_examples(), score())")
    return task
