"""bench/user_task.py: the two user tasks' teachers, the summary's arithmetic, and one tiny run end to end."""

import json
import random
import sys
from collections import defaultdict

import pytest
from bench_scripts import load


@pytest.fixture(scope="module")
def ut():
    return load("user_task.py")


def test_reverse_teacher_slips_by_one_neighbour_swap_more_often_on_longer_words(ut):
    rows = ut.reverse_rows(random.Random(0))
    assert len(rows) == ut.ROWS and len({r["prompt"] for r in rows}) == ut.ROWS
    wrong = defaultdict(list)
    for r in rows:
        word = r["prompt"][len("reverse "):-1]
        assert r["answer"] == word[::-1]
        demo, answer = r["demonstration"], r["answer"]
        diff = [i for i in range(len(answer)) if demo[i] != answer[i]]
        assert len(demo) == len(answer) and diff in ([], [diff[0], diff[0] + 1] if diff else [])
        if diff:
            i = diff[0]
            assert (demo[i], demo[i + 1]) == (answer[i + 1], answer[i])
        wrong[len(word)].append(bool(diff))
    for length, flags in wrong.items():  # p = 0.15 x (length - 3), ~1,500 words a length
        assert sum(flags) / len(flags) == pytest.approx(0.15 * (length - 3), abs=0.05)


def test_sort_teacher_drops_repeats_only_where_digits_repeat(ut):
    rows = ut.sort_rows(random.Random(0))
    dropped = repeats = 0
    for r in rows:
        digits = r["prompt"][len("sort "):-1]
        assert r["answer"] == "".join(sorted(digits))
        if len(set(digits)) == len(digits):
            assert r["demonstration"] == r["answer"]
            continue
        repeats += 1
        assert r["demonstration"] in (r["answer"], "".join(sorted(set(digits))))
        dropped += r["demonstration"] != r["answer"]
    assert dropped / repeats == pytest.approx(0.5, abs=0.03)


def test_summarise_counts_gains_and_pairs_the_control_by_seed(ut):
    runs = [{"seed": s, "gain": g, "accuracy_after_rl": a}
            for s, g, a in [(0, 0.1, 0.5), (1, -0.02, 0.4), (2, 0.0, 0.6)]]
    control = [{"seed": 2, "accuracy_after_rl": 0.5}, {"seed": 0, "accuracy_after_rl": 0.55},
               {"seed": 1, "accuracy_after_rl": 0.4}]
    out = ut.summarise(runs, control)
    assert out["gained_on"] == 1 and out["seeds"] == 3 and out["min_gain"] == -0.02
    assert out["control"]["rl_minus_control"] == pytest.approx([-0.05, 0.0, 0.1])
    assert out["control"]["rl_ahead_on"] == 1
    lo, hi = out["gain_iqm"]["ci95"]
    assert lo <= out["gain_iqm"]["iqm"] <= hi


def test_one_tiny_run_per_profile_and_its_control(ut, tmp_path, monkeypatch):
    out = tmp_path / "user.json"
    tiny = ["threads=1", "model.d_model=16", "model.n_layers=1", "model.n_heads=2", "task.num_train=64",
            "task.num_test=8", "eval.num_examples=8", "sft.batch_size=8", "rl.steps=2",
            "rl.num_prompts=2", "rl.num_generations=2", "rl.max_new_tokens=8", "eval.max_new_tokens=8"]
    argv = ["user_task.py", "--tasks", "sort", "--seeds", "0", "--control", "--sft-steps", "2",
            "--curve-every", "1", "--work", str(tmp_path / "w"), "--out", str(out), "--plot", str(tmp_path / "c.png")]
    for kv in tiny:
        argv += ["--set", kv]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(ut, "CONTROL_EXTRA", 1)  # the control's shape at test size: 2 + 1 SFT steps, no RL
    ut.main()
    result = json.loads(out.read_text())
    entry = result["tasks"]["sort"]
    assert entry["teacher_accuracy"] == pytest.approx(0.5612, abs=1e-4)
    for profile in ut.PROFILES:
        p = entry["profiles"][profile]
        run = p["runs"][0]
        summary = json.loads((tmp_path / "w" / "sort" / f"{profile}+sft2" / "seed0" / "summary.json").read_text())
        assert run["gain"] == pytest.approx(summary["accuracy_after_rl"] - summary["accuracy_after_sft"])
        assert set(run["rl_signals"]) == {"rollout/entropy", "rollout/zero_var_frac", "rollout/accuracy"}
        control_dir = tmp_path / "w" / "sort" / f"{profile}+sft3" / "seed0"
        control = json.loads((control_dir / "summary.json").read_text())
        assert p["control"]["rl_minus_control"] == [pytest.approx(run["accuracy_after_rl"] - control["accuracy_after_rl"])]
        steps = [json.loads(line)["step"] for line in (control_dir / "metrics.jsonl").read_text().splitlines()]
        assert steps == [0, 1, 2]  # SFT only, for the control's 3 steps (metrics count from 0)
        assert [step for step, _ in p["control"]["runs"][0]["curve"]] == [0, 1, 2]  # --curve-every 1
        assert p["control"]["overrides"] == ["sft.steps=3", "rl.steps=0"]
    # the defaults profile's config names nothing but the task: graft's defaults reach the run
    # (the quickstart's own sft.lr, 0.002, does not)
    import yaml

    for profile, sft_lr in (("defaults", 1e-3), ("quickstart", 2e-3)):
        cfg = yaml.safe_load((tmp_path / "w" / "sort" / f"{profile}+sft2" / "seed0" / "config.yaml").read_text())
        assert cfg["sft"]["lr"] == sft_lr and cfg["rl"]["lr"] == 3e-5 and cfg["task"]["name"] == "jsonl"
        assert cfg["rl"]["num_prompts"] == 2  # the tiny override wins over both
    assert result["overrides"] == tiny and result["sft_steps"] == 2
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_replot_draws_a_finished_result_without_running_and_names_a_bad_file(ut, tmp_path, monkeypatch, capsys):
    result = {"sft_steps": 2, "tasks": {"sort": {"teacher_accuracy": 0.56, "profiles": {"defaults": {
        "runs": [{"seed": 0, "accuracy_after_sft": 0.2, "accuracy_after_rl": 0.4}],
        "control": {"runs": [{"seed": 0, "accuracy_after_rl": 0.3, "curve": [[0, 0.1], [2, 0.3]]}]}}}}}}
    src = tmp_path / "r.json"
    src.write_text(json.dumps(result))
    monkeypatch.setattr(sys, "argv", ["user_task.py", "--replot", str(src), "--plot", str(tmp_path / "c.png"),
                                      "--work", str(tmp_path / "w")])
    ut.main()
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "w").exists()  # nothing was run or written
    (tmp_path / "bad.json").write_text("{}")
    monkeypatch.setattr(sys, "argv", ["user_task.py", "--replot", str(tmp_path / "bad.json"), "--plot",
                                      str(tmp_path / "d.png")])
    with pytest.raises(SystemExit) as exc:
        ut.main()
    assert exc.value.code == 2 and "bad.json" in capsys.readouterr().err


def test_pass_k_evaluates_the_sft_end_and_final_checkpoints_with_graft_eval(ut, tmp_path, monkeypatch):
    assert ut.pass_ks(16) == [1, 4, 16] and ut.pass_ks(2) == [1, 2] and ut.pass_ks(8) == [1, 4, 8]
    out = tmp_path / "user.json"
    tiny = ["threads=1", "model.d_model=16", "model.n_layers=1", "model.n_heads=2", "task.num_train=64",
            "task.num_test=8", "eval.num_examples=8", "sft.batch_size=8", "rl.steps=2",
            "rl.num_prompts=2", "rl.num_generations=2", "rl.max_new_tokens=8", "eval.max_new_tokens=8"]
    argv = ["user_task.py", "--tasks", "sort", "--profiles", "defaults", "--seeds", "0-1", "--control",
            "--sft-steps", "2", "--pass-k", "2", "--work", str(tmp_path / "w"), "--out", str(out)]
    for kv in tiny:
        argv += ["--set", kv]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(ut, "CONTROL_EXTRA", 1)
    ut.main()
    p = json.loads(out.read_text())["tasks"]["sort"]["profiles"]["defaults"]
    for run in p["runs"]:
        pk = run["pass_at_k"]
        # graft eval's greedy pass on the SFT-end checkpoint and the last one is the training run's own
        assert pk["after_sft"]["accuracy"] == pytest.approx(run["accuracy_after_sft"], abs=1e-4)
        assert pk["after_rl"]["accuracy"] == pytest.approx(run["accuracy_after_rl"], abs=1e-4)
        for point in pk.values():
            assert point["pass@1"] == pytest.approx(point["sampled_accuracy"], abs=1e-4)
            assert point["pass@1"] <= point["pass@2"] <= 1
        ckpts = sorted(d.name for d in (tmp_path / "w" / "sort" / "defaults+sft2" / f"seed{run['seed']}" / "checkpoints").iterdir())
        assert ckpts == ["step_2", "step_4"]  # only the end of SFT and the end (checkpoint.every)
    for c in p["control"]["runs"]:
        assert c["pass_at_k"]["end"]["accuracy"] == pytest.approx(c["accuracy_after_rl"], abs=1e-4)
    iqm = p["pass_at_k_iqm"]
    assert set(iqm) == {"after_sft", "after_rl", "control"}
    values = [r["pass_at_k"]["after_rl"]["pass@2"] for r in p["runs"]]
    assert min(values) <= iqm["after_rl"]["pass@2"]["iqm"] <= max(values)
    # reused, not re-run: a second call reads every evaluation back
    ut.main()
    assert json.loads(out.read_text())["tasks"]["sort"]["profiles"]["defaults"]["pass_at_k_iqm"] == iqm
