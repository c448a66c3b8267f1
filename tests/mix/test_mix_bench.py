"""The hybrid bench's own logic: which methods it runs, compute to a target, the summary table."""

import importlib.util
import math
from pathlib import Path

import pytest

from graft.config import build_config
from graft.mix.schedules import MIX_SCHEDULES

BENCH = Path(__file__).resolve().parents[2] / "bench" / "hybrid"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_hybrid_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run, report = _module("run"), _module("report")


def test_the_bench_runs_every_schedule_and_both_baselines_with_valid_configs():
    table = run.methods(2.0e6)
    assert set(table) == {"sft_only", "rl_only", *MIX_SCHEDULES}
    for name, overrides in table.items():
        cfg = build_config({}, run.BASE + overrides)
        assert cfg.mix.schedule == (name if name in MIX_SCHEDULES else "sft_then_rl")
    assert build_config({}, run.BASE + table["sft_only"]).rl.steps == 0
    assert build_config({}, run.BASE + table["rl_only"]).sft.steps == 0
    # step counts reach past the budget: 1.02 x 2e6 / 2650 SFT steps, 1.25 x 2e6 / 7100 RL steps
    assert build_config({}, run.BASE + table["sft_only"]).sft.steps == 770
    assert build_config({}, run.BASE + table["rl_only"]).rl.steps == 353


def test_compute_to_target_interpolates_between_evaluations():
    curve = [{"compute": 0.0, "accuracy": 0.4}, {"compute": 10.0, "accuracy": 0.5},
             {"compute": 20.0, "accuracy": 0.7}]
    assert report.compute_to_target(curve, 0.6) == pytest.approx(15.0)  # halfway from 0.5 to 0.7
    assert report.compute_to_target(curve, 0.5) == pytest.approx(10.0)
    assert report.compute_to_target(curve, 0.4) == 0.0  # the start already reaches it
    assert report.compute_to_target(curve, 0.9) == math.inf


def _runs(method, finals):
    return [{"method": method, "seed": s, "final_accuracy": a, "pass@1": a, "pass@4": a, "pass@8": a,
             "wall_seconds": 10.0, "compute": 1.0, "steps": 5, "mean_sft_share": 0.5, "budget_reached": True,
             "curve": [{"compute": 0.0, "accuracy": 0.0}, {"compute": 1.0, "accuracy": a}]}
            for s, a in enumerate(finals)]


def test_summary_statistics_on_a_hand_made_table():
    runs = {"sft_only": _runs("sft_only", [0.1, 0.2, 0.3, 0.4]),
            "rl_only": _runs("rl_only", [0.5, 0.6, 0.7, 0.8])}
    table = report.summarize(runs, target=0.55)
    # IQM of 4 runs: cut floor(0.25 * 4) = 1 from each end -> mean(0.2, 0.3) = 0.25
    assert table["sft_only"]["final_accuracy"]["iqm"] == pytest.approx(0.25)
    assert table["rl_only"]["final_accuracy"]["iqm"] == pytest.approx(0.65)
    lo, hi = table["sft_only"]["final_accuracy"]["ci95"]
    assert 0.1 <= lo <= 0.25 <= hi <= 0.4
    assert table["rl_only"]["p_improve_over_sft_only"] == 1.0
    assert table["sft_only"]["p_improve_over_rl_only"] == 0.0
    # reaching 0.55: never for sft_only; rl_only runs at compute 0.55/0.6, 0.55/0.7, 0.55/0.8 of 1.0
    assert table["sft_only"]["compute_to_target"]["reached"] == 0
    assert table["rl_only"]["compute_to_target"]["reached"] == 3
    text = report.markdown(table)  # (its header names the module's TARGET, not 0.55)
    assert text.count("\n") == 4 and "| rl_only | 0.650 [" in text
