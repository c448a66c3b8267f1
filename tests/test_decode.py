"""The shared decode loop (issue 12) samples exactly what the separate loops before it did, and,
since issue 17, at each row's own keyed numbers (``graft.rollout.rng``).

``tests/fixtures/decode_reference.json`` holds the outputs of ``sample`` / ``sample_tree`` /
``PartialRollouts.step`` recorded *before* their loops were merged into ``graft.rollout.decode``,
re-recorded once when the sampling numbers became keyed (issue 17; the greedy cases unchanged;
see ``tests/fixtures/make_decode_reference.py``, which also runs the cases here). Every path is
pinned: i.i.d. with and without shared prefill and compaction, top-p, greedy, the tree with and
without the entropy rule and with its i.i.d. fallback, partial rollouts' budgets and group stop.
Tokens, finish reasons, tree structure and every rollout's row key (so how keys are derived)
must be equal; log-probabilities equal to 1e-6.
"""

import importlib.util
import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).with_name("fixtures")
_spec = importlib.util.spec_from_file_location("make_decode_reference",
                                               FIXTURES / "make_decode_reference.py")
reference_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_cases)
REFERENCE = json.loads((FIXTURES / "decode_reference.json").read_text())


def test_every_reference_case_is_run():
    assert set(REFERENCE) == set(reference_cases.CASES)
    # the cases reach the paths they are named for
    assert REFERENCE["tree_fallback"]["fallback_rows"] > 0
    assert {"aborted", "stop", "length"} <= set(REFERENCE["partial_group_stop"]["finish"])
    assert len({len(t) for t in REFERENCE["iid_share_compact"]["tokens"]}) > 2
    assert "aborted" in REFERENCE["partial_steps"]["finish"]  # still buffered after the last step
    versions = REFERENCE["partial_steps"]["token_versions"]
    assert any(len(set(v)) > 1 for v in versions)  # resumed rows: tokens of two policy versions


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_decode_matches_the_recorded_reference(name):
    want, got = REFERENCE[name], reference_cases.record(name)
    assert got["tokens"] == want["tokens"]
    assert got["finish"] == want["finish"]
    assert got["tree_path"] == want["tree_path"] and got["tree_spans"] == want["tree_spans"]
    assert got["token_versions"] == want["token_versions"]
    assert got["fallback_rows"] == want["fallback_rows"]
    assert got["keys"] == want["keys"]  # same row keys: the same numbers at every position
    for a, b in zip(got["logprobs"], want["logprobs"], strict=True):
        assert len(a) == len(b)
        assert all(abs(x - y) <= 1e-6 for x, y in zip(a, b))
