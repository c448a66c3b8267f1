"""bench/time_to_target.py's own logic: the accuracy curve, time to target and the speed-up (with bounds)."""

from pathlib import Path

import pytest
from bench_scripts import BENCH, load

ttt = load("time_to_target.py")
POINTS = [{"step": 10, "wall_s": 20.0, "path": "b"}, {"step": 5, "wall_s": 9.0, "path": "a"},
          {"step": 15, "wall_s": 31.0, "path": "c"}]
SCORES = {"start": {"accuracy": 0.6, "sampled_accuracy": 0.4}, "a": {"accuracy": 0.70, "sampled_accuracy": 0.5},
          "b": {"accuracy": 0.82, "sampled_accuracy": 0.55}, "c": {"accuracy": 0.80, "sampled_accuracy": 0.6}}


def test_curve_starts_at_the_shared_start_and_follows_step_order():
    curve = ttt.accuracy_curve(POINTS, SCORES, "start")
    assert curve == [{"step": 0, "wall_s": 0.0, "accuracy": 0.6, "sampled_accuracy": 0.4},
                     {"step": 5, "wall_s": 9.0, "accuracy": 0.7, "sampled_accuracy": 0.5},
                     {"step": 10, "wall_s": 20.0, "accuracy": 0.82, "sampled_accuracy": 0.55},
                     {"step": 15, "wall_s": 31.0, "accuracy": 0.8, "sampled_accuracy": 0.6}]


def test_time_to_target_is_the_first_checkpoint_at_or_above_it():
    curve = ttt.accuracy_curve(POINTS, SCORES, "start")
    assert ttt.time_to_target(curve, 0.55, "sampled_accuracy") == {"reached": True, "wall_s": 20.0, "step": 10}
    assert ttt.time_to_target(curve, 0.8) == {"reached": True, "wall_s": 20.0, "step": 10}  # not step 15's 31 s
    assert ttt.time_to_target(curve, 0.7) == {"reached": True, "wall_s": 9.0, "step": 5}  # >= counts
    assert ttt.time_to_target(curve, 0.6)["wall_s"] == 0.0  # the start itself
    assert ttt.time_to_target(curve, 0.9) == {"reached": False, "wall_s": None, "step": None, "budget_wall_s": 31.0}


def test_speedup_is_exact_when_both_reach_and_a_bound_otherwise():
    graft = {"reached": True, "wall_s": 10.0, "step": 5}
    trl = {"reached": True, "wall_s": 55.0, "step": 20}
    assert ttt.speedup(graft, trl) == {"ratio": 5.5, "bound": "="}
    trl_miss = {"reached": False, "wall_s": None, "step": None, "budget_wall_s": 80.0}
    assert ttt.speedup(graft, trl_miss) == {"ratio": 8.0, "bound": ">"}  # TRL's time is > its budget
    graft_miss = {"reached": False, "wall_s": None, "step": None, "budget_wall_s": 40.0}
    assert ttt.speedup(graft_miss, trl) == {"ratio": 55.0 / 40.0, "bound": "<"}
    assert ttt.speedup(graft_miss, trl_miss)["ratio"] is None
    at_start = {"reached": True, "wall_s": 0.0, "step": 0}
    assert ttt.speedup(at_start, at_start)["ratio"] is None


def test_bad_options_name_the_flag(capsys):
    with pytest.raises(SystemExit):
        ttt.parse_args(["--save-every", "0"])
    assert "--save-every must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ttt.parse_args(["--target", "1.5"])
    assert "--target" in capsys.readouterr().err


def test_graft_run_gets_the_core_hyperparameters_shared_with_trl():
    from graft.config import load_config

    args = ttt.parse_args(["--rl-steps", "7", "--lr", "1e-4", "--clip-high", "0.3", "--num-prompts", "4",
                           "--graft-set", "optim.sort_by_length=true"])
    cfg = load_config(args.graft_config, ttt.rl_overrides(args, Path("START")) + ttt._task_section(args))
    assert (cfg.rl.steps, cfg.rl.lr, cfg.algo.clip_high, cfg.rl.num_prompts) == (7, 1e-4, 0.3, 4)
    assert cfg.sft.steps == 0 and cfg.algo.kl == "none" and cfg.optim.sort_by_length
    assert cfg.checkpoint.every > cfg.rl.steps  # graft's own checkpoints stay out of the timed steps
    assert cfg.model.path == "START"


def test_trl_reward_is_graft_arithmetic_verifier_rule():
    from graft.tasks.arithmetic import ArithmeticTask

    task = ArithmeticTask(difficulty=2, num_train=20, num_test=5)
    ex = task.train_examples()[0]
    right = ex.answer
    completions = [ex.demonstration, f"A:{right}", f"A:   {right} junk", f"A:0{right}", f"x A:{right}1",
                   "A:", "", f"{right}", f"A:{right}" + " " * 600, " " * 510 + f"A:{right}",
                   f"A:-{right}", f"A:9 A:{right}", f"1+2=3,A:{right}\n"]
    trl_side = load("trl_side.py")
    got = trl_side.arithmetic_reward(completions, [right] * len(completions))
    want = [task.score(ex, c).reward for c in completions]
    assert got == want
    assert 0 < sum(want) < len(want)  # both verdicts occur


def test_results_record_paths_relative_to_the_repo(tmp_path):
    """The committed results must not name the machine's directories (tests/test_committed_paths.py)."""
    root = BENCH.parent
    args = ttt.parse_args(["--trl-python", str(root / "bench" / ".venv-trl" / "bin" / "python"),
                          "--out", str(tmp_path / "x.json")])
    options = ttt.recorded_options(args)
    assert options["config"] == options["graft_config"] == "src/graft/configs/quickstart.yaml"  # the defaults
    assert options["trl_python"] == "bench/.venv-trl/bin/python"
    assert options["out"] == "<outside the repo>/x.json"
    assert options["threads"] == args.threads  # the other options as they are
    assert ttt.repo_relative(None) is None


def test_seeds_summary_is_the_median_with_the_bound_the_seeds_allow():
    exact = [{"ratio": r, "bound": "="} for r in (2.0, 5.0, 3.0)]
    assert ttt.summarise_speedups(exact) == {"ratios": [2.0, 5.0, 3.0], "bounds": ["="] * 3, "median": 3.0,
                                             "bound": "=", "min": 2.0, "max": 5.0}
    lower = ttt.summarise_speedups([{"ratio": 2.0, "bound": "="}, {"ratio": 4.0, "bound": ">"},
                                    {"ratio": 1.5, "bound": "="}, {"ratio": 6.0, "bound": ">"}])
    assert (lower["median"], lower["bound"]) == (3.0, ">")  # the true median is at least 3
    upper = ttt.summarise_speedups([{"ratio": 2.0, "bound": "<"}, {"ratio": 1.0, "bound": "="}])
    assert (upper["median"], upper["bound"]) == (1.5, "<")
    both = ttt.summarise_speedups([{"ratio": 2.0, "bound": "<"}, {"ratio": 1.0, "bound": ">"}])
    assert both["median"] is None and both["bound"] == "seeds bound it from both sides"
    missing = ttt.summarise_speedups([{"ratio": None, "bound": "neither reached the target"}])
    assert missing["median"] is None


def test_seeds_option_lists_whole_measurements(capsys):
    assert ttt.parse_args(["--seeds", "0,1,2"]).seeds == [0, 1, 2]
    assert ttt.parse_args(["--seed", "4"]).seeds == [4]
    with pytest.raises(SystemExit):
        ttt.parse_args(["--seeds", "0,x"])
    assert "--seeds must be a comma list" in capsys.readouterr().err
