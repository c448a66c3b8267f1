"""Code-grader throughput, old vs new, side by side in one run.

Grades the shipped examples (``src/graft/data/code/verify.jsonl``: reference and wrong
solutions, one syntax error; the infinite loop is left out unless ``--with-loop``, since it
alone holds the grader for its CPU limit) with ``CodeGrader(workers=1)`` and prints tests
graded per second. Each tree runs in its own fresh subprocess: the working tree's ``src``
("new") and ``git archive OLD src`` ("old", by default the commit before the tamper-proof
grader), alternating, ``--repeats`` times each, so that both see the same machine load.

    PYTHONPATH=src python bench/grading_rate.py [--old REV] [--repeats 3] [--with-loop]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OLD = "d1fa611"  # main when the reward-hack work started (issue 15)

WORKER = r"""
import json, sys, time
from graft.rewards.code import CodeGrader, parse_tests
from graft.tasks.base import Example
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
if sys.argv[2] != "loop":
    rows = [r for r in rows if r["id"] != "loop"]
grader = CodeGrader(workers=1)
tests = 0
start = time.monotonic()
rewards = []
for r in rows:
    answer = r["tests"] if isinstance(r["tests"], str) else json.dumps(r["tests"])
    verdict = grader.grade(r["completion"], Example("", answer))
    tests += verdict.info.get("total", 0) or len(parse_tests(answer)[1])
    rewards.append(verdict.reward)
print(json.dumps({"seconds": time.monotonic() - start, "tests": tests, "completions": len(rows),
                  "reward_sum": sum(rewards)}))
"""


def old_tree(rev: str, into: Path) -> Path:
    """``git archive REV src`` unpacked under ``into``; returns its ``src``."""
    blob = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def measure(src: Path, data: Path, loop: bool) -> dict:
    done = subprocess.run([sys.executable, "-c", WORKER, str(data), "loop" if loop else "-"],
                          capture_output=True, text=True, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker failed on {src}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default=DEFAULT_OLD, help="git revision of the old grader (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--with-loop", action="store_true", help="keep the infinite-loop example")
    args = parser.parse_args()
    data = REPO / "src" / "graft" / "data" / "code" / "verify.jsonl"
    with tempfile.TemporaryDirectory(prefix="graft-bench-") as tmp:
        trees = {"old": old_tree(args.old, Path(tmp)), "new": REPO / "src"}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name, src in trees.items():
                runs[name].append(measure(src, data, args.with_loop))
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  load average {load}  old = {args.old}, new = working tree")
    print(f"{'grader':6} {'tests':>5} {'tests/s median':>15} {'min':>6} {'max':>6}  rewards")
    rates = {}
    for name, results in runs.items():
        rate = [r["tests"] / r["seconds"] for r in results]
        rates[name] = statistics.median(rate)
        print(f"{name:6} {results[0]['tests']:>5} {rates[name]:>15.1f} {min(rate):>6.1f} {max(rate):>6.1f}"
              f"  {[r['reward_sum'] for r in results]}")
    print(f"new / old: {rates['new'] / rates['old']:.2f}x")


if __name__ == "__main__":
    main()
