"""The configured task: ``task.name`` looked up in the registry (or, for ``package.module:Class``, the
user's Task class, ``graft.plugins``), built from the ``task`` section."""

from __future__ import annotations

import inspect

from graft.errors import GraftError
from graft.tasks.base import DemoSubset, Task

# task keys that change how the teacher writes demonstrations: the default of each, and the refusal for a
# task class whose constructor does not take it (the key is then passed only when it differs from its default)
TEACHER_KEYS = {"teacher_error": 0.0, "demo_style": "plain"}
_REFUSALS = {
    "teacher_error": ("config key 'task.teacher_error' is {value}, but task {task} has no modelled teacher slip "
                      "(arithmetic and countdown have; the quickstart config sets 0.6 for it): set it to 0, e.g. "
                      "--set task.teacher_error=0"),
    "demo_style": ("config key 'task.demo_style': task {task} has only its plain demonstrations, no {value} "
                   "teacher (arithmetic has); leave it at plain"),
}


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
    teacher = {key: getattr(task_cfg, key) for key, default in TEACHER_KEYS.items()
               if getattr(task_cfg, key) != default}  # only what the config changed reaches the class
    for key, value in teacher.items():
        if key not in inspect.signature(cls).parameters:
            raise GraftError(_REFUSALS[key].format(value=value, task=task_cfg.name))
    if hasattr(cls, "from_config"):  # a task that reads its own config keys
        task = cls.from_config(task_cfg)
    else:
        kwargs = {**task_kwargs(task_cfg), **teacher}
        try:
            task = cls(**kwargs)
        except (ValueError, TypeError) as exc:
            raise GraftError(f"task {task_cfg.name}: {exc}") from None
    if not isinstance(getattr(task, "name", None), str):
        raise GraftError(f"config key 'task.name': {task_cfg.name} built a task without a `name` string "
                         "attribute (the Task protocol: name, train_examples(), test_examples(), score())")
    return task
