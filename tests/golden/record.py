"""Record the golden metrics of every case in ``configs.CASES`` into ``golden.json``.

    PYTHONPATH=src python tests/golden/record.py            # every case
    PYTHONPATH=src python tests/golden/record.py tree hints # re-record only these

Regenerating the golden file is a deliberate act: it declares the current numbers correct. Do
it only when a change is *meant* to move the metrics (a bug fix, a new default), never to make
``test_golden.py`` pass after a refactor, and name the regenerated cases and the reason in the
commit message. A refactor that only renames a metric key says so in ``test_golden.RENAMED``
instead.

Each case is trained through the public API (``graft.train.loop.prepare`` + ``train``) in a
temporary run directory; ``golden.json`` keeps, per case, its overrides, every step's metrics
from ``metrics.jsonl`` (SFT and RL steps; wall-clock keys such as ``perf/step_time`` dropped) and
the accuracies of ``summary.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from configs import CASES, FIRES, overrides, run_case

GOLDEN = Path(__file__).resolve().parent / "golden.json"


def dump(golden: dict) -> str:
    """JSON with one line per step, so that a regeneration's diff shows which steps moved."""
    lines = ["{", f'  "about": {json.dumps(golden["about"])},', '  "cases": {']
    names = list(golden["cases"])
    for i, name in enumerate(names):
        case = golden["cases"][name]
        lines.append(f"    {json.dumps(name)}: {{")
        lines.append(f'      "overrides": {json.dumps(case["overrides"])},')
        lines.append(f'      "summary": {json.dumps(case["summary"])},')
        lines.append('      "steps": [')
        rows = [f"        {json.dumps(r)}" for r in case["steps"]]
        lines.append(",\n".join(rows))
        lines.append("      ]")
        lines.append("    }" + ("," if i < len(names) - 1 else ""))
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def main(names: list[str]) -> None:
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; cases: {', '.join(CASES)}")
    old = json.loads(GOLDEN.read_text())["cases"] if GOLDEN.exists() else {}
    cases = {}
    for name in CASES:
        if names and name not in names and name in old:
            cases[name] = old[name]
            continue
        t0 = time.perf_counter()
        steps, summary = run_case(name)
        fired = FIRES[name](steps)
        print(f"{name:18s} {time.perf_counter() - t0:5.2f}s  {len(steps)} steps  "
              f"feature fired: {fired}", flush=True)
        if not fired:
            print(f"  warning: case {name} does not show its feature (configs.FIRES)", flush=True)
        cases[name] = {"overrides": overrides(name), "summary": summary, "steps": steps}
    about = (f"golden metrics of tests/golden/configs.py, recorded by tests/golden/record.py "
             f"(torch {torch.__version__}); regenerate only deliberately, see its docstring")
    GOLDEN.write_text(dump({"about": about, "cases": cases}))
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main(sys.argv[1:])
