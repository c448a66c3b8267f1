"""The reward-hack corpus (tests/rewards/hack_corpus.py) against the old and the new code grader.

Prints one line per program: its reward from the old tree (``git archive OLD src``, by default
the commit before the tamper-proof grader) and from the working tree. Each tree is graded in
its own subprocess. Hacks should read ``x -> 0.00``, honest programs ``1.00 -> 1.00``.

    PYTHONPATH=src python bench/reward_hacks.py [--old REV]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grading_rate import DEFAULT_OLD, REPO, old_tree

WORKER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from hack_corpus import HACKS, HONEST
from graft.rewards.code import CodeGrader
from graft.tasks.base import Example
grader = CodeGrader(wall_s=3.0, cpu_s=1.0, memory_mb=512, disk_mb=4, nproc=16, output_kb=256)
out = []
for kind, corpus in (("hack", HACKS), ("honest", HONEST)):
    for name, program, tests in corpus:
        try:
            v = grader.grade(f"```python\n{program}\n```", Example("p", tests))
            out.append([kind, name, v.reward, v.error])
        except Exception as exc:
            out.append([kind, name, None, f"{type(exc).__name__}: {exc}"[:80]])
print(json.dumps(out))
"""


def grade_all(src: Path) -> list:
    done = subprocess.run([sys.executable, "-c", WORKER, str(REPO / "tests" / "rewards")], capture_output=True,
                          text=True, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker failed on {src}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default=DEFAULT_OLD)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="graft-bench-") as tmp:
        old = grade_all(old_tree(args.old, Path(tmp)))
    new = grade_all(REPO / "src")
    print(f"{'':6} {'program':72} {'old':>6}    {'new':>4}  new error")
    for (kind, name, before, why_before), (_, _, after, why) in zip(old, new):
        shown = "n/a" if before is None else f"{before:.2f}"
        print(f"{kind:6} {name[:72]:72} {shown:>6} -> {after:.2f}  {why}"
              + (f"   (old: {why_before})" if before is None else ""))


if __name__ == "__main__":
    main()
