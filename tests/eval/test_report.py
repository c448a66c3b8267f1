"""`graft report`: the held-out eval curve per group (IQM over seeds, bootstrap band) and `graft
compare`'s tables, checked against hand-computed numbers and against `graft compare`'s own output."""

import base64
import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from fakes import fake_run

from graft.cli import main
from graft.eval.report import iqm_band

ROUND = 5e-4 + 1e-12  # the page shows 3 decimals


class _Tables(HTMLParser):
    """Every <table id=...> of a page as a list of rows of cell texts (header row first)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._id = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._id = dict(attrs).get("id")
            self.tables[self._id] = []
        elif tag == "tr" and self._id is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._id].append(self._row)
            self._row = None
        elif tag == "table":
            self._id = None


def _tables(page: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def _ci(text: str) -> tuple[float, float, float]:
    """'0.350 [0.200, 0.650]' -> (0.35, 0.2, 0.65)."""
    point, lo, hi = map(float, re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", text).groups())
    return point, lo, hi


def test_iqm_band_hand_computed():
    series = [  # five seeds: step -> value
        {1: 0.0, 2: 0.2, 3: 0.7, 4: 0.5},
        {1: 0.2, 2: 0.6, 4: 0.5},
        {1: 0.4, 4: 0.5},
        {1: 0.6, 4: 0.5},
        {1: 1.0, 4: 0.5},
    ]
    steps, point, lo, hi = iqm_band(series, np.random.default_rng(0), reps=4000)
    assert steps.tolist() == [1, 2, 3, 4]
    # step 1, five seeds: floor(0.25 * 5) = 1 score cut from each end, mean(0.2, 0.4, 0.6) = 0.4
    assert point[0] == pytest.approx(0.4, abs=1e-12) and 0.0 <= lo[0] < 0.4 < hi[0] <= 1.0
    # step 2, two seeds (0.2, 0.6): nothing cut, IQM = mean = 0.4; a resample is (a, a), (a, b) or
    # (b, b) with probability 1/4, 1/2, 1/4, so the 2.5% and 97.5% quantiles are the seeds themselves
    assert (point[1], lo[1], hi[1]) == pytest.approx((0.4, 0.2, 0.6), abs=1e-12)
    # step 3, one seed: the value, no band
    assert point[2] == 0.7 and math.isnan(lo[2]) and math.isnan(hi[2])
    # step 4, all seeds equal: the band collapses onto them
    assert (point[3], lo[3], hi[3]) == pytest.approx((0.5, 0.5, 0.5), abs=1e-12)


FINAL = {"base": [0.1, 0.3, 0.4, 0.9], "tuned": [0.5, 0.6, 0.7, 0.95]}  # summary.json accuracy_after_rl
EVALS = {  # metrics.jsonl step -> eval/accuracy of seeds 0..3 (None: that seed did not log it)
    "base": {1: [0.1, 0.2, 0.3, 0.8], 3: [0.3, 0.4, 0.5, 0.6]},
    "tuned": {1: [0.4, 0.5, 0.5, 0.9], 3: [0.6, 0.7, 0.8, None]},
}
IQM = {("base", 1): 0.25, ("base", 3): 0.45,  # four seeds: mean of the middle two
       ("tuned", 1): 0.5, ("tuned", 3): 0.7}  # three seeds logged step 3: nothing cut, mean(0.6, 0.7, 0.8)


@pytest.fixture
def fake_runs(tmp_path):
    root = tmp_path / "runs"
    for name, finals in FINAL.items():
        for seed, final in enumerate(finals):
            curve = {step: values[seed] for step, values in EVALS[name].items() if values[seed] is not None}
            fake_run(root, name, seed, final, curve=[0.2, 0.3, 0.4, 0.5], eval_curve=curve)
    return root


def test_report_draws_the_eval_curve_and_carries_compares_table(fake_runs, tmp_path, capsys):
    report, summary = tmp_path / "report.html", tmp_path / "compare.json"
    assert main(["report", str(fake_runs), "--out", str(report), "--reps", "2000", "--seed", "3"]) == 0
    assert main(["compare", str(fake_runs), "--plot", "", "--json", str(summary), "--reps", "2000",
                 "--seed", "3"]) == 0
    capsys.readouterr()
    page = report.read_text()
    tables = _tables(page)

    # the eval curve: an embedded PNG named for eval/accuracy (no sampled curve: none was logged)
    figure = re.search(r"<img alt='held-out greedy accuracy' src='data:image/png;base64,([^']+)'>"
                       r"<figcaption class='note'>eval/accuracy</figcaption>", page)
    assert figure is not None
    png = base64.b64decode(figure[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "held-out sampled accuracy" not in page
    # its points: the IQM over the seeds that logged each step, inside its bootstrap band
    header, *rows = tables["eval-points"]
    assert header == ["key", "group", "step", "IQM", "CI low", "CI high"]
    got = {(group, int(step)): (float(c), float(lo), float(hi)) for key, group, step, c, lo, hi in rows}
    assert set(got) == set(IQM)
    for (group, step), want in IQM.items():
        center, lo, hi = got[(group, step)]
        values = [v for v in EVALS[group][step] if v is not None]
        assert center == pytest.approx(want, abs=ROUND), (group, step)
        assert min(values) <= lo <= center <= hi <= max(values), (group, step)

    # compare's table: hand-computed points, and exactly graft compare's numbers on the same runs
    header, *rows = tables["compare-groups"]
    assert header == ["group", "seeds", "IQM [CI]", "mean [CI]", "opt. gap"]
    by_group = {row[0]: row for row in rows}
    assert set(by_group) == {"base", "tuned"}
    hand = {"base": (0.35, 0.425), "tuned": (0.65, 0.6875)}  # IQM: mean of the middle two; mean
    data = json.loads(summary.read_text())
    for group, (iqm, mean) in hand.items():
        _, seeds, iqm_text, mean_text, gap = by_group[group]
        assert seeds == "4"
        assert _ci(iqm_text)[0] == pytest.approx(iqm, abs=ROUND) and _ci(mean_text)[0] == pytest.approx(mean, abs=ROUND)
        assert float(gap) == pytest.approx(1 - mean, abs=ROUND)
        assert _ci(iqm_text) == pytest.approx(data["groups"][group]["iqm"], abs=ROUND)
        assert _ci(mean_text) == pytest.approx(data["groups"][group]["mean"], abs=ROUND)
    header, *rows = tables["compare-improvement"]
    assert header == ["", "base", "tuned"]
    matrix = {row[0]: dict(zip(header[1:], row[1:])) for row in rows}
    assert matrix["base"]["base"] == "-" and matrix["tuned"]["tuned"] == "-"
    # P(tuned > base): tuned 0.5, 0.6, 0.7 each beat 3 of base's 4 seeds, 0.95 beats all 4: 13 / 16
    assert _ci(matrix["tuned"]["base"])[0] == pytest.approx(13 / 16, abs=ROUND)
    assert _ci(matrix["base"]["tuned"])[0] == pytest.approx(3 / 16, abs=ROUND)
    for pair, (x, y) in {"tuned > base": ("tuned", "base"), "base > tuned": ("base", "tuned")}.items():
        assert _ci(matrix[x][y]) == pytest.approx(data["improvement"][pair], abs=ROUND)

    # the periodic eval files are curve points, not rows of the evaluation table
    assert not any("step_" in cell for row in tables["evaluation"] for cell in row)
    assert "<script" not in page and "http" not in page  # self-contained, offline


def test_report_says_why_a_table_or_curve_is_missing(tmp_path, capsys):
    fake_run(tmp_path, "solo", 0, 0.42)  # one seed, no periodic evaluation
    report = tmp_path / "report.html"
    assert main(["report", str(tmp_path), "--out", str(report), "--reps", "100"]) == 0
    capsys.readouterr()
    page = report.read_text()
    assert "No comparison table: confidence intervals need &gt;= 2 seeds per group" in page
    assert "set eval.every" in page
    assert "compare-groups" not in page and "eval-points" not in page
