"""perf/*_time: an RL step's wall time by stage (issue 16's per-phase breakdown, graft's side)."""

from graft.config import build_config
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train


def test_rl_steps_report_their_stages_and_the_stages_fit_in_the_step(tmp_path, tiny_overrides):
    cfg = build_config({}, tiny_overrides + ["sft.steps=0", "rl.steps=2", "algo.kl=k3", "algo.kl_coef=0.1",
                                             "algo.kl_in=loss"])
    train(prepare(cfg), tmp_path / "run")
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "losses/policy" in r]
    assert len(rows) == 2
    for r in rows:
        step, rollout = r["perf/step_time"], r["perf/rollout_time"]
        verify, frozen, update, optim = (r[f"perf/{k}_time"] for k in ("verify", "frozen", "update", "optimizer"))
        assert 0 < verify <= rollout  # the verifier runs inside the rollout stage
        assert 0 < frozen and 0 < optim <= update  # a KL reference forward; the optimizer inside the update
        assert rollout + frozen + update <= step  # disjoint stages of one step
