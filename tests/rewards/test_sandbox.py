"""Hostile code in the sandbox: reward 0 within its limits, no process or file left, caller unharmed."""

import json
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest
from sandbox_leftovers import leftover_files, leftover_processes

from graft.rewards.code import CodeGrader, extract_code, parse_tests, same_output
from graft.rewards.sandbox import UID_BASE, UID_SLOTS, Limits, run_program
from graft.tasks.base import Example

REPO = Path(__file__).resolve().parents[2]
LIMITS = {"wall_s": 2.0, "cpu_s": 1.0, "memory_mb": 256, "disk_mb": 4, "nproc": 16, "output_kb": 64}
TEST = "assert solve() == 1"


@pytest.fixture(scope="module")
def grader():
    return CodeGrader(**LIMITS)


def _sandbox_processes() -> list[int]:
    """Processes still running from this test process's sandbox runs (never another suite's)."""
    return leftover_processes()


def _sandbox_files() -> list[str]:
    """Files this test process's sandbox runs left in the shared temporary directories."""
    return leftover_files()


@pytest.fixture
def clean_after(grader):
    """Asserts, after the test body, that nothing of the sandbox is left and grading still works."""
    yield
    assert _sandbox_processes() == []
    assert _sandbox_files() == []
    ok = grader.grade("def solve():\n    return 1\n", Example("p", TEST))
    assert ok.reward == 1.0 and ok.error is None


def _hostile(grader, code, reason=None, max_seconds=LIMITS["wall_s"] + 2.0, tests=TEST):
    start = time.monotonic()
    verdict = grader.grade(f"```python\n{code}\n```", Example("p", tests))
    elapsed = time.monotonic() - start
    assert verdict.reward == 0.0, verdict
    assert elapsed < max_seconds, elapsed
    if reason is not None:
        assert verdict.error == reason, verdict
    return verdict


def test_infinite_loop(grader, clean_after):
    _hostile(grader, "def solve():\n    while True:\n        pass", "timeout")


def test_sleeping_forever_hits_the_wall_clock(grader, clean_after):
    _hostile(grader, "import time\ndef solve():\n    time.sleep(1000)", "timeout")


def test_fork_bomb(grader, clean_after):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    _hostile(grader, code, "timeout")


def test_fork_count_is_bounded():
    code = ("import os, time\nn = 0\ntry:\n    while n < 200:\n        if os.fork() == 0:\n"
            "            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\nprint(n)")
    run = run_program({"mode": "stdio", "code": code, "input": ""}, Limits(**LIMITS))
    assert run.events[-1] == "exit ok"
    assert 0 < int(run.stdout) < LIMITS["nproc"]
    assert _sandbox_processes() == []


def test_memory_bomb(grader, clean_after):
    _hostile(grader, "def solve():\n    x = []\n    while True:\n        x.append(bytearray(10**7))", "memory")
    _hostile(grader, "blob = bytearray(10**10)\ndef solve():\n    return 1", "memory")


def test_disk_filling(grader, clean_after):
    one_file = "def solve():\n    with open('big', 'wb') as f:\n        while True:\n            f.write(b'0' * 10**6)"
    _hostile(grader, one_file, "runtime")  # EFBIG at the file-size cap
    many_files = ("def solve():\n    for i in range(10**6):\n        with open(f'f{i}', 'wb') as f:\n"
                  "            f.write(b'0' * 10**6)")
    _hostile(grader, many_files, "runtime")  # ENOSPC when the private tmpfs is full


def test_writes_outside_the_working_directory(grader, clean_after):
    targets = ["/tmp/graft_hostile_x", "/var/tmp/graft_hostile_x", "/dev/shm/graft_hostile_x",
               str(REPO / "graft_hostile_x"), str(REPO / "src" / "graft" / "__init__.py")]
    code = "import os\ndef solve():\n    done = 0\n"
    for t in targets:
        code += f"    try:\n        open({t!r}, 'a').write('pwned')\n        done += 1\n    except OSError:\n        pass\n"
    code += "    return -done  # never 1"
    before = (REPO / "src" / "graft" / "__init__.py").read_text()
    _hostile(grader, code, "wrong_answer")
    for t in targets[:4]:
        assert not os.path.exists(t), t
    assert (REPO / "src" / "graft" / "__init__.py").read_text() == before


def test_network_access(grader, clean_after):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    try:
        code = (f"import socket\ndef solve():\n    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                "    s.sendall(b'leak')\n    return 1")
        _hostile(grader, code, "runtime")
        udp = (f"import socket\ndef solve():\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
               f"    s.sendto(b'leak', ('127.0.0.1', {port}))\n    return 1")
        _hostile(grader, udp, "runtime")
        with pytest.raises(socket.timeout):
            server.accept()  # nobody ever connected
    finally:
        server.close()


@pytest.mark.parametrize("attack", [
    "os.kill(os.getppid(), signal.SIGKILL)",
    "os.kill(TRAINER, signal.SIGKILL)",
    "os.killpg(os.getpgid(TRAINER), signal.SIGKILL)",
    "os.kill(-1, signal.SIGKILL)",
])
def test_killing_the_parent(grader, clean_after, attack):
    code = f"import os, signal\nTRAINER = {os.getpid()}\ndef solve():\n    {attack}\n    return 1"
    _hostile(grader, code)
    assert os.getpid() > 0  # still here


def test_detached_child_is_killed(grader, clean_after):
    scratch = Path(tempfile.mkdtemp(dir=REPO, prefix=".scratch-"))
    scratch.chmod(0o777)  # a place the daemon could write to, if it survived
    try:
        flag = scratch / "escaped"
        code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                f"        time.sleep(0.5)\n        open({str(flag)!r}, 'w').write('alive')\n        os._exit(0)\n"
                "    os._exit(0)\ndef solve():\n    return 0")
        _hostile(grader, code, "wrong_answer")
        time.sleep(1.0)
        assert not flag.exists()
        assert _sandbox_processes() == []
    finally:
        shutil.rmtree(scratch)


def test_environment_is_not_visible(grader, clean_after, monkeypatch):
    monkeypatch.setenv("GRAFT_TEST_SECRET", "hunter2")
    code = "import os\ndef solve():\n    return 1 if os.environ.get('GRAFT_TEST_SECRET') == 'hunter2' else 0"
    _hostile(grader, code, "wrong_answer")
    proc_scan = ("import os\ndef solve():\n    for pid in os.listdir('/proc'):\n        try:\n"
                 "            if b'hunter2' in open(f'/proc/{pid}/environ', 'rb').read():\n                return 1\n"
                 "        except OSError:\n            pass\n"
                 f"    return 1 if b'hunter2' in open('/proc/{os.getpid()}/environ', 'rb').read() else 0")
    _hostile(grader, proc_scan)


def test_huge_output(grader, clean_after):
    _hostile(grader, "while True:\n    print('x' * 1000)", "output_limit")
    _hostile(grader, "import sys\nwhile True:\n    sys.stderr.write('y' * 1000)", "output_limit")


def test_faking_results_by_exiting_early(grader, clean_after):
    _hostile(grader, "import sys\nsys.exit(0)", "runtime")
    _hostile(grader, "import os\nos._exit(0)", "runtime")
    _hostile(grader, "import os\nos._exit(70)", "runtime")  # the harness's own setup-failure code
    _hostile(grader, "print('\\nOK test 0 ok')\ndef solve():\n    return 2", "wrong_answer")


# ---------------------------------------------------------------- ordinary grading


def test_partial_credit_and_all_or_nothing():
    code = "def add(a, b):\n    return a + b if a < 10 else 0"
    tests = "import math\nassert add(1, 2) == 3\nassert add(2, 2) == 4\nassert add(20, 1) == 21\nassert add(0, 0) == 0"
    partial = CodeGrader(**LIMITS).grade(code, Example("p", tests))
    assert partial.reward == 0.75 and partial.error == "wrong_answer" and partial.info == {"passed": 3, "total": 4}
    strict = CodeGrader(partial=False, **LIMITS).grade(code, Example("p", tests))
    assert strict.reward == 0.0


def test_stdio_tests_and_reasons():
    tests = '[{"input": "2 3\\n", "output": "5\\n"}, {"input": "10 -4", "output": "6"}]'
    g = CodeGrader(**LIMITS)
    good = g.grade("a, b = map(int, input().split())\nprint(a + b)   ", Example("p", tests))
    assert good.reward == 1.0 and good.error is None
    assert g.grade("print(5)", Example("p", tests)).reward == 0.5
    assert g.grade("print(int(input()) +)", Example("p", tests)).error == "syntax"
    assert g.grade("raise ValueError('no')", Example("p", tests)).error == "runtime"


def test_syntax_error_in_assert_mode():
    verdict = CodeGrader(**LIMITS).grade("def solve(:\n    return 1", Example("p", TEST))
    assert verdict.reward == 0.0 and verdict.error == "syntax"


def test_parallel_grading():
    g = CodeGrader(workers=2, **LIMITS)
    items = [(f"def solve():\n    return {i % 2}", Example("p", TEST)) for i in range(6)]
    assert [v.reward for v in g.grade_many(items)] == [0.0, 1.0] * 3


def test_parse_tests_and_helpers():
    mode, plan = parse_tests("import math\nassert add(1, 2) == 3")
    assert mode == "assert" and plan == {
        "items": [{"kind": "setup", "code": "import math", "line": 1},
                  {"kind": "test", "code": "__graft_program__(0) == 3", "line": 2}],
        "leaves": ["add(1, 2)"], "shown": ["add(1, 2)"]}
    assert parse_tests(["assert f() == 1", "assert f() > 0"])[1]["leaves"] == ["f()", "f()"]
    assert parse_tests([{"input": "1", "output": "2"}]) == ("stdio", [("1", "2")])
    for bad in ("assert (", "x = 1", [], [{"input": 1}], 5, "x = 2\nassert x == 2", ["assert f(", "assert f()"]):
        with pytest.raises(ValueError, match="tests"):
            parse_tests(bad)
    assert extract_code("text\n```python\nx = 1\n```\nmore\n```\ny = 2\n```") == "y = 2\n"
    assert extract_code("print(1)") == "print(1)"
    assert same_output("1 \n2\n\n", "1\n2") and not same_output("1\n2", "1\n3")


def test_sandbox_reports_its_isolation():
    run = run_program({"mode": "stdio", "code": "import os\nprint(os.getpid(), os.getuid())", "input": ""},
                      Limits(**LIMITS))
    pid, uid = map(int, run.stdout.split())
    if os.geteuid() == 0:
        assert run.info["namespaces"].startswith("mount,net,pid")
        assert pid == 2 and UID_BASE <= uid < UID_BASE + UID_SLOTS  # runner is pid 2 under its own init
        assert run.info["judge_uid"] == uid + UID_SLOTS  # the judge: another uid, outside the namespace
    assert "GRAFT_SANDBOX" not in os.environ and signal.SIGKILL  # the marker is the child's only


def test_programs_can_import_the_interpreters_libraries():
    code = "import pickle, ast, numpy\nprint(int(numpy.arange(4).sum()))"
    run = run_program({"mode": "stdio", "code": code, "input": ""}, Limits(**LIMITS))
    assert run.events == ["exit ok"] and run.stdout == "6\n", run.stderr[-300:]


NON_ROOT = '''
import importlib.util, json, os, sys, time
spec = importlib.util.spec_from_file_location("sandbox", sys.argv[1])
sandbox = importlib.util.module_from_spec(spec)
sys.modules["sandbox"] = sandbox
spec.loader.exec_module(sandbox)
limits = sandbox.Limits(wall_s=2.5, cpu_s=1.0, memory_mb=256, disk_mb=4, nproc=64)
out = {"owner": sandbox.OWNER}
for name, code in {
    "who": "import os; print(os.getuid(), os.getpid())",
    "tmp": "open('/tmp/graft_nonroot_x', 'w').write('x'); print('wrote')",
    "net": "import socket; socket.create_connection(('127.0.0.1', int(sys_port)), timeout=1)",
    "loop": "while True: pass",
    "daemon": "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(30)\\nprint('forked')",
}.items():
    code = code.replace("sys_port", sys.argv[2])
    run = sandbox.run_program({"mode": "stdio", "code": code, "input": ""}, limits)
    out[name] = {"events": run.events, "stdout": run.stdout, "info": run.info, "stopped": run.stopped}
for name, code in {"right": "def solve(x):\\n    return x * x",
                   "always_equal": "class A:\\n    __eq__ = lambda s, o: True\\ndef solve(x):\\n    return A()"}.items():
    run = sandbox.run_program({"mode": "assert", "code": code, "tests": json.loads(sys.argv[3])}, limits)
    out[name] = {"events": run.events, "info": run.info}
print(json.dumps(out))
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process as another user")
def test_fallback_for_a_non_root_trainer():
    """The same module run by an unprivileged user: user namespace + no capabilities instead of a uid.

    That user may not be able to enter the clone (a 0700 home, a ``mktemp -d`` directory), so the
    sandbox's three files are copied to a directory it can read, as a non-root trainer's own
    installation would be: the sandbox itself reads no file of graft's once imported.
    """
    import subprocess

    from graft.rewards.asserts import split_tests

    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 readable by an unprivileged user")
    copy = Path(tempfile.mkdtemp(prefix="graft-nonroot-test-"))
    server = socket.socket()
    try:
        copy.chmod(0o755)
        for name in ("sandbox.py", "_sandbox_child.py", "_sandbox_protocol.py"):
            shutil.copy(REPO / "src" / "graft" / "rewards" / name, copy / name)
            (copy / name).chmod(0o644)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.2)
        plan = json.dumps(split_tests("assert solve(2) == 4\nassert solve(3) == 9"))
        done = subprocess.run([python, "-c", NON_ROOT, str(copy / "sandbox.py"), str(server.getsockname()[1]), plan],
                              capture_output=True, text=True, timeout=60, user=65534, group=65534,
                              extra_groups=[], env={"PATH": "/usr/bin:/bin"}, cwd="/", check=False)
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()
        shutil.rmtree(copy)
    assert done.returncode == 0, done.stderr[-500:]
    out = json.loads(done.stdout)
    if not out["who"]["info"].get("namespaces", "").endswith("user"):
        pytest.skip(f"unprivileged user namespaces unavailable: {out['who']['info']}")
    assert out["who"]["stdout"].split() == ["65534", "2"]  # own uid, pid 2 under the namespace's init
    assert out["tmp"]["events"] == ["exit ok"] and not os.path.exists("/tmp/graft_nonroot_x")
    assert out["net"]["events"] == ["exit runtime"]
    assert out["loop"]["events"] == [] and out["loop"]["stopped"] is None  # killed by RLIMIT_CPU
    assert out["daemon"]["events"] == ["exit ok"]
    assert out["right"]["events"] == ["test 0 ok", "test 1 ok"]
    assert out["always_equal"]["events"] == ["test 0 wrong_answer", "test 1 wrong_answer"]
    time.sleep(0.2)
    assert leftover_processes(owner=out["owner"], uids=set()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid-based fallback needs root")
def test_fallback_without_namespaces_still_cleans_up():
    """isolate=False (as when unshare is refused): dedicated uid, rlimits, sweeps of processes and files."""
    code = ("import os, time\nopen('/tmp/graft_fallback_x', 'w').write('x')\nif os.fork() == 0:\n    os.setsid()\n"
            "    time.sleep(30)\n    os._exit(0)\nprint(os.environ.get('GRAFT_TEST_SECRET'), os.getuid())")
    os.environ["GRAFT_TEST_SECRET"] = "hunter2"
    try:
        run = run_program({"mode": "stdio", "code": code, "input": ""}, Limits(**LIMITS), isolate=False)
    finally:
        del os.environ["GRAFT_TEST_SECRET"]
    secret, uid = run.stdout.split()
    assert run.info["namespaces"] == "off" and secret == "None" and UID_BASE <= int(uid) < UID_BASE + UID_SLOTS
    assert not os.path.exists("/tmp/graft_fallback_x")
    assert _sandbox_processes() == [] and _sandbox_files() == []
