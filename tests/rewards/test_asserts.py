"""Splitting assert tests into program calls and the judge's part (expectations written by hand)."""

import pytest

from graft.rewards.asserts import split_tests
from graft.rewards.code import CodeGrader
from graft.tasks.base import Example


def split(source):
    plan = split_tests(source)
    return [item["code"] for item in plan["items"]], plan["leaves"]


@pytest.mark.parametrize("source,codes,leaves", [
    ("assert f(1) == 1", ["__graft_program__(0) == 1"], ["f(1)"]),
    ("assert f(1) == 1, 'message'", ["__graft_program__(0) == 1"], ["f(1)"]),  # the message is never evaluated
    ("assert f(x=[1, (2,)])", ["__graft_program__(0)"], ["f(x=[1, (2,)])"]),
    ("assert 3 in f(6)", ["3 in __graft_program__(0)"], ["f(6)"]),
    ("assert not f(3)", ["not __graft_program__(0)"], ["f(3)"]),
    ("assert abs(f(0.5) - 0.25) < 1e-9", ["abs(__graft_program__(0) - 0.25) < 1e-09"], ["f(0.5)"]),
    ("assert sorted(f([2, 1])) == [1, 2]", ["__graft_program__(0) == [1, 2]"], ["sorted(f([2, 1]))"]),
    ("assert sorted(f(1), reverse=True) == [1]", ["sorted(__graft_program__(0), reverse=True) == [1]"], ["f(1)"]),
    ("assert Solution().run(2)[0] == 4", ["__graft_program__(0) == 4"], ["Solution().run(2)[0]"]),
    ("assert N == 5", ["__graft_program__(0) == 5"], ["N"]),
    ("assert g(f(1)) == 2", ["__graft_program__(0) == 2"], ["g(f(1))"]),
    ("assert f(1) == g(1)", ["__graft_program__(0) == __graft_program__(1)"], ["f(1)", "g(1)"]),
    # the tests' own names (setup, comprehension and lambda variables) are holes the judge fills
    ("xs = [3, 1]\nassert f(xs) == [1, 3]", ["xs = [3, 1]", "__graft_program__(0, xs) == [1, 3]"], ["f(_graft_0)"]),
    ("assert all(f(i) == i * i for i in range(3))",
     ["all((__graft_program__(0, i) == i * i for i in range(3)))"], ["f(_graft_0)"]),
    ("assert (lambda v: f(v))(2) == 4", ["(lambda v: __graft_program__(0, v))(2) == 4"], ["f(_graft_0)"]),
    # names bound inside the call stay there, with the call
    ("n = 1\nassert f([y + n for y in range(3)]) == 6",
     ["n = 1", "__graft_program__(0, n) == 6"], ["f([y + _graft_0 for y in range(3)])"]),
    ("import math\nassert math.isclose(f(2), 4)", ["import math", "math.isclose(__graft_program__(0), 4)"], ["f(2)"]),
    ("def check(n):\n    return f(n) == n * n\nassert check(3)",
     ["def check(n):\n    return __graft_program__(0, n) == n * n", "check(3)"], ["f(_graft_0)"]),
    ("r = f(5)\nassert r == 25", ["r = __graft_program__(0)", "r == 25"], ["f(5)"]),
    ("assert (r := f(1)) == 1 and r > 0", ["(r := __graft_program__(0)) == 1 and r > 0"], ["f(1)"]),
    ("args = (1, 2)\nassert f(*args, k=args)", ["args = (1, 2)", "__graft_program__(0, args, args)"],
     ["f(*_graft_0, k=_graft_1)"]),
    ("class T:\n    v = 2\n    w = f(v)\nassert T.w == 4",
     ["class T:\n    v = 2\n    w = __graft_program__(0, v)", "T.w == 4"], ["f(_graft_0)"]),
])
def test_split(source, codes, leaves):
    assert split(source) == (codes, leaves)


@pytest.mark.parametrize("source,message", [
    ("assert max([1, 2]) == 2", "uses nothing the program defines"),  # `max` is the builtin, never the program's
    ("x = 2\nassert x == 2", "uses nothing the program defines"),
    ("from math import *\nassert f(1)", r"import \*"),
    ("Config.flag = 1\nassert f()", "assign to or delete the program's `Config.flag`"),
    ("assert f((y := 1))", "assignment expression inside a call"),
    ("assert __graft_program__(0)", "reserved"),
    ("import math", "no assert statement"),
    ("assert f(", "not valid Python"),
])
def test_tests_that_cannot_be_split_are_refused_with_their_line(source, message):
    with pytest.raises(ValueError, match=message):
        split_tests(source)


@pytest.fixture(scope="module")
def grader():
    return CodeGrader(wall_s=3.0, cpu_s=1.0, memory_mb=256)


def test_only_the_calls_the_judge_makes_run(grader):
    """Short-circuits and conditionals are the judge's: a call not needed is not made."""
    program = "def f(x):\n    if x == 0:\n        raise ZeroDivisionError\n    return x"
    tests = "assert f(1) == 1 or f(0) == 0\nassert f(0) if False else f(2) == 2\nassert f(0) == 0"
    verdict = grader.grade(program, Example("p", tests))
    assert verdict.info == {"passed": 2, "total": 3} and verdict.error == "runtime"


def test_the_programs_exceptions_reach_test_code_as_their_builtin_type(grader):
    program = "def f(x):\n    raise {exc}('no')"
    tests = ("def kind(x):\n    try:\n        f(x)\n    except KeyError:\n        return 'key'\n"
             "    except Exception:\n        return 'other'\nassert kind(1) == 'key'")
    assert grader.grade(program.format(exc="KeyError"), Example("p", tests)).reward == 1.0
    assert grader.grade(program.format(exc="ValueError"), Example("p", tests)).reward == 0.0
    custom = "class KeyError(Exception):\n    pass\ndef f(x):\n    raise KeyError('fake')"
    assert grader.grade(custom, Example("p", tests)).reward == 0.0  # a look-alike is not the builtin


def test_a_failing_setup_step_fails_only_the_tests_that_need_it(grader):
    tests = "import no_such_module_here\nassert f(1) == 1\nassert no_such_module_here.x(f(1))"
    verdict = grader.grade("def f(x):\n    return x", Example("p", tests))
    assert verdict.info == {"passed": 1, "total": 2} and verdict.error == "runtime"


def test_a_function_of_the_program_can_be_handed_to_test_code(grader):
    tests = "def twice(g, v):\n    return g(g(v))\nassert twice(inc, 1) == 3\nassert list(map(inc, [1, 2])) == [2, 3]"
    assert grader.grade("def inc(x):\n    return x + 1", Example("p", tests)).reward == 1.0
    # what it returns must still be plain data, and the proxy equals nothing but itself
    hack = "class Y:\n    __eq__ = lambda s, o: True\n    __call__ = lambda s, *a: Y()\ninc = Y()"
    assert grader.grade(hack, Example("p", tests)).reward == 0.0
    assert grader.grade(hack, Example("p", "assert inc == 3")).reward == 0.0


def test_the_tests_output_is_not_the_programs(grader):
    """The judge's stdout and stderr go nowhere: a chatty test cannot hit the program's output caps."""
    tests = "import sys\nsys.stderr.write('w' * 200_000)\nprint('p' * 2_000_000)\nassert f() == 1"
    verdict = grader.grade("def f():\n    return 1", Example("p", tests))
    assert verdict.reward == 1.0 and verdict.error is None


def test_a_program_cannot_try_one_answer_after_another_within_an_assert(grader):
    """Repeated identical calls in one assert get the first answer: no oracle for `any(... for c in C)`."""
    adaptive = "n = []\ndef f(x):\n    n.append(1)\n    return len(n)"  # answers 1, 2, 3, ... on each call
    assert grader.grade(adaptive, Example("p", "assert any(f(0) == c for c in (7, 2))")).reward == 0.0
    # separate statements are separate calls, so a stateful program is still graded as written
    assert grader.grade(adaptive, Example("p", "assert f(0) == 1\nassert f(0) == 2")).reward == 1.0
