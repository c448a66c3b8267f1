"""`graft eval --k`, compare, compare --adastop (--run-next), seeds, fit, contamination and report on
tiny real runs and on fake runs with chosen numbers; bad input gives one `error:` line and exit 2."""

import json

import numpy as np
import pytest
import yaml
from conftest import TINY
from fakes import fake_run

from graft.cli import main
from graft.eval.scaling import scalerl_curve
from graft.eval.seeds import parse_seeds, train_seeds


def error_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Two configs (names a, b) x two seeds of a shortened tiny training run (~2 s each)."""
    root = tmp_path_factory.mktemp("runs")
    config = root / "c.yaml"
    config.write_text("seed: 0\n")
    for name in ("a", "b"):
        train_seeds(config, [0, 1], root, [*TINY, "threads=1", f"name={name}", "rl.steps=2",
                                           "eval.num_examples=8"])
    return root


def test_eval_with_k_writes_pass_and_maj(tiny_runs, capsys):
    run = tiny_runs / "a-seed0"
    assert main(["eval", str(run), "--k", "1,2", "--num-examples", "8"]) == 0
    out = capsys.readouterr().out
    assert "pass@2" in out and "maj@2" in out
    result = json.loads((run / "eval" / "step_6.json").read_text())
    assert result["samples"] == 2 and result["k"] == [1, 2] and result["n"] == 8
    assert set(result["by_difficulty"]) == {"2"}  # arithmetic at one difficulty: one row
    assert 0.0 <= result["pass@1"] <= result["pass@2"] <= 1.0
    # by default (--k 1, one sample) graft eval repeats the end-of-training evaluation exactly
    other = tiny_runs / "b-seed1"
    assert main(["eval", str(other)]) == 0
    again, final = (json.loads((other / "eval" / f).read_text()) for f in ("step_6.json", "final.json"))
    for key in ("n", "accuracy", "sampled_accuracy", "completion_len"):
        assert again[key] == final[key], key


def test_compare_and_report_on_tiny_runs(tiny_runs, tmp_path, capsys):
    plot = tmp_path / "cmp.png"
    assert main(["compare", str(tiny_runs), "--plot", str(plot), "--reps", "500"]) == 0
    out = capsys.readouterr().out
    assert "IQM" in out and "probability of improvement" in out
    assert plot.stat().st_size > 1000
    report = tmp_path / "report.html"
    assert main(["report", str(tiny_runs), "--out", str(report)]) == 0
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 6 and "<script" not in page and "http" not in page


def test_compare_numbers_on_fake_runs(tmp_path, capsys):
    for seed, acc in enumerate([0.5, 0.6, 0.7, 0.8]):
        fake_run(tmp_path, "low", seed, acc - 0.3)
        fake_run(tmp_path, "high", seed, acc)
    summary = tmp_path / "s.json"
    assert main(["compare", str(tmp_path), "--plot", "", "--json", str(summary), "--reps", "2000"]) == 0
    data = json.loads(summary.read_text())
    assert data["sources"] == ["summary.json:accuracy_after_rl"]
    high = data["groups"]["high"]
    assert high["seeds"] == 4
    assert high["iqm"][0] == pytest.approx(0.65, abs=1e-12)  # trim 1 of 4 each end: mean(0.6, 0.7)
    assert high["mean"][0] == pytest.approx(0.65, abs=1e-12)
    assert high["optimality_gap"] == pytest.approx(0.35, abs=1e-12)
    # 16 pairs, high > low in all but (0.5 vs 0.5): 0.5 credit... high 0.5 vs low 0.5 (=0.8-0.3) tie
    assert data["improvement"]["high > low"][0] == pytest.approx((15 + 0.5) / 16, abs=1e-12)
    assert "note:" in capsys.readouterr().err  # fewer than 5 seeds: the intervals are rough


def test_adastop_decides_separated_groups(tmp_path, capsys):
    for seed in range(4):
        fake_run(tmp_path, "low", seed, 0.1 + 0.01 * seed)
        fake_run(tmp_path, "high", seed, 0.8 + 0.01 * seed)
    assert main(["compare", str(tmp_path), "--adastop", "--n", "4", "--K", "2"]) == 0
    out = capsys.readouterr().out
    assert "high > low" in out  # rejected at the first interim: 4 seeds each were enough


def test_adastop_asks_for_more_seeds_then_trains_them(tmp_path, capsys):
    # one seed per interim: nothing can be rejected at the first (2 relabellings), so AdaStop asks for
    # the next batch; --run-next trains it from each group's own config (real tiny runs)
    fake_run(tmp_path, "a", 0, 0.0)
    fake_run(tmp_path, "b", 0, 0.0)
    argv = ["compare", str(tmp_path), "--adastop", "--n", "1", "--K", "2"]
    assert main(argv) == 0
    assert "more seeds needed for interim 2 of 2 (1 per group): a: seeds 1; b: seeds 1" in capsys.readouterr().err
    assert main([*argv, "--run-next"]) == 0
    captured = capsys.readouterr()
    assert "training the next batch: a: seeds 1; b: seeds 1" in captured.err
    assert (tmp_path / "b-seed1" / "summary.json").is_file()
    assert "more seeds needed" not in captured.err  # the second interim is the last: decided
    assert "a = b" in captured.out


def test_fit_on_fake_runs(tmp_path, capsys):
    steps = np.arange(1, 61)
    compute = steps * 10.0 * 4 * 4  # completion_len x rl.num_prompts x rl.num_generations (TINY)
    rng = np.random.default_rng(0)
    for seed in range(2):
        curve = scalerl_curve(compute, A=0.7, B=2.0, C_mid=800.0, R0=0.2) + rng.normal(0, 0.01, 60)
        fake_run(tmp_path, "m", seed, 0.5, curve=np.clip(curve, 0, 1))
    plot = tmp_path / "fit.png"
    assert main(["fit", str(tmp_path), "--plot", str(plot), "--reps", "50"]) == 0
    out = capsys.readouterr().out
    assert "0.70" in out  # the asymptote A (R0 fixed to sampled_accuracy_after_sft = 0.2)
    assert plot.stat().st_size > 1000


def test_contamination_cli(tmp_path, capsys):
    f = tmp_path / "train.jsonl"
    f.write_text('{"prompt": "1+1=", "answer": "2"}\n{"prompt": "2+2=", "answer": "4"}\n')
    g = tmp_path / "test.jsonl"
    g.write_text('{"prompt": "1+1=", "answer": "2"}\n{"prompt": "3+3=", "answer": "6"}\n')
    assert main(["contamination", "--train", str(f), "--test", str(g)]) == 0
    assert "0.5000" in capsys.readouterr().out


def test_parse_seeds():
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]


@pytest.mark.parametrize("argv,expect", [
    (["compare", "EMPTY"], "holds no runs"),
    (["compare", "MISSING"], "no such run directory"),
    (["report", "EMPTY"], "holds no runs"),
    (["fit", "EMPTY"], "holds no runs"),
    (["contamination", "--train", "MISSING.jsonl", "--test", "arithmetic"], "no such file"),
    (["seeds", "c.yaml", "--seeds", "x"], "expected e.g. 0-4"),
])
def test_bad_paths(tmp_path, capsys, argv, expect):
    (tmp_path / "EMPTY").mkdir()
    argv = [str(tmp_path / a) if a in ("EMPTY", "MISSING", "MISSING.jsonl") else a for a in argv]
    assert expect in error_line(capsys, argv)


def test_one_seed_only_is_refused_with_the_point_estimate(tmp_path, capsys):
    fake_run(tmp_path, "solo", 0, 0.42)
    fake_run(tmp_path, "pair", 0, 0.5)
    fake_run(tmp_path, "pair", 1, 0.6)
    line = error_line(capsys, ["compare", str(tmp_path), "--plot", ""])
    assert "need >= 2 seeds" in line and "solo: seed 0, accuracy 0.4200" in line


def test_runs_with_different_metrics_or_tasks_are_refused(tmp_path, capsys):
    fake_run(tmp_path / "x", "a", 0, 0.5)
    fake_run(tmp_path / "x", "a", 1, None)  # unfinished: no summary.json
    assert "has no metric 'accuracy'" in error_line(capsys, ["compare", str(tmp_path / "x")])
    fake_run(tmp_path / "y", "a", 0, 0.5)
    fake_run(tmp_path / "y", "a", 1, 0.5, difficulty=3)
    assert "different held-out sets (task.difficulty" in error_line(capsys, ["compare", str(tmp_path / "y")])
    fake_run(tmp_path / "z", "a", 0, 0.5, metrics=False)
    assert "no metrics in" in error_line(capsys, ["report", str(tmp_path / "z")])
    assert "pass@4" in error_line(capsys, ["compare", str(tmp_path / "y" / "a-seed0"), "--metric", "pass@4"])


def test_fit_without_rl_steps_and_adastop_with_one_group(tmp_path, capsys):
    fake_run(tmp_path, "a", 0, 0.5, curve=[])
    assert "no RL steps" in error_line(capsys, ["fit", str(tmp_path), "--plot", ""])
    fake_run(tmp_path, "a", 1, 0.5)
    assert "at least two groups" in error_line(capsys, ["compare", str(tmp_path), "--adastop"])


def test_same_seed_twice_in_a_group_is_refused(tmp_path, capsys):
    fake_run(tmp_path / "p", "a", 0, 0.5)
    fake_run(tmp_path / "q", "a", 0, 0.6)
    line = error_line(capsys, ["compare", str(tmp_path / "p"), str(tmp_path / "q")])
    assert "seeds are the repetitions" in line


def test_fake_run_config_is_a_real_config(tmp_path):
    run = fake_run(tmp_path, "a", 3, 0.5)
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 3


def test_compare_reads_eval_files(tmp_path, capsys):
    for seed in range(2):
        for name, value in (("x", 0.4 + 0.1 * seed), ("y", 0.7 + 0.1 * seed)):
            run = fake_run(tmp_path, name, seed, 0.5)
            (run / "eval").mkdir()
            (run / "eval" / "step_2.json").write_text(json.dumps({"pass@4": 0.0}))
            (run / "eval" / "step_10.json").write_text(json.dumps({"pass@4": value}))  # the newest
    out_json = tmp_path / "o.json"
    plot = tmp_path / "p.png"
    assert main(["compare", str(tmp_path), "--metric", "pass@4", "--json", str(out_json), "--plot", str(plot),
                 "--reps", "200"]) == 0
    data = json.loads(out_json.read_text())
    assert data["sources"] == ["eval/step_10.json"]
    assert data["groups"]["y"]["mean"][0] == pytest.approx(0.75, abs=1e-12)
    assert data["improvement"]["y > x"][0] == 1.0
    assert plot.stat().st_size > 1000


def test_compare_does_not_read_periodic_evaluations(tmp_path, capsys):
    """An unfinished run's periodic eval/step_N.json (eval.every) is not its result: compare refuses it."""
    fake_run(tmp_path, "a", 0, 0.5)
    run = fake_run(tmp_path, "a", 1, None)  # unfinished: no summary.json
    (run / "eval").mkdir()
    (run / "eval" / "step_4.json").write_text(json.dumps({"kind": "periodic", "step": 4, "accuracy": 0.9}))
    assert "has no metric 'accuracy'" in error_line(capsys, ["compare", str(tmp_path), "--plot", ""])
    # the same file written by `graft eval` (no "kind") is a result
    (run / "eval" / "step_4.json").write_text(json.dumps({"accuracy": 0.9}))
    out_json = tmp_path / "o.json"
    assert main(["compare", str(tmp_path), "--plot", "", "--json", str(out_json), "--reps", "100"]) == 0
    assert json.loads(out_json.read_text())["groups"]["a"]["scores"] == [0.5, 0.9]
