"""A task and two reward functions of your own, named in a config by import path (docs/tasks.md).

    graft train configs/quickstart.yaml --set task.name=examples.my_task:ReverseTask --set task.teacher_error=0
    graft train examples/my_reward.yaml          # task.name: dataset + task.reward: examples.my_task:...

Run from the directory that holds ``examples/`` (graft looks plug-ins up on sys.path, then in the
current directory). ``tests/test_plugins_cli.py`` trains both from the command line.
"""

from __future__ import annotations

import itertools
import random

from graft.tasks import Example, Score


class ReverseTask:
    """Write a short word backwards: prompt ``reverse abc=``, answer ``cba``.

    graft builds it with the config's ``task`` keys as keyword arguments (difficulty, num_train,
    num_test, split_seed; plus path when task.path is set), as it builds its own tasks; a class with
    a ``from_config(task_cfg)`` classmethod gets the whole ``task`` section instead.
    """

    name = "reverse"

    def __init__(self, difficulty: int = 2, num_train: int = 10000, num_test: int = 500, split_seed: int = 0):
        length = difficulty + 1  # difficulty 2: three-letter words over a-h, 512 of them
        words = ["".join(w) for w in itertools.product("abcdefgh", repeat=length)]
        random.Random(split_seed).shuffle(words)  # seeded split, independent of the run's seed
        n_test = min(num_test, len(words) // 2)
        self._test = [self._example(w) for w in words[:n_test]]  # disjoint from training by prompt
        self._train = [self._example(w) for w in words[n_test:][:num_train]]

    @staticmethod
    def _example(word: str) -> Example:
        # demonstration: the exact completion SFT trains on; it must score as correct below
        return Example(prompt=f"reverse {word}=", answer=word[::-1], demonstration=word[::-1],
                       meta={"id": word, "difficulty": len(word)})

    def train_examples(self) -> list[Example]:
        return self._train

    def test_examples(self) -> list[Example]:
        return self._test

    def score(self, example: Example, completion: str) -> Score:
        """Partial credit per letter in place; correct only when the whole word is. Never raises."""
        got = completion.strip().split("\n")[0] if completion.strip() else ""
        want = example.answer
        in_place = sum(a == b for a, b in zip(got, want)) / len(want)
        exact = got == want
        reward = 1.0 if exact else 0.5 * in_place  # a wrong length earns at most half
        return Score(reward=reward, correct=exact, parts={"exact": float(exact), "in_place": in_place})


# ---- reward functions for `task.name: dataset` (`task.reward: examples.my_task:<name>`) ------------

def last_line_reward(example: Example, completion: str) -> float:
    """graft's signature: one (Example, completion) at a time, a float (or a graft Score) back.

    1.0 when the completion's last non-empty line is the answer, 0.25 when the answer appears
    somewhere else in it, else 0. With the default task.reward_correct_at=1.0 only the first counts
    as correct.
    """
    lines = [ln.strip() for ln in completion.splitlines() if ln.strip()]
    if lines and lines[-1] == example.answer.strip():
        return 1.0
    return 0.25 if example.answer.strip() and example.answer.strip() in completion else 0.0


def boxed_answer_reward(prompts: list[str], completions: list[str], answer: list, **kwargs) -> list[float]:
    """TRL's signature: the whole batch at once, the dataset's other columns as keyword lists
    (here ``answer``; the rest arrive in ``kwargs``), one float per completion back.

    1.0 when the last ``\\boxed{...}`` of the completion holds exactly the answer, else 0.
    """
    return [1.0 if last_boxed(c) == str(want).strip() else 0.0 for c, want in zip(completions, answer)]


def last_boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}``, nested braces included (``\\boxed{\\frac{5}{8}}``)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for i in range(begin - 1, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i].strip()
    return None  # unclosed
