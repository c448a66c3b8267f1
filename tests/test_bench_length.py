"""bench/length.py's summary on hand-made runs: IQM, the length ratio, the CI test and the claim."""


import pytest
from bench_scripts import load
from draws import Draws

length = load("length.py")


def _runs(acc: list[float], lens: list[float]) -> list[dict]:
    return [{"seed": i, "accuracy": a, "sampled_accuracy": a / 2, "length": n}
            for i, (a, n) in enumerate(zip(acc, lens, strict=True))]


def test_summary_by_hand():
    runs = {
        "none": _runs([0.95] * 5, [60.0] * 5),  # one value: the CI is the point, [0.95, 0.95]
        "short": _runs([0.90, 0.95, 0.95, 0.95, 1.0], [40, 41, 41, 42, 60]),  # IQM 0.95, 41.33
        "lossy": _runs([0.94] * 5, [30.0] * 5),  # 50% shorter, accuracy just outside
        "mild": _runs([0.95, 0.95, 0.95, 0.96, 0.94], [50.0] * 5),  # equal accuracy, 17% shorter
    }
    table = length.summarize(runs, reps=200)
    assert table["none"]["accuracy"] == {"iqm": pytest.approx(0.95, abs=1e-12),
                                         "ci95": [pytest.approx(0.95, abs=1e-12)] * 2, "values": [0.95] * 5}
    short = table["short"]
    assert short["accuracy"]["iqm"] == pytest.approx(0.95, abs=1e-12)  # the middle three of five
    assert short["length"]["iqm"] == pytest.approx(124 / 3, abs=1e-12)
    assert short["length_ratio"] == pytest.approx(124 / 180, abs=1e-12)
    assert short["sampled_accuracy"]["iqm"] == pytest.approx(0.475, abs=1e-12)
    lo, hi = short["length"]["ci95"]
    assert 40 <= lo <= 124 / 3 <= hi <= 60
    assert short["accuracy_in_baseline_ci"] and short["claim_holds"]
    assert not table["lossy"]["accuracy_in_baseline_ci"] and not table["lossy"]["claim_holds"]
    assert table["mild"]["accuracy_in_baseline_ci"] and not table["mild"]["claim_holds"]
    assert table["none"]["length_ratio"] == 1.0 and not table["none"]["claim_holds"]
    assert length.summarize(runs, reps=200) == table  # the bootstrap is seeded
    text = length.markdown(table)
    assert "| short | 0.950 [" in text and "| 41.3 [" in text and "| 0.69 | yes |" in text
    assert text.splitlines()[2].endswith("| - |")  # no claim for the baseline itself


def test_style_replaces_the_teacher_in_place():
    hedging = length.style_base("hedging")
    assert "task.demo_style=hedging" in hedging and "task.demo_style=verbose" not in hedging
    assert len(hedging) == len(length.BASE) and length.style_base("verbose") == length.BASE


def test_phrase_count_from_length():
    forms = load("length_forms.py")
    from graft.tasks.arithmetic import demonstration


    plain = len(demonstration(47, "+", 85))
    for draws, phrases in [((0.9, 0.9, 0.9), 0), ((0.1, 0.9, 0.9), 1), ((0.9, 0.1, 0.1), 2), ((0.1, 0.1, 0.1), 3)]:
        text = demonstration(47, "+", 85, "hedging", Draws(*draws))
        assert forms.phrase_count(len(text) + 1, plain) == phrases  # + the end-of-sequence token
