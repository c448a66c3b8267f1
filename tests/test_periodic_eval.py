"""`eval.every` / `eval.sampled_every`: periodic held-out accuracy that changes no training number,
measures the weights after the steps it names, and repeats exactly on resume."""

import json
from pathlib import Path

import pytest
import torch
from killed_runs import Trainer

from graft.config import build_config
from graft.eval.evaluate import evaluate_periodic, periodic_seed
from graft.models.load import load_saved_policy
from graft.step_stats import TIMING_KEYS
from graft.tasks.build import build_task
from graft.train.logging import read_metrics
from graft.train.loop import bind_tokenizer, prepare, train

TIMING = TIMING_KEYS  # wall-clock keys (graft.step_stats)
PERIODIC = ["eval.every=2", "eval.sampled_every=4"]


def _train(run_dir: Path, overrides: list[str]) -> tuple[dict, list[dict]]:
    summary = train(prepare(build_config({}, overrides)), run_dir)
    return summary, read_metrics(run_dir / "metrics.jsonl")


def _training_part(rows: list[dict]) -> list[dict]:
    """Every logged number except wall-clock timings and evaluations."""
    return [{k: v for k, v in r.items() if k not in TIMING and not k.startswith("eval/")} for r in rows]


def test_periodic_eval_changes_no_training_number(tmp_path, tiny_overrides):
    keep = ["checkpoint.keep=10"]  # every checkpoint stays, to be evaluated independently below
    plain_summary, plain = _train(tmp_path / "plain", tiny_overrides + keep)
    summary, rows = _train(tmp_path / "periodic", tiny_overrides + keep + PERIODIC)

    assert _training_part(rows) == _training_part(plain)  # exactly: bit for bit
    assert rows[3]["eval/accuracy"] == plain[3]["eval/accuracy"]  # the after-SFT evaluation
    for name in ("step_4", "step_8"):
        a = load_saved_policy(tmp_path / "plain" / "checkpoints" / name / "model").module.state_dict()
        b = load_saved_policy(tmp_path / "periodic" / "checkpoints" / name / "model").module.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert {k: v for k, v in summary.items() if k != "wall_seconds"} == \
        {k: v for k, v in plain_summary.items() if k != "wall_seconds"}

    # 8 steps (4 SFT + 4 RL): greedy after 2, 4, 6, 8 steps, sampled after 4 and 8, each on the row
    # of the step that completes them (row index = steps done - 1)
    greedy_rows = [r["step"] for r in rows if "eval/completion_len" in r]
    sampled_rows = [r["step"] for r in rows if "eval/sampled_accuracy" in r]
    assert greedy_rows == [1, 3, 5, 7] and sampled_rows == [3, 7]
    assert not any(k.startswith("eval/") and k != "eval/accuracy" for r in plain for k in r)
    files = sorted(p.name for p in (tmp_path / "periodic" / "eval").glob("step_*.json"))
    assert files == ["step_2.json", "step_4.json", "step_6.json", "step_8.json"]
    assert not list((tmp_path / "plain" / "eval").glob("step_*.json"))

    by_row = {r["step"]: r for r in rows}
    for done in (2, 4, 6, 8):
        saved = json.loads((tmp_path / "periodic" / "eval" / f"step_{done}.json").read_text())
        assert saved["kind"] == "periodic" and saved["step"] == done and saved["n"] == 16
        assert saved["accuracy"] == by_row[done - 1]["eval/accuracy"]
        assert saved["completion_len"] == by_row[done - 1]["eval/completion_len"]
        assert ("sampled_accuracy" in saved) == (done % 4 == 0)
    # the same weights, evaluated by the other evaluations: after SFT (4 steps), at the end (8)
    after_sft = json.loads((tmp_path / "periodic" / "eval" / "after_sft.json").read_text())
    final = json.loads((tmp_path / "periodic" / "eval" / "final.json").read_text())
    assert by_row[3]["eval/accuracy"] == after_sft["accuracy"]
    assert by_row[7]["eval/accuracy"] == final["accuracy"]
    assert by_row[7]["eval/completion_len"] == final["completion_len"]

    # independently: each checkpoint's weights, evaluated on their own, give the logged values
    cfg = build_config({}, tiny_overrides)
    task = build_task(cfg.task)
    for done in (2, 4, 6, 8):
        policy = load_saved_policy(tmp_path / "periodic" / "checkpoints" / f"step_{done}" / "model")
        bind_tokenizer(task, policy)
        again = evaluate_periodic(policy, task, cfg.eval, cfg.seed, done, greedy=True, sampled=True)
        assert again["accuracy"] == by_row[done - 1]["eval/accuracy"], done
        if done % 4 == 0:
            assert again["sampled_accuracy"] == by_row[done - 1]["eval/sampled_accuracy"], done
            assert again["sampled_completion_len"] == by_row[done - 1]["eval/sampled_completion_len"], done


def test_periodic_seed_depends_on_seed_and_step_only():
    assert periodic_seed(0, 4) == periodic_seed(0, 4)
    seeds = {periodic_seed(s, k) for s in range(3) for k in range(1, 6)}
    assert len(seeds) == 15  # no two (seed, step) pairs share a stream


@pytest.mark.parametrize("key", ["eval.every", "eval.sampled_every"])
def test_negative_interval_is_refused_naming_the_key(key):
    from graft.config import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_config({}, [f"{key}=-1"])



def test_sigkill_then_resume_logs_the_same_periodic_evals(tmp_path, tiny_overrides):
    """Killed twice (in SFT, in RL) and resumed: the same eval/* values at the same steps, the same
    eval/step_N.json files, as an uninterrupted run. checkpoint.every=3 is not a multiple of
    eval.every=2, so a resume redoes steps, and evaluations, logged after its checkpoint."""
    overrides = tiny_overrides + ["checkpoint.every=3", "eval.every=2", "eval.sampled_every=3"]
    trainer = Trainer(tmp_path, overrides)
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    reference = trainer.run(ref_dir)

    for kill_after in (2, 5):  # in SFT (before checkpoint 3), in RL (after 3, before 6)
        trainer.kill_after(cut_dir, kill_after)
    resumed = trainer.run(cut_dir, resume=True)

    def evals(rows):
        return [(r["step"], {k: v for k, v in r.items() if k.startswith("eval/")}) for r in rows
                if any(k.startswith("eval/") for k in r)]

    assert [r["step"] for r in resumed] == [r["step"] for r in reference]
    assert [s for s, _ in evals(reference)] == [1, 2, 3, 5, 7]  # after 2, 3, 4 (+SFT), 6, 8 steps
    assert evals(resumed) == evals(reference)
    for want, got in zip(reference, resumed):
        for key in ("losses/sft", "losses/policy", "rollout/accuracy", "optim/grad_norm"):
            if key in want:
                assert abs(want[key] - got[key]) <= 1e-6, (want["step"], key)
    names = sorted(p.name for p in (ref_dir / "eval").glob("step_*.json"))
    assert names == sorted(p.name for p in (cut_dir / "eval").glob("step_*.json"))
    assert names == ["step_2.json", "step_3.json", "step_4.json", "step_6.json", "step_8.json"]
    for name in names:
        assert json.loads((cut_dir / "eval" / name).read_text()) == \
            json.loads((ref_dir / "eval" / name).read_text()), name
