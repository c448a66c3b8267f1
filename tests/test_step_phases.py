"""perf/*_time: an RL step's wall time by stage (issue 16's per-phase breakdown, graft's side)."""

import pytest

from graft.config import build_config
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train


def _rl_rows(tmp_path, overrides: list[str]) -> list[dict]:
    cfg = build_config({}, overrides + ["sft.steps=0", "rl.steps=2"])
    train(prepare(cfg), tmp_path / "run")
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "losses/policy" in r]
    assert len(rows) == 2
    return rows


@pytest.mark.parametrize("strategy", [
    [],  # i.i.d.: one prefill per sampling call (the prompts, shared by their group)
    ["rollout.strategy=tree", "rollout.segment_len=4", "rollout.branch=2", "rollout.max_depth=2",
     "algo.advantage=tree_segment"],  # trees: the prompts', plus the fallback chains' when any
    ["rollout.strategy=partial", "rollout.over_provision=2"],  # new prompts and resumed rows, one batch
], ids=["iid", "tree", "partial"])
def test_rl_steps_report_their_stages_and_the_stages_fit_in_the_step(tmp_path, tiny_overrides, strategy):
    rows = _rl_rows(tmp_path, tiny_overrides + strategy + ["algo.kl=k3", "algo.kl_coef=0.1", "algo.kl_in=loss"])
    for r in rows:
        step, rollout = r["perf/step_time"], r["perf/rollout_time"]
        verify, prefill, frozen, update, backward, optim = (
            r[f"perf/{k}_time"] for k in ("verify", "prefill", "frozen", "update", "backward", "optimizer"))
        assert 0 < verify <= rollout  # the verifier runs inside the rollout stage
        assert 0 < prefill <= rollout - verify  # the prompt forwards, within sampling (decode is the rest)
        assert 0 < frozen and 0 < optim <= update  # a KL reference forward; the optimizer inside the update
        assert 0 < backward and backward + optim <= update  # backward() calls and optimizer steps are disjoint
        assert rollout + frozen + update <= step  # disjoint stages of one step


def test_backward_time_covers_the_critic_and_every_ppo_iteration(tmp_path, tiny_overrides):
    """With a critic (GAE) and two PPO passes the value loss's backward() and every pass count too:
    backward still fits beside the optimizer steps inside the update."""
    rows = _rl_rows(tmp_path, tiny_overrides + ["algo.advantage=gae", "rl.num_iterations=2"])
    for r in rows:
        assert 0 < r["perf/backward_time"] and r["perf/backward_time"] + r["perf/optimizer_time"] <= r["perf/update_time"]
