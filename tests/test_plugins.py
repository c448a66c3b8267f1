"""Plug-ins by import path (graft.plugins): task.name = package.module:Class, task.reward =
package.module:function; refused by load_config (naming the key) when the path is bad; both reward
signatures; what `correct` means with a reward function."""

import json
import math
import sys

import pytest

from graft.config import ConfigError, load_config
from graft.errors import GraftError
from graft.plugins import reward_style
from graft.rewards.function import RewardFunction
from graft.tasks import Example, Score
from graft.tasks.build import build_task
from graft.tasks.dataset import DatasetTask
from graft.train.loop import prepare

PLUGIN = '''
from graft.tasks import Example, Score

CALLS = []

class Tiny:
    name = "tiny"
    def __init__(self, difficulty=2, num_train=10, num_test=5, split_seed=0, path=None):
        self.path = path
        self.kw = dict(difficulty=difficulty, num_train=num_train, num_test=num_test, split_seed=split_seed)
    def train_examples(self):
        return [Example("1+1=", "2", "2", {"id": "a"}), Example("2+1=", "3", "3", {"id": "b"})]
    def test_examples(self):
        return [Example("2+2=", "4", None, {"id": "c"})]
    def score(self, example, completion):
        return Score(float(completion.strip() == example.answer), completion.strip() == example.answer)

class FromConfig(Tiny):
    @classmethod
    def from_config(cls, task_cfg):
        task = cls()
        task.cfg_name = task_cfg.name
        return task

class NoScore:
    def train_examples(self): return []
    def test_examples(self): return []

class Nameless(Tiny):
    name = None

class Picky(Tiny):
    def __init__(self, size):
        pass

def helper():
    pass

def graft_reward(example, completion):
    return 1.0 if completion.strip() == example.answer else 0.25

def score_reward(example, completion):
    return Score(0.5, True, {"mine": 0.5})

def trl_reward(prompts, completions, answer, **kwargs):
    CALLS.append({"n": len(completions), "columns": sorted(kwargs), "answer": list(answer)})
    return [1.0 if c.strip() == str(a) else 0.0 for c, a in zip(completions, answer)]

def trl_named_only(completions, answer):
    return [float(c.strip() == str(a)) for c, a in zip(completions, answer)]

def trl_needs_column(completions, solution, **kwargs):
    return [0.0] * len(completions)

def one_arg(example):
    return 0.0

def bad_none(example, completion):
    return None

def bad_nan(prompts, completions, **kwargs):
    return [float("nan")] * len(completions)

def bad_length(prompts, completions, **kwargs):
    return [0.0]

async def async_reward(example, completion):
    return 0.0

class Callable_:
    def __call__(self, example, completion):
        return 0.75

instance_reward = Callable_()
'''


@pytest.fixture
def plugdir(tmp_path, monkeypatch):
    """A project directory holding the module ``plugmod`` (and ``broken``), made the current directory;
    sys.path is restored afterwards (resolving a plug-in appends the current directory to it)."""
    (tmp_path / "plugmod.py").write_text(PLUGIN)
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "needs_dep.py").write_text("import not_a_real_dependency_xyz\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for name in ("plugmod", "broken", "needs_dep"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def _data(tmp_path, rows=None):
    rows = rows or [{"prompt": f"{i}+1=", "answer": str(i + 1), "solution": f"{i + 1}", "level": i % 3}
                    for i in range(8)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


BAD = [  # (overrides, the message's key, text it must contain)
    (["task.name=plugmod"], "task.name", "unknown name 'plugmod'"),
    (["task.name=plugmod:Missing"], "task.name", "module 'plugmod' has no attribute 'Missing'"),
    (["task.name=nowhere_xyz.mod:Task"], "task.name", "no module named 'nowhere_xyz'"),
    (["task.name=plugmod.py:Tiny"], "task.name", "names a file; give the module instead, e.g. plugmod:Tiny"),
    (["task.name=plugmod:helper"], "task.name", "is a function, not a class"),
    (["task.name=plugmod:NoScore"], "task.name", "lacks the Task method(s) score"),
    (["task.name=plugmod:Picky"], "task.name", "cannot be built as Picky(difficulty=..."),
    (["task.name=broken:Task"], "task.name", "importing 'broken' failed: RuntimeError: boom at import"),
    (["task.name=needs_dep:Task"], "task.name", "No module named 'not_a_real_dependency_xyz'"),
    (["task.name=plug mod:Tiny"], "task.name", "is not of the form package.module:Name"),
    (["task.name=dataset", "task.path=x.jsonl", "task.reward=plugmod"], "task.reward", "is not an import path"),
    (["task.name=dataset", "task.path=x.jsonl", "task.reward=plugmod:nope"], "task.reward",
     "module 'plugmod' has no attribute 'nope'"),
    (["task.name=dataset", "task.path=x.jsonl", "task.reward=plugmod:Tiny"], "task.reward", "is a class, not a function"),
    (["task.name=dataset", "task.path=x.jsonl", "task.reward=plugmod:CALLS"], "task.reward",
     "is a list object, not a function"),
    (["task.name=dataset", "task.path=x.jsonl", "task.reward=plugmod:one_arg"], "task.reward",
     "its signature (example) fits neither graft's (example, completion)"),
    (["task.name=dataset", "task.path=x.jsonl", "task.reward=plugmod:async_reward"], "task.reward", "async"),
    (["task.reward=plugmod:graft_reward"], "task.reward", "applies to task.name=dataset only"),
]


@pytest.mark.parametrize("overrides, key, text", BAD)
def test_bad_plugins_are_refused_at_load_naming_the_key(plugdir, overrides, key, text):
    with pytest.raises(ConfigError) as exc:
        load_config(None, overrides)
    message = str(exc.value)
    assert message.startswith(f"config key '{key}':"), message
    assert text in message, message


def test_the_current_directory_is_searched_after_sys_path(plugdir):
    assert str(plugdir) not in sys.path
    cfg = load_config(None, ["task.name=plugmod:Tiny", "task.difficulty=3", "task.num_test=7"])
    assert sys.path[-1] == str(plugdir)  # appended: installed packages win over local folders
    task = build_task(cfg.task)
    assert task.kw == {"difficulty": 3, "num_train": 10000, "num_test": 7, "split_seed": 0}
    assert task.path is None
    with_path = build_task(load_config(None, ["task.name=plugmod:Tiny", "task.path=some/file"]).task)
    assert with_path.path == "some/file"  # built with the same keywords as the registered tasks


def test_from_config_gets_the_task_section(plugdir):
    task = build_task(load_config(None, ["task.name=plugmod:FromConfig"]).task)
    assert task.cfg_name == "plugmod:FromConfig"


def test_a_task_without_a_name_is_refused_when_built(plugdir):
    with pytest.raises(GraftError, match="config key 'task.name': plugmod:Nameless built a task without a `name`"):
        build_task(load_config(None, ["task.name=plugmod:Nameless"]).task)


def test_prepare_refuses_like_load_config(plugdir):
    cfg = load_config(None, ["task.name=plugmod:Tiny"])
    cfg.task.name = "plugmod:helper"  # assignment is type-checked only; prepare runs the whole pass
    with pytest.raises(ConfigError, match="config key 'task.name': plugmod:helper is a function"):
        prepare(cfg)


def test_reward_signatures_are_told_apart():
    def graft_style(example, completion): ...
    def trl_full(prompts, completions, **kwargs): ...
    def trl_short(completions, **kwargs): ...
    def trl_named(completions, answer): ...
    def only_kwargs(**kwargs): ...
    def graft_defaults(example, completion, scale=1.0): ...
    def one(example): ...
    def positional_only(completions, /, **kw): ...

    class Call:
        def __call__(self, example, completion): ...

    assert [reward_style(f) for f in (graft_style, trl_full, trl_short, trl_named, only_kwargs, graft_defaults,
                                      Call(), lambda e, c: 0.0)] == \
        ["graft", "trl", "trl", "trl", "trl", "graft", "graft", "graft"]
    for bad in (one, positional_only):
        with pytest.raises(ValueError):
            reward_style(bad)


def test_trl_style_is_one_call_per_batch_with_the_columns(plugdir):
    path = _data(plugdir)
    task = DatasetTask(path=str(path), reward="plugmod:trl_reward", columns={"demonstration": "solution"})
    mod = sys.modules["plugmod"]
    mod.CALLS.clear()
    examples = task.train_examples()
    items = [(ex, ex.answer if i % 2 else "wrong") for i, ex in enumerate(examples)]
    scores = task.score_many(items)
    assert len(mod.CALLS) == 1 and mod.CALLS[0]["n"] == len(items)  # batched over score_many
    assert mod.CALLS[0]["columns"] == ["level", "solution"]  # every column but prompt (answer is named)
    assert mod.CALLS[0]["answer"] == [ex.answer for ex in examples]
    assert [s.reward for s in scores] == [float(i % 2) for i in range(len(items))]
    assert [s.correct for s in scores] == [bool(i % 2) for i in range(len(items))]
    assert scores[1].parts == {"reward": 1.0, "correct": 1.0}


def test_a_trl_function_without_kwargs_gets_only_what_it_names(plugdir):
    task = DatasetTask(path=str(_data(plugdir)), reward="plugmod:trl_named_only")
    ex = task.train_examples()[0]
    assert [s.reward for s in task.score_many([(ex, ex.answer), (ex, "no")])] == [1.0, 0.0]


def test_a_trl_function_naming_a_missing_column_is_refused(plugdir):
    with pytest.raises(GraftError, match="config key 'task.reward': plugmod:trl_needs_column takes 'solution', "
                                         "not a column of .*rows.jsonl"):
        DatasetTask(path=str(_data(plugdir, [{"prompt": "a", "answer": "b"}, {"prompt": "c", "answer": "d"}])),
                    reward="plugmod:trl_needs_column")


def test_correct_is_the_threshold_the_score_or_the_grader(plugdir):
    path = str(_data(plugdir))
    graft_task = DatasetTask(path=path, reward="plugmod:graft_reward")  # 1.0 right, 0.25 otherwise
    ex = graft_task.train_examples()[0]
    right, wrong = graft_task.score(ex, ex.answer), graft_task.score(ex, "nope")
    assert (right.reward, right.correct, wrong.reward, wrong.correct) == (1.0, True, 0.25, False)
    low = DatasetTask(path=path, reward="plugmod:graft_reward", reward_correct_at=0.2)
    assert low.score(ex, "nope").correct  # 0.25 >= 0.2
    scored = DatasetTask(path=path, reward="plugmod:score_reward")  # a Score decides itself
    assert scored.score(ex, "nope") == Score(0.5, True, {"mine": 0.5, "correct": 1.0})
    graded = DatasetTask(path=path, reward="plugmod:graft_reward", reward_correct_at=None, grader="exact")
    s = graded.score(ex, "nope")  # the grader decides correct; its reward is shown, not added
    assert (s.reward, s.correct, s.parts) == (0.25, False, {"reward": 0.25, "exact": 0.0, "correct": 0.0})
    fmt = DatasetTask(path=path, reward="plugmod:instance_reward", format="boxed", format_weight=0.5)
    assert fmt.score(ex, r"\boxed{x}").reward == pytest.approx(0.75 + 0.5)


def test_without_a_grader_the_answer_column_is_optional(plugdir):
    rows = [{"prompt": "say hi", "other": "x"}, {"prompt": "say bye", "other": "y"}]
    task = DatasetTask(path=str(_data(plugdir, rows)), reward="plugmod:graft_reward")
    assert {ex.answer for ex in task.train_examples() + task.test_examples()} == {""}
    with pytest.raises(GraftError, match="field 'answer' is missing"):  # the grader needs it
        DatasetTask(path=str(_data(plugdir, rows)), reward="plugmod:graft_reward", reward_correct_at=None)


@pytest.mark.parametrize("name, message", [
    ("bad_none", "returned NoneType (None) for completion 0 of the batch; expected a float or a graft.tasks.Score"),
    ("bad_nan", "returned nan for completion 0 of the batch; rewards must be finite"),
    ("bad_length", "returned 1 rewards for 2 completions"),
])
def test_bad_return_values_stop_with_the_function_named(plugdir, name, message):
    fn = RewardFunction.load(f"plugmod:{name}")
    ex = Example("p", "a")
    with pytest.raises(GraftError) as exc:
        fn.values([(ex, "x"), (ex, "y")])
    assert str(exc.value) == f"task.reward: plugmod:{name} {message}"


def test_the_shipped_example_scores_its_demonstrations():
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    try:
        from examples.my_task import ReverseTask, boxed_answer_reward, last_line_reward
    finally:
        sys.path.pop(0)
    task = ReverseTask(num_test=20)
    assert not {e.prompt for e in task.train_examples()} & {e.prompt for e in task.test_examples()}
    for ex in task.train_examples()[:20]:
        assert task.score(ex, ex.demonstration) == Score(1.0, True, {"exact": 1.0, "in_place": 1.0})
        assert task.score(ex, ex.answer[::-1] + "x").reward <= 0.5
    ex = Example("q", "42")
    assert last_line_reward(ex, "work\n42") == 1.0 and last_line_reward(ex, "42 then\nmore") == 0.25
    assert boxed_answer_reward(["q", "q"], [r"so \boxed{42}", r"\boxed{41}"], answer=["42", 42]) == [1.0, 0.0]
    assert math.isclose(task.score(Example("reverse abc=", "cba"), "cxa").reward, 0.5 * 2 / 3)


def test_the_shipped_reward_config_loads_and_scores(monkeypatch):
    """examples/my_reward.yaml, from the repository root as docs/tasks.md says: the TRL-style function
    scores every shipped worked solution as correct, and gets the rows' other columns."""
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(root))])
    cfg = load_config(root / "examples" / "my_reward.yaml")
    task = build_task(cfg.task)
    examples = task.train_examples()
    assert set(examples[0].meta["columns"]) == {"question", "answer", "solution", "id"}
    scores = task.score_many([(ex, ex.demonstration) for ex in examples])
    assert all(s.correct and s.reward == pytest.approx(1.1) for s in scores)  # 1.0 + format_weight x boxed
    assert not task.score(examples[0], "no idea").correct
