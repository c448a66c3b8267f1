"""Built-in tasks and the registry that `task.name` looks up."""

from graft.tasks.arithmetic import ArithmeticTask
from graft.tasks.base import Example, Score, Task
from graft.tasks.countdown import CountdownTask
from graft.tasks.dataset import DatasetTask
from graft.tasks.files import JsonlTask

TASKS: dict[str, type] = {
    "arithmetic": ArithmeticTask, "countdown": CountdownTask, "dataset": DatasetTask, "jsonl": JsonlTask,
}


def make_task(name: str, **kwargs) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}")
    return TASKS[name](**kwargs)


__all__ = ["TASKS", "Example", "Score", "Task", "make_task"]
