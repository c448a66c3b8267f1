"""The hybrid bench's own logic: which methods it runs, compute to a target, the summary table."""

import json
import math
from pathlib import Path

import pytest
from bench_scripts import load

from graft.config import build_config
from graft.mix.schedules import MIX_SCHEDULES

run, report = load("hybrid/run.py"), load("hybrid/report.py")


def test_the_bench_runs_every_schedule_and_both_baselines_with_valid_configs():
    for setting in run.SETTINGS.values():
        table = run.methods(setting)
        variants = {name for name, _ in setting.variants}
        assert set(table) == {"sft_only", "rl_only", *MIX_SCHEDULES, *variants}
        for name, overrides in table.items():
            cfg = build_config({}, run.BASE + list(setting.task) + overrides)
            base = name.rsplit("+", 1)[0] if "+" in name and name.rsplit("+", 1)[0] in table else "sft_then_rl"
            if name in dict(setting.variants):  # a variant: its base method's overrides, then its own
                assert overrides == [*table[base], *dict(setting.variants)[name]], name
            named = [o.split("=", 1)[1] for o in overrides if o.startswith("mix.schedule=")]
            assert cfg.mix.schedule == (name if name in MIX_SCHEDULES else named[-1]), name
            chain, own = name, []  # the variant's own overrides and those of the variants it builds on
            while chain in dict(setting.variants):
                own += dict(setting.variants)[chain]
                if "+" not in chain:
                    break
                chain = chain.rsplit("+", 1)[0]
            changes_warmup = any(o.startswith("sft.steps=") for o in own)
            if chain not in ("sft_only", "rl_only") and not changes_warmup:  # the same warm-up first
                assert cfg.sft.steps == setting.warmup_steps, name
        assert build_config({}, run.BASE + table["sft_only"]).rl.steps == 0
        assert build_config({}, run.BASE + table["rl_only"]).sft.steps == 0
    teacher = run.SETTINGS["teacher"]
    assert build_config({}, run.BASE + list(teacher.task)).task.teacher_error == 0.6
    table = run.methods(teacher)
    # step counts reach past the budget: 1.02 x 5e6 / 2640 SFT steps, 1.25 x 5e6 / 14000 RL steps
    assert build_config({}, run.BASE + table["sft_only"]).sft.steps == 1932
    assert build_config({}, run.BASE + table["rl_only"]).rl.steps == 447
    # after the 800-step warm-up (2.112e6), 2.888e6 are left: 1.25 x 2.888e6 / 14000 RL steps
    assert build_config({}, run.BASE + table["sft_then_rl"]).rl.steps == 258
    few = run.methods(run.SETTINGS["few_demos"])
    assert few["sft_then_rl+lr2e-4"] == [*few["sft_then_rl"], "rl.lr=0.0002"]
    # the shorter warm-up: 400 SFT steps (1.056e6), 3.944e6 left: 1.25 x 3.944e6 / 14000 RL steps
    warm = build_config({}, run.BASE + few["sft_then_rl+warm400"])
    assert (warm.sft.steps, warm.rl.steps) == (400, 353)
    # countdown_teacher's control: the same warm-up, then only SFT steps (adaptive at p = 1)
    spec = run.SETTINGS["countdown_teacher"]
    control = build_config({}, run.BASE + list(spec.task) + run.methods(spec)["sft_then_sft"])
    assert control.mix.schedule == "adaptive" and control.sft.steps == spec.warmup_steps
    assert control.mix.adaptive_p_min == control.mix.adaptive_p_max == 1.0 and control.mix.sft_lr == 1e-3
    gentle = build_config({}, run.BASE + list(spec.task) + run.methods(spec)["sft_then_sft+lr1e-4"])
    assert gentle.mix.adaptive_p_min == 1.0 and gentle.mix.sft_lr == 1e-4
    interleaved = build_config({}, run.BASE + list(spec.task) + run.methods(spec)["interleaved"])
    assert (interleaved.mix.schedule, interleaved.mix.buffer_size, interleaved.mix.sft_lr) == ("interleaved", 8, 1e-4)
    earlier = build_config({}, run.BASE + list(spec.task) + run.methods(spec)["interleaved+sftlr1e-3"])
    assert earlier.model_copy(update={"mix": interleaved.mix}) == interleaved and earlier.mix.sft_lr == 1e-3
    # the later warm-ups: RL gets what the longer SFT phase leaves (1.25 x (5e6 - 1200 x 2640) / 14000)
    late = build_config({}, run.BASE + few["sft_then_rl+warm1200"])
    assert (late.sft.steps, late.rl.steps) == (1200, 164)


def test_a_warm_up_that_spends_the_budget_is_refused():
    with pytest.raises(ValueError, match="warm-up"):
        run.methods(run.Setting(about="", task=(), budget=1.0e6, warmup_steps=1000, target=0.5))


def test_compute_to_target_interpolates_between_evaluations():
    curve = [{"compute": 0.0, "accuracy": 0.4}, {"compute": 10.0, "accuracy": 0.5},
             {"compute": 20.0, "accuracy": 0.7}]
    assert report.compute_to_target(curve, 0.6) == pytest.approx(15.0)  # halfway from 0.5 to 0.7
    assert report.compute_to_target(curve, 0.5) == pytest.approx(10.0)
    assert report.compute_to_target(curve, 0.4) == 0.0  # the start already reaches it
    assert report.compute_to_target(curve, 0.9) == math.inf


def _runs(method, finals):
    return [{"method": method, "seed": s, "final_accuracy": a, "pass@1": a, "pass@4": a, "pass@8": a, "pass@16": a,
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
    assert table["sft_only"]["rl_exploration"] is None  # no RL step, no trace
    text = report.markdown(table, 0.55)
    assert text.count("\n") == 4 and "| rl_only | 0.650 [" in text and "compute to 0.55" in text


def test_a_methods_interval_does_not_depend_on_the_other_rows():
    # 12 distinct values: enough for the bootstrap percentiles to move with the random stream (one
    # stream shared across rows in order, as before, gave [0.3753, 1.3923] alone, [0.376, 1.396] after "a")
    x = [round(0.05 + 0.073 * i + 0.011 * i * i, 3) for i in range(12)]
    alone = report.summarize({"x": _runs("x", x)}, target=0.5)
    runs = {"a": _runs("a", [0.2, 0.3, 0.35, 0.6, 0.61]), "x": _runs("x", x)}
    together = report.summarize(runs, target=0.5)
    assert together["x"]["final_accuracy"]["ci95"] == alone["x"]["final_accuracy"]["ci95"]
    assert together["x"]["pass@16"]["ci95"] == alone["x"]["pass@16"]["ci95"]


def test_exploration_means_the_first_and_last_quarter_of_the_rl_steps():
    trace = [{"step": i, "entropy": float(i), "zero_var": 1.0 - i / 10, "reward": 0.0} for i in range(8)]
    out = report.exploration([trace, trace])
    # 8 RL steps: quarters of 2 -> entropy mean(0, 1) and mean(6, 7); zero_var 1 - those / 10
    assert out["entropy_first_quarter"] == pytest.approx(0.5)
    assert out["entropy_last_quarter"] == pytest.approx(6.5)
    assert out["zero_var_first_quarter"] == pytest.approx(0.95)
    assert out["zero_var_last_quarter"] == pytest.approx(0.35)
    assert out["sampled_entropy_first_quarter"] is None  # a run recorded before rollout/entropy
    sampled = [dict(r, sampled_entropy=2.0 * r["step"]) for r in trace]
    out = report.exploration([sampled, trace])  # only the seed that has it counts
    assert out["sampled_entropy_first_quarter"] == pytest.approx(1.0)
    assert out["sampled_entropy_last_quarter"] == pytest.approx(13.0)
    assert report.exploration([[], []]) is None


SMALL = ["model.d_model=32", "task.num_train=300", "task.num_test=16", "eval.num_examples=16",
         "sft.batch_size=16", "sft.warmup_steps=1", "rl.num_prompts=4", "rl.num_generations=4",
         "rl.max_new_tokens=16", "eval.max_new_tokens=16"]
PER_STEP = ("losses/sft", "losses/policy", "optim/grad_norm", "optim/lr", "rollout/reward_mean",
            "mix/sft_share", "mix/p_sft", "mix/grad_norm_ratio")


def test_a_run_from_the_shared_warm_up_is_the_run_from_step_zero(tmp_path):
    """sft_then_rl and adaptive (whose state after the warm-up is a gradient-norm average) continue
    from one shared warm-up exactly as when each trains its own: the same per-step metrics, final
    accuracy, pass@k and evaluation curve."""
    from graft.train.logging import read_metrics

    runs = {"sft_then_rl": ["mix.schedule=sft_then_rl", "sft.steps=6", "rl.steps=4"],
            "adaptive": ["mix.schedule=adaptive", "sft.steps=6", "rl.steps=8", "mix.adaptive_p_min=0.3",
                         "mix.adaptive_p_max=0.5"]}
    budget, work_a, work_b = 4e5, tmp_path / "own", tmp_path / "shared"
    warm = run.run_one("teacher", "warmup", 0, SMALL + runs["sft_then_rl"], 6, str(work_b), budget, warmup=6)
    assert warm is None and (run.warmup_dir(work_b, "teacher", 0) / "warmup.json").is_file()
    for name, overrides in runs.items():
        own = run.run_one("teacher", name, 0, SMALL + overrides, 6, str(work_a), budget)
        shared = run.run_one("teacher", name, 0, SMALL + overrides, 6, str(work_b), budget, shared=True)
        for key in ("final_accuracy", "start_accuracy", "steps", "compute", "mean_sft_share", "pass@1", "pass@16"):
            assert own[key] == shared[key], (name, key)
        assert [(p["step"], p["accuracy"]) for p in own["curve"]] == [(p["step"], p["accuracy"]) for p in shared["curve"]]
        assert own["rl_trace"] == shared["rl_trace"] and own["rl_trace"], name
        rows = [read_metrics(w / "teacher" / "runs" / f"{name}-s0" / "metrics.jsonl") for w in (work_a, work_b)]
        assert [{k: r.get(k) for k in PER_STEP} for r in rows[0]] == [{k: r.get(k) for k in PER_STEP} for r in rows[1]]
    kinds = [r["mix/sft_share"] for r in rows[0][6:]]  # adaptive drew both kinds of step after the warm-up
    assert 0.0 in kinds and 1.0 in kinds, kinds


def test_the_methods_that_share_the_warm_up(tmp_path):
    """Every schedule and every RL-only variant share sft_then_rl's warm-up; a shorter or longer
    warm-up or the baselines do not; a warm-up of another config is refused."""
    few = run.SETTINGS["few_demos"]
    shared = set(run.sharing(few, run.methods(few)))
    # the rows named +warmN set a warm-up of their own (and every row built on one)
    other_warmups = {n for n, _ in few.variants if "+warm" in n}
    assert {"sft_then_rl+warm400", "sft_then_rl+warm1200", "sft_then_rl+warm1500", "sft_then_rl+warm1200+skip",
            "sft_then_rl+warm1200+raft1e-4+g4"} <= other_warmups
    # ... and so do the baselines' variants (sft_only+wdW: weight decay, which SFT steps read)
    baselines = {n for n, _ in few.variants if n.split("+")[0] in ("sft_only", "rl_only")}
    assert "sft_only+wd1" in baselines
    assert shared == {*MIX_SCHEDULES, *(n for n, _ in few.variants)} - other_warmups - baselines
    budget = 4e5
    run.run_one("teacher", "warmup", 0, SMALL + ["sft.steps=4", "rl.steps=2"], 4, str(tmp_path), budget, warmup=4)
    with pytest.raises(SystemExit, match="sft"):  # another SFT learning rate: not the same warm-up
        run.run_one("teacher", "sft_then_rl", 0, SMALL + ["sft.steps=4", "rl.steps=2", "sft.lr=0.001"], 4,
                    str(tmp_path), budget, shared=True)


def test_the_results_file_is_the_same_json_with_one_line_a_run():
    runs = [{"method": "sft_only", "seed": s, "curve": [{"compute": 0.0, "accuracy": 0.1 * s}],
             "rl_trace": [{"step": 1, "entropy": None}]} for s in range(3)]
    result = {"bootstrap_reps": 10, "settings": {"a": {"table": {"sft_only": {"seeds": [0, 1, 2]}}, "runs": runs},
                                                  "b": {"table": {}, "runs": []}}}
    text = report.dumps(result)
    assert json.loads(text) == result
    lines = text.splitlines()
    assert sum('"method":"sft_only"' in line for line in lines) == 3  # each run on a line of its own
    assert '"seeds": [' in text  # the rest indented as before


def _recorded(tmp_path: Path) -> Path:
    """A results file in hybrid.json's form: two settings, runs of two methods on seeds 0-2."""
    runs = {"few_demos": [{"method": m, "seed": s, "final_accuracy": a}
                          for m, finals in (("sft_only", (0.5, 0.6, 0.4)), ("x", (0.6, 0.5, 0.7)))
                          for s, a in enumerate(finals)],
            "teacher": [{"method": "sft_only", "seed": 0, "final_accuracy": 0.3}]}
    result = {"bootstrap_reps": 10, "settings": {
        name: {"table": {}, "runs": rs, "notes": "a note" if name == "teacher" else "",
               "bench_wall_seconds": [12.5] if name == "teacher" else None} for name, rs in runs.items()}}
    path = tmp_path / "hybrid.json"
    path.write_text(report.dumps(result))
    return path


def test_restore_puts_the_recorded_runs_back_without_overwriting(tmp_path):
    recorded, work = _recorded(tmp_path), tmp_path / "work"
    (work / "few_demos" / "results").mkdir(parents=True)
    kept = work / "few_demos" / "results" / "x-s1.json"
    kept.write_text('{"method": "x", "seed": 1, "final_accuracy": 0.99}')  # a newer run: left alone
    assert report.restore(work, recorded) == 6  # 7 runs recorded, one already there
    assert json.loads(kept.read_text())["final_accuracy"] == 0.99
    loaded = report.load(work / "few_demos")
    assert [r["final_accuracy"] for r in loaded["x"]] == [0.6, 0.99, 0.7]  # by seed, as run.py writes them
    assert (work / "teacher" / "notes.txt").read_text() == "a note\n"
    assert (work / "teacher" / "bench_seconds.txt").read_text() == "12.5\n"
    assert not (work / "few_demos" / "notes.txt").exists()  # nothing recorded, nothing written
    assert report.restore(work, recorded) == 0  # a second restore writes nothing


pooled = load("hybrid/pooled.py")


def test_pooled_differences_are_per_seed_and_over_the_shared_seeds(tmp_path):
    first = _recorded(tmp_path)
    more = tmp_path / "more.json"  # seed 3 of both methods, and a seed 4 that only x has
    more.write_text(json.dumps({"settings": {"few_demos": {"runs": [
        {"method": "sft_only", "seed": 3, "final_accuracy": 0.45},
        {"method": "x", "seed": 3, "final_accuracy": 0.45}, {"method": "x", "seed": 4, "final_accuracy": 0.9}]}}}))
    acc = pooled.finals([first, more], "few_demos")
    assert acc["x"] == {0: 0.6, 1: 0.5, 2: 0.7, 3: 0.45, 4: 0.9}
    out = pooled.pooled(acc, ["x"], "sft_only")
    assert out["seeds"] == [0, 1, 2, 3]  # seed 4 has no baseline run to pair with
    d = out["methods"]["x"]["minus_sft_only"]
    # by hand: x - sft_only per seed = +0.1, -0.1, +0.3, 0.0; mean 0.075; ahead 2, behind 1, level 1
    assert d["per_seed"] == pytest.approx([0.1, -0.1, 0.3, 0.0])
    assert d["mean"] == pytest.approx(0.075)
    assert (d["seeds_ahead"], d["seeds_behind"]) == (2, 1)
    assert -0.1 <= d["ci95"][0] <= 0.075 <= d["ci95"][1] <= 0.3  # a bootstrap mean lies within the values
    # IQM of 4 values cuts one from each end: x (0.45, 0.5, 0.6, 0.7) -> mean(0.5, 0.6) = 0.55
    assert out["methods"]["x"]["iqm"] == pytest.approx(0.55)
    clash = tmp_path / "clash.json"  # the same seed recorded twice with another value is refused
    clash.write_text(json.dumps({"settings": {"few_demos": {"runs": [
        {"method": "x", "seed": 0, "final_accuracy": 0.1}]}}}))
    with pytest.raises(SystemExit, match="seed 0 differs"):
        pooled.finals([first, clash], "few_demos")
    # a labelled file's seeds are draws of their own, paired within that file
    acc = pooled.finals([first, clash, more], "few_demos", [None, "amd", None])
    assert acc["x"]["amd/0"] == 0.1 and acc["x"][0] == 0.6
    amd_baseline = tmp_path / "amd.json"
    amd_baseline.write_text(json.dumps({"settings": {"few_demos": {"runs": [
        {"method": "sft_only", "seed": 0, "final_accuracy": 0.3}]}}}))
    acc = pooled.finals([first, more, clash, amd_baseline], "few_demos", [None, None, "amd", "amd"])
    out = pooled.pooled(acc, ["x"], "sft_only")
    assert out["seeds"] == [0, 1, 2, 3, "amd/0"]
    assert out["methods"]["x"]["minus_sft_only"]["per_seed"] == pytest.approx([0.1, -0.1, 0.3, 0.0, -0.2])
