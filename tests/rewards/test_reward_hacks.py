"""Reward hacks get 0, honest programs 1, nothing is left behind; the pieces that make it so.

The corpus is tests/rewards/hack_corpus.py (bench/reward_hacks.py runs it against the old
grader too). Expected rewards are by construction: a hack solves nothing and the tests are
chosen so that no constant passes any of them; an honest program solves its task.
"""

import json
import math

import pytest
from hack_corpus import HACKS, HONEST
from sandbox_leftovers import leftover_files, leftover_processes

from graft.rewards import _sandbox_protocol as protocol
from graft.rewards.asserts import split_tests
from graft.rewards.code import CodeGrader
from graft.tasks.base import Example

LIMITS = {"wall_s": 3.0, "cpu_s": 1.0, "memory_mb": 512, "disk_mb": 4, "nproc": 16, "output_kb": 256}


@pytest.fixture(scope="module")
def grader():
    return CodeGrader(**LIMITS)


@pytest.mark.parametrize("name,program,tests", HACKS, ids=[h[0] for h in HACKS])
def test_a_hack_gets_nothing(grader, name, program, tests):
    verdict = grader.grade(f"```python\n{program}\n```", Example("p", tests))
    assert verdict.reward == 0.0 and verdict.error is not None, verdict
    assert leftover_processes() == [] and leftover_files() == []


@pytest.mark.parametrize("name,program,tests", HONEST, ids=[h[0] for h in HONEST])
def test_an_honest_program_gets_everything(grader, name, program, tests):
    verdict = grader.grade(f"```python\n{program}\n```", Example("p", tests))
    assert verdict.reward == 1.0 and verdict.error is None, verdict


def test_hacks_fail_for_the_expected_reasons(grader):
    def error(program, tests):
        return grader.grade(program, Example("p", tests)).error

    by_name = {name: (program, tests) for name, program, tests in HACKS}
    assert error(*by_name["always-equal int subclass"]) == "wrong_answer"  # not plain data
    assert error(*by_name["os._exit(0) at import"]) == "runtime"
    assert error(*by_name["a BaseException subclass inside the call"]) == "runtime"
    assert error("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\ndef square(x):\n    while True:\n"
                 "        pass", by_name["always-equal object"][1]) == "timeout"  # the hard CPU limit is SIGKILL
    assert error(*by_name["a value too big or too deep to cross"]) in ("wrong_answer", "output_limit")


def test_the_program_never_holds_the_expected_values():
    """What reaches the program's process: the calls' sources and their inputs, never the comparison."""
    plan = split_tests("data = [3, 1, 2]\nexpected = [1, 2, 3]\nassert sort(data) == expected\n"
                       "assert abs(mean(data) - 2.0) < 1e-9, 'close'\nassert sorted(uniq([2, 2, 1])) == [1, 2]")
    assert plan["leaves"] == ["sort(_graft_0)", "mean(_graft_0)", "sorted(uniq([2, 2, 1]))"]
    assert [item["code"] for item in plan["items"] if item["kind"] == "test"] == [
        "__graft_program__(0, data) == expected", "abs(__graft_program__(1, data) - 2.0) < 1e-09",
        "__graft_program__(2) == [1, 2]"]


def test_a_partial_solution_gets_partial_credit_and_the_first_reason(grader):
    program = "def square(x):\n    if x < 0:\n        raise ValueError(x)\n    return x * x if x != 3 else 10"
    verdict = grader.grade(program, Example("p", "assert square(2) == 4\nassert square(3) == 9\nassert square(-4) == 16"))
    assert verdict.reward == pytest.approx(1 / 3) and verdict.error == "wrong_answer"
    assert verdict.info == {"passed": 1, "total": 3}


def test_a_test_that_passes_a_non_data_value_to_the_program_is_a_dataset_error(grader):
    with pytest.raises(ValueError, match=r"line 2: the call `f\(helper\)` needs a value the tests compute"):
        grader.grade("def f(g):\n    return 1", Example("p", "helper = object()\nassert f(helper) == 1"))


def test_the_tests_own_prints_and_names_do_not_reach_the_program(grader):
    program = "import sys\ndef f():\n    return 'expected' in globals() or 'hidden' in sys.modules"
    tests = "import json as hidden\nexpected = 1\nprint('from the tests')\nassert f() is False"
    assert grader.grade(program, Example("p", tests)).reward == 1.0


# ---------------------------------------------------------------- the plain-data codec


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2 ** 200, 1.5, -0.0, "", "é\n\udc80", b"\x00\xff", [], [1, [2, [3]]],
    (), (1, "a"), {1, 2}, frozenset({(1, 2)}), {}, {1: "a", "b": [2], (3, 4): None}, [{"k": (1,)}],
])
def test_plain_values_cross_unchanged(value):
    back = protocol.from_wire(json.dumps(protocol.to_wire(value)))
    assert back == value and type(back) is type(value)


def test_special_floats_cross():
    back = protocol.from_wire(json.dumps(protocol.to_wire([math.inf, -math.inf, math.nan])))
    assert back[:2] == [math.inf, -math.inf] and math.isnan(back[2])


class _Int(int):
    pass


class _Eq:
    def __eq__(self, other):
        return True


@pytest.mark.parametrize("value", [_Int(3), [1, _Int(3)], {"k": _Eq()}, _Eq(), iter([]), range(3), 3j,
                                   bytearray(b"x")])
def test_anything_else_is_refused(value):
    with pytest.raises(protocol.NotPlain):
        protocol.to_wire(value)


def test_nesting_is_bounded_on_both_sides():
    deep = [1]
    for i in range(protocol.MAX_DEPTH - 1):  # 64 containers, some of them dicts and tuples
        deep = {"k": deep} if i % 3 == 0 else (deep,) if i % 3 == 1 else [deep]
    assert protocol.from_wire(json.dumps(["ok", protocol.to_wire(deep)]))[1] == deep  # 64 levels cross
    with pytest.raises(protocol.NotPlain, match="deeper"):
        protocol.to_wire([deep])
    forged = "[" * (protocol.MAX_DEPTH + 2) + "]" * (protocol.MAX_DEPTH + 2)  # what a program may send instead
    with pytest.raises(ValueError, match="deeper"):
        protocol.from_wire(forged)


def test_counter_and_ordered_dicts_cross_as_dicts():
    from collections import Counter, OrderedDict, defaultdict
    for value in (Counter("aab"), OrderedDict(a=1), defaultdict(int, a=2)):
        back = protocol.from_wire(json.dumps(protocol.to_wire(value)))
        assert type(back) is dict and back == dict(value)


@pytest.mark.parametrize("text", ['{"tuple": [1], "set": []}', '{"list": []}', '{"dict": [[1]]}', '{"dict": [[[1], 2]]}',
                                  '{"set": [[1]]}', '{"bytes": "zz"}', '{"__eq__": true}', "[" * 100_000, "1" * 5000])
def test_the_judge_decodes_only_well_formed_plain_data(text):
    with pytest.raises((ValueError, TypeError, RecursionError)):
        protocol.from_wire(text)
