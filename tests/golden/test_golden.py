"""Golden metrics: every case of ``configs.CASES`` must reproduce the recording of the machine kind
it runs on (``recordings/<configs.machine_kind()>.json``) to 1e-6.

Recorded before issue 12 (the RL step as a pipeline of typed stages) so that the refactor can
show it changes no number; re-recorded whole for issue 17 (partition-independent sampling RNG:
every sampled token changes; at near-greedy temperature the metrics were checked unchanged). Each case trains through the public API from its own seed with one
thread, so results depend neither on the order the cases run in nor on the process; they do
depend on the machine kind (CPU vendor and model, torch's vector instructions and version:
``configs.machine_kind``), whose float rounding differs, so each kind has its own recording, and
a kind with none skips the comparison, saying so (``record.py --new-kind`` adds one).

- Every stored step must be there, and no other step (the set of steps matches).
- Every stored metric key must be in the new run at that step with a value within
  abs 1e-6 / rel 1e-6 (``math.isclose``). New keys in the run are allowed.
- A refactor that renames a key says so in ``RENAMED`` (old key -> new key); any other stored
  key missing from the run fails, naming the case, the step and the key.
- What does not depend on the machine is checked on every recording: each case's overrides are
  today's, its feature fired (``FIRES``), its feature moves the numbers (``DIFFERS``).

Regenerating a recording (``PYTHONPATH=src python tests/golden/record.py``) is deliberate and
must be named in the commit message; see ``record.py``.
"""

from __future__ import annotations

import json
import math

import pytest

from configs import (
    CASES,
    DIFFERS,
    FIRES,
    RECORDINGS,
    SUMMARY_KEYS,
    TIMING,
    machine_kind,
    overrides,
    run_case,
)

RECORDED: dict[str, dict] = {p.stem: json.loads(p.read_text()) for p in sorted(RECORDINGS.glob("*.json"))}
"""machine kind -> its recording (``about``, ``machine``, ``cases``)."""
KIND = machine_kind()
GOLDEN: dict = RECORDED.get(KIND, {}).get("cases", {})
"""This machine kind's recorded cases (empty: none recorded for it)."""

ABS_TOL = 1e-6
REL_TOL = 1e-6

RENAMED: dict[str, str] = {
    # empty since issue 17 re-recorded every case under today's keys. Issue 12's renames
    # (losses/policy -> losses/total for the whole loss, rollout/verifier_reward_mean ->
    # rollout/reward_mean) mapped keys of the file recorded before it; kept here they would now
    # compare today's losses/policy (the policy-gradient term) with losses/total.
}
"""Metric keys a refactor renamed on purpose: old key (as stored in a recording) -> new key."""

MAX_REPORTED = 20  # mismatches listed in one failure message


def _same(want, got) -> bool:
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(want, got, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return want == got  # a non-finite value, logged as the string "nan" / "inf"


def mismatches(name: str, want_rows: list[dict], got_rows: list[dict]) -> list[str]:
    """Human-readable differences between a stored run and a new one (empty when they match)."""
    want = {r["step"]: r for r in want_rows}
    got = {r["step"]: r for r in got_rows}
    if set(want) != set(got):
        return [(f"case {name}: steps differ: missing {sorted(set(want) - set(got))}, "
                 f"unexpected {sorted(set(got) - set(want))}")]
    problems = []
    for step in sorted(want):
        for key, value in want[step].items():
            new_key = RENAMED.get(key, key)
            if new_key not in got[step]:
                renamed = f" (renamed to {new_key})" if new_key != key else ""
                problems.append(f"case {name}, step {step}: key {key!r}{renamed} "
                                "missing from the run")
            elif not _same(value, got[step][new_key]):
                problems.append(f"case {name}, step {step}, key {key!r}: golden {value!r}, "
                                f"got {got[step][new_key]!r}")
    return problems


def test_every_case_is_recorded_with_todays_config():
    assert RECORDED, f"no recording in {RECORDINGS}"
    for kind, rec in RECORDED.items():
        assert rec["machine"]["kind"] == kind, f"{kind}.json says it is of kind {rec['machine']['kind']}"
        assert set(rec["cases"]) <= set(CASES), f"{kind}.json holds cases configs.CASES lacks"
        for name, case in rec["cases"].items():
            assert case["overrides"] == overrides(name), \
                f"case {name}: its config changed since {kind}.json recorded it"
            assert not {k for r in case["steps"] for k in r} & set(TIMING)
    unrecorded = [n for n in CASES if not any(n in rec["cases"] for rec in RECORDED.values())]
    assert not unrecorded, f"cases recorded on no machine kind: {unrecorded}"


def test_machine_kind_names_the_cpu_the_vector_unit_and_torch():
    info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n" \
           "model name\t: AMD EPYC\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\nmodel\t\t: 99\n"
    assert machine_kind(info, "AVX512", "2.13.0+cpu") == "AuthenticAMD-25-17-AVX512-torch2.13.0+cpu"
    other = machine_kind(info.replace(": 17", ": 18"), "AVX512", "2.13.0+cpu")
    assert other != machine_kind(info, "AVX512", "2.13.0+cpu")
    assert machine_kind(info, "AVX2", "2.13.0+cpu") != machine_kind(info, "AVX512", "2.13.0+cpu")
    assert "/" not in machine_kind("", "DEFAULT", "2.13.0") and machine_kind("", "DEFAULT", "2.13.0").endswith(
        "-DEFAULT-torch2.13.0")  # no /proc/cpuinfo: platform's names stand in


@pytest.mark.parametrize("name", list(CASES))
def test_case_matches_golden(name):
    if name not in GOLDEN:
        pytest.skip(f"machine kind {KIND} has no recording of case {name} (recorded kinds: "
                    f"{', '.join(RECORDED)}); float rounding differs between kinds, so another kind's "
                    "numbers cannot be checked here: `PYTHONPATH=src python tests/golden/record.py "
                    "--new-kind` on a checkout that passes on a recorded kind adds this one")
    steps, summary = run_case(name)
    problems = mismatches(name, GOLDEN[name]["steps"], steps)
    want = GOLDEN[name]["summary"]
    problems += [f"case {name}, summary.json {key!r}: golden {want[key]!r}, got {summary[key]!r}"
                 for key in SUMMARY_KEYS if not _same(want[key], summary[key])]
    assert not problems, f"{len(problems)} mismatch(es) against {KIND}.json:\n" + "\n".join(problems[:MAX_REPORTED])


RECORDED_CASES = [(kind, name) for kind, rec in RECORDED.items() for name in rec["cases"]]


@pytest.mark.parametrize("kind, name", RECORDED_CASES)
def test_case_exercises_its_feature(kind, name):
    """The recorded run shows its feature at work (configs.FIRES), so the golden values cover it."""
    assert FIRES[name](RECORDED[kind]["cases"][name]["steps"]), f"case {name} ({kind}): its feature did not fire"


@pytest.mark.parametrize("kind", list(RECORDED))
@pytest.mark.parametrize("case, base, key", DIFFERS)
def test_feature_moves_the_numbers(kind, case, base, key):
    """The case's feature changes ``key`` beyond the tolerance compared to its baseline case."""
    cases = RECORDED[kind]["cases"]
    if case not in cases or base not in cases:
        pytest.skip(f"{kind}.json lacks {case} or {base}")
    a, b = ({r["step"]: r for r in cases[n]["steps"]} for n in (case, base))
    moved = [s for s in a
             if key in a[s] and key in b.get(s, {}) and not _same(a[s][key], b[s][key])]
    assert moved, f"{case} and {base} agree on {key} at every step ({kind})"
