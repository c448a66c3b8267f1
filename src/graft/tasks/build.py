"""The configured task: ``task.name`` looked up in the registry, built from the ``task`` section."""

from __future__ import annotations

from graft.errors import GraftError
from graft.tasks.base import DemoSubset, Task


def build_task(task_cfg) -> Task:
    task = _make_task(task_cfg)
    if task_cfg.demo_fraction < 1.0:  # demonstrations on a seeded share of the training prompts only
        task = DemoSubset(task, task_cfg.demo_fraction, task_cfg.split_seed)
    return task


def _make_task(task_cfg) -> Task:
    from graft.tasks import TASKS, make_task

    if hasattr(TASKS.get(task_cfg.name), "from_config"):  # a task that reads its own config keys
        return TASKS[task_cfg.name].from_config(task_cfg)
    kwargs = {"difficulty": task_cfg.difficulty, "num_train": task_cfg.num_train,
              "num_test": task_cfg.num_test, "split_seed": task_cfg.split_seed}
    if task_cfg.path is not None:
        kwargs["path"] = task_cfg.path
    try:
        return make_task(task_cfg.name, **kwargs)
    except (ValueError, TypeError) as exc:
        raise GraftError(f"task {task_cfg.name}: {exc}") from None
