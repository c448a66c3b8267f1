"""Record the golden metrics of every case in ``configs.CASES`` for this machine's kind, into
``recordings/<configs.machine_kind()>.json``.

    PYTHONPATH=src python tests/golden/record.py            # every case (a deliberate change)
    PYTHONPATH=src python tests/golden/record.py tree hints # re-record only these
    PYTHONPATH=src python tests/golden/record.py --new-kind # add this machine kind, change nothing else

Regenerating the golden file is a deliberate act: it declares the current numbers correct. Do
it only when a change is *meant* to move the metrics (a bug fix, a new default), never to make
``test_golden.py`` pass after a refactor, and name the regenerated cases and the reason in the
commit message. A refactor that only renames a metric key says so in ``test_golden.RENAMED``
instead. Such a change makes the other kinds' recordings of those cases stale too, and they
can only be recorded on a machine of their kind: so the default also removes the re-recorded
cases from every other kind's file (printed; the test skips a case its kind has not recorded
until someone on such a machine records it).

``--new-kind`` is for a machine kind that has no recording yet (float rounding differs between
CPU kinds, ``configs.machine_kind``): run it on a checkout whose numbers match the recorded kinds
(their tests pass on machines of those kinds), so the new file pins the same code; it records
only the cases this kind lacks and leaves every other file alone.

Each case is trained through the public API (``graft.train.loop.prepare`` + ``train``) in a
temporary run directory; a recording keeps, per case, its overrides, every step's metrics from
``metrics.jsonl`` (SFT and RL steps; wall-clock keys such as ``perf/step_time`` dropped) and
the accuracies of ``summary.json``, and names the machine it was recorded on.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from configs import CASES, FIRES, RECORDINGS, cpu_facts, machine_kind, overrides, run_case


def dump(golden: dict) -> str:
    """JSON with one line per step, so that a regeneration's diff shows which steps moved."""
    lines = ["{", f'  "about": {json.dumps(golden["about"])},', f'  "machine": {json.dumps(golden["machine"])},',
             '  "cases": {']
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


def main(argv: list[str]) -> None:
    new_kind = "--new-kind" in argv
    names = [a for a in argv if a != "--new-kind"]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; cases: {', '.join(CASES)}")
    kind = machine_kind()
    path = RECORDINGS / f"{kind}.json"
    old = json.loads(path.read_text())["cases"] if path.exists() else {}
    if new_kind:
        if names:
            raise SystemExit("--new-kind records the cases this kind lacks; name no case")
        names = [n for n in CASES if n not in old]
        if not names:
            raise SystemExit(f"{path.name} already holds every case")
    cases = {}
    for name in CASES:
        if (names and name not in names and name in old) or (new_kind and name in old):
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
    about = (f"golden metrics of tests/golden/configs.py for machine kind {kind}, recorded by "
             f"tests/golden/record.py (torch {torch.__version__}); regenerate only deliberately, see its docstring")
    RECORDINGS.mkdir(exist_ok=True)
    path.write_text(dump({"about": about, "machine": {"kind": kind, "cpu": cpu_facts().get("model name", "unknown")}, "cases": cases}))
    print(f"wrote {path.relative_to(RECORDINGS.parent.parent.parent)}")
    if new_kind:
        return
    redone = set(names or CASES)
    for other in sorted(RECORDINGS.glob("*.json")):
        if other == path:
            continue
        rec = json.loads(other.read_text())
        stale = [n for n in rec["cases"] if n in redone]
        if stale:
            rec["cases"] = {n: c for n, c in rec["cases"].items() if n not in redone}
            if rec["cases"]:
                other.write_text(dump(rec))
            else:
                other.unlink()
            print(f"removed the re-recorded case(s) {', '.join(stale)} from {other.name} (stale: "
                  "record them again on a machine of that kind with --new-kind)")


if __name__ == "__main__":
    main(sys.argv[1:])
