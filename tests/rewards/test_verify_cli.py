"""`graft verify`: one JSON result per line plus a summary; bad input is one error line, exit 2."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "src" / "graft" / "data"


def verify(*args):
    return subprocess.run([sys.executable, "-m", "graft.cli", "verify", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _results(out):
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    return lines[:-1], lines[-1]["summary"]


def test_math(tmp_path):
    f = _write(tmp_path / "m.jsonl", [
        {"id": "a", "completion": "so \\boxed{\\frac{1}{2}}", "answer": "0.5"},
        {"completion": "The answer is 7.", "answer": 8},
        "",
        {"completion": "no idea", "answer": "3"},
    ])
    out = verify("--task", "math", str(f))
    assert out.returncode == 0, out.stderr
    rows, summary = _results(out)
    assert rows == [{"line": 1, "id": "a", "reward": 1.0, "error": None},
                    {"line": 2, "reward": 0.0, "error": "wrong_answer"},
                    {"line": 4, "reward": 0.0, "error": "no_answer"}]
    assert summary["count"] == 3 and summary["correct"] == 1
    assert summary["mean_reward"] == pytest.approx(1 / 3, abs=1e-6)
    assert summary["errors"] == {"no_answer": 1, "wrong_answer": 1} and summary["per_second"] > 0


def test_code_and_exact(tmp_path):
    f = _write(tmp_path / "c.jsonl", [
        {"completion": "```python\ndef f(x):\n    return 2 * x\n```", "tests": ["assert f(1) == 2", "assert f(2) == 4"]},
        {"completion": "def f(x):\n    return 2", "tests": "assert f(1) == 2\nassert f(2) == 4"},
        {"completion": "print(input()[::-1])", "tests": [{"input": "abc\n", "output": "cba\n"}]},
        {"completion": "import sys\nsys.exit(3)", "tests": [{"input": "", "output": "x"}]},
    ])
    rows, summary = _results(verify("--task", "code", str(f), "--workers", "2"))
    assert [(r["reward"], r["error"]) for r in rows] == [(1.0, None), (0.5, "wrong_answer"), (1.0, None),
                                                        (0.0, "runtime")]
    assert summary["errors"] == {"runtime": 1, "wrong_answer": 1}
    f = _write(tmp_path / "e.jsonl", [{"completion": "Answer: Paris", "answer": "paris"}])
    rows, _ = _results(verify("--task", "exact", str(f)))
    assert rows[0]["reward"] == 1.0


def test_sql_with_a_relative_database(tmp_path):
    shutil.copy(DATA / "sql" / "shop.db", tmp_path / "shop.db")
    f = _write(tmp_path / "s.jsonl", [
        {"completion": "```sql\nSELECT COUNT(*) FROM customers\n```", "db": "shop.db",
         "reference": "SELECT COUNT(id) FROM customers"},
        {"completion": "DROP TABLE customers", "db": "shop.db", "reference": "SELECT 1"},
    ])
    rows, summary = _results(verify("--task", "sql", str(f)))
    assert [(r["reward"], r["error"]) for r in rows] == [(1.0, None), (0.0, "rejected")]
    assert summary["correct"] == 1 and summary["errors"] == {"rejected": 1}


@pytest.mark.parametrize("task,rows,expect", [
    ("math", [{"completion": "1", "answer": "1"}, "{oops"], "x.jsonl:2: not valid JSON"),
    ("math", [{"completion": "1"}], "x.jsonl:1: field 'answer' is missing"),
    ("math", [{"answer": "1", "completion": 5}], "x.jsonl:1: field 'completion' is missing or not a str"),
    ("code", ["", {"completion": "x", "tests": "assert ("}], "x.jsonl:2: field 'tests': tests: not valid Python"),
    ("code", [{"completion": "x", "tests": [{"input": 1}]}], "x.jsonl:1: field 'tests'"),
    ("sql", [{"completion": "SELECT 1", "db": "none.db", "reference": "SELECT 1"}],
     "x.jsonl:1: field 'reference': database not found"),
    ("regex", [{"completion": "a", "answer": "(a"}], "x.jsonl:1: field 'answer'"),
])
def test_malformed_lines(tmp_path, task, rows, expect):
    out = verify("--task", task, str(_write(tmp_path / "x.jsonl", rows)))
    assert out.returncode == 2 and out.stdout == ""
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_missing_file_and_bad_workers(tmp_path):
    out = verify("--task", "math", str(tmp_path / "none.jsonl"))
    assert out.returncode == 2 and "file not found" in out.stderr
    f = _write(tmp_path / "ok.jsonl", [{"completion": "1", "answer": "1"}])
    out = verify("--task", "math", str(f), "--workers", "0")
    assert out.returncode == 2 and "--workers must be >= 1" in out.stderr
