"""The Ray backend trains like the local one: same per-step metrics (to 1e-6) with one rollout
worker; with two, once sampling is keyed per request (branch rng); a worker killed with SIGKILL or
hung past distributed.worker_timeout_s is replaced and its requests re-issued, nothing lost or
sampled twice; a SIGKILLed driver resumes; max_staleness k bounds how stale trained data is."""

from __future__ import annotations

import logging
import os
import signal

import pytest
import torch

pytest.importorskip("ray")

import ray
from killed_runs import Trainer
from same_metrics import assert_same_metrics

import graft.distributed.ray_backend as rb
from graft.config import build_config
from graft.distributed.ray_backend import chunks
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

# the golden tier's base (tests/golden/configs.py): 60 cheap SFT steps so that some rollouts are
# right and the RL losses are not trivially 0; then 4 RL steps (seed 2: two of them have informative groups)
RUN = [
    "seed=2", "threads=1", "log.progress=false", "model.d_model=32", "model.n_layers=2", "model.n_heads=2",
    "task.name=arithmetic", "task.difficulty=1", "task.num_train=128", "task.num_test=16",
    "sft.steps=60", "sft.batch_size=32", "sft.lr=0.01", "sft.warmup_steps=1",
    "rl.steps=4", "rl.num_prompts=4", "rl.num_generations=4", "rl.max_new_tokens=16",
    "eval.num_examples=8", "eval.max_new_tokens=16", "eval.batch_size=8", "checkpoint.every=1000",
]
RAY = ["distributed.backend=ray", "distributed.worker_cpus=0"]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster (2 CPUs, no dashboard) for the module: a Ray start costs seconds.
    Workers reserve no CPU (distributed.worker_cpus=0), so 2-4 actors fit."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _train(tmp_path, name, extra=()) -> list[dict]:
    out = tmp_path / name
    train(prepare(build_config({}, [*RUN, *extra])), out)
    return read_metrics(out / "metrics.jsonl")


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("local"), "run")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, ray_cluster):
    return _train(tmp_path_factory.mktemp("ray2"), "run",
                  [*RAY, "distributed.rollout_workers=2", "distributed.reward_workers=2"])


def test_chunks_are_contiguous_balanced_and_cover_everything():
    assert chunks(5, 2) == [slice(0, 2), slice(2, 5)]
    assert chunks(1, 3) == [slice(0, 1)]
    assert chunks(6, 3) == [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert chunks(0, 2) == []


def test_the_run_learns_something_to_compare(local):
    rl = [m for m in local if "losses/policy" in m]
    assert any(m["losses/policy"] != 0 for m in rl) and any(m["rollout/accuracy"] > 0 for m in rl)


def test_one_rollout_worker_trains_exactly_like_the_local_backend(tmp_path, local, ray_cluster):
    assert_same_metrics(_train(tmp_path, "ray1", RAY), local)


def test_two_rollout_workers_train_exactly_like_the_local_backend(local, two_workers):
    assert_same_metrics(two_workers, local)


def test_broadcast_weights_train_exactly_like_the_local_backend(tmp_path, local, ray_cluster, monkeypatch, caplog):
    """weight_sync: broadcast (a gloo group of the learner and both workers) sends the same
    weights: the run equals the local backend's, every version went by broadcast (no fallback)."""
    made = _capture_backends(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="graft.distributed"):
        got = _train(tmp_path, "bcast", [*RAY, "distributed.rollout_workers=2", "distributed.weight_sync=broadcast"])
    assert_same_metrics(got, local)
    source = made[0].source
    assert source.sync.generation == 0 and source.weights is None and not source.sync.refs  # one group, no puts
    assert "weight broadcast" not in caplog.text


def test_a_call_to_a_worker_replaced_since_the_broadcast_carries_the_version_by_object_store():
    """Within one version (a refill round of dynamic sampling, say), a call to a slot whose actor
    was replaced after the broadcast gets the version's object ref; the others carry None."""
    class Pool:
        size, gens = 2, (0, 1)  # slot 1 replaced once since the group was formed

    class Sync:
        members = (0, 0)

        def object_ref(self, version):
            return f"ref of {version}"

    source = rb.RaySource(build_config({}, [*RUN, *RAY]), Pool(), None, set())
    source.sync, source.weights, source.version = Sync(), None, 7
    assert source._box(0) == [None] and source._box(1) == ["ref of 7"]
    source.weights = "put"  # the broadcast failed: everyone fetches the put
    assert source._box(0) == source._box(1) == ["put"]


def test_a_version_kept_for_replacements_is_a_copy_not_the_live_parameters(ray_cluster):
    """On a CPU learner the state dict it sends holds the parameters themselves; a replacement
    asking for that version after the next update must get the version's weights, not the update's."""
    from graft.distributed.weights import WeightBroadcast

    class Pool:  # no rollout workers: a group of the learner alone still runs the whole send
        actors, gens = (), ()

    sync = WeightBroadcast(Pool(), build_config({}, [*RUN, *RAY]))
    params = {"w": torch.arange(4.0), "b": torch.ones(2)}
    assert sync.send(params, version=5, keep=2)
    params["w"].add_(10.0)  # the optimizer steps the live tensors
    sent = ray.get(sync.object_ref(5))
    assert torch.equal(sent["w"], torch.arange(4.0)) and torch.equal(sent["b"], torch.ones(2))
    sync.close()


def _capture_backends(monkeypatch, then=lambda backend: None) -> list:
    """Every RayBackend the run builds (and ``then`` run on it once its workers are up)."""
    made = []
    init = rb.RayBackend.__init__

    def spy(self, cfg):
        init(self, cfg)
        made.append(self)
        then(self)

    monkeypatch.setattr(rb.RayBackend, "__init__", spy)
    return made


def _faults(backend) -> None:
    """Rollout worker 0 hangs (sleeps past the timeout); rollout worker 1 and reward worker 0 are
    SIGKILLed while inside their first call of the run (their calls sleep 3 s, long enough)."""
    rollouts, rewards = backend.rollouts, backend.rewards
    ray.get([rollouts.actors[0].set_delay.remote(60.0), rollouts.actors[1].set_delay.remote(3.0),
             rewards.actors[0].set_delay.remote(3.0)], timeout=30)
    for pool, slot in ((rollouts, 1), (rewards, 0)):
        pid, gather = pool.where[slot][0], pool.gather

        def kill_then_gather(calls, pool=pool, pid=pid, gather=gather):
            pool.gather = gather  # once: the first gather, with the calls in flight
            os.kill(pid, signal.SIGKILL)
            return gather(calls)

        pool.gather = kill_then_gather


def test_killed_and_hung_workers_are_replaced_and_nothing_is_lost(tmp_path, monkeypatch, caplog, two_workers):
    made = _capture_backends(monkeypatch, _faults)
    with caplog.at_level(logging.WARNING, logger="graft.distributed"):
        got = _train(tmp_path, "faults", [*RAY, "distributed.rollout_workers=2", "distributed.reward_workers=2",
                                          "distributed.worker_timeout_s=3"])
    assert_same_metrics(got, two_workers)  # the same groups, each trained once
    rollouts, rewards = made[0].rollouts.replaced, made[0].rewards.replaced
    assert len(rollouts) == 2 and len(rewards) == 1, (rollouts, rewards)
    assert any(line.startswith("rollout worker 0") and "did not answer within distributed.worker_timeout_s=3.0"
               in line for line in rollouts)
    assert any(line.startswith("rollout worker 1") and "died" in line for line in rollouts)
    assert rewards[0].startswith("reward worker 0") and "died" in rewards[0]
    assert "re-issued 2 requests of step 60" in caplog.text  # what the run's log says


def test_with_broadcast_weights_a_killed_worker_is_replaced_and_nothing_is_lost(tmp_path, monkeypatch, caplog,
                                                                                two_workers):
    """A rollout worker SIGKILLed inside its first call: the broadcast group loses a member. The
    re-issued call gets its version through the object store, the next version's broadcast forms
    the group again with the replacement, and the run equals the uninterrupted one."""
    def kill_rollout_worker_1(backend) -> None:
        rollouts = backend.rollouts
        ray.get(rollouts.actors[1].set_delay.remote(3.0), timeout=30)
        pid, gather = rollouts.where[1][0], rollouts.gather

        def kill_then_gather(calls):
            rollouts.gather = gather
            os.kill(pid, signal.SIGKILL)
            return gather(calls)

        rollouts.gather = kill_then_gather

    made = _capture_backends(monkeypatch, kill_rollout_worker_1)
    with caplog.at_level(logging.WARNING, logger="graft.distributed"):
        got = _train(tmp_path, "bcast-fault", [*RAY, "distributed.rollout_workers=2", "distributed.reward_workers=2",
                                               "distributed.weight_sync=broadcast"])
    assert_same_metrics(got, two_workers)
    assert len(made[0].rollouts.replaced) == 1 and "died" in made[0].rollouts.replaced[0]
    assert made[0].source.sync.generation >= 1  # formed again after the replacement


@pytest.mark.slow  # about 30 s: two subprocesses that each import torch, graft and Ray
def test_a_killed_driver_resumes_like_an_uninterrupted_run(tmp_path, ray_cluster, monkeypatch):
    short = ["sft.steps=4", "checkpoint.every=1"]  # the subprocesses start torch, graft and Ray: keep them short
    want = _train(tmp_path, "local", short)
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster)  # the subprocess joins this cluster
    trainer = Trainer(tmp_path, [*RUN, *short, *RAY])
    out = tmp_path / "run"
    trainer.kill_after(out, rows=6)  # after two RL steps
    assert 6 <= len(read_metrics(out / "metrics.jsonl")) < len(want)
    assert_same_metrics(trainer.run(out, resume=True), want)


@pytest.mark.parametrize("k,sync", [(1, "object_store"), (1, "broadcast"), pytest.param(2, "object_store", marks=pytest.mark.slow)])
def test_max_staleness_bounds_how_old_trained_rollouts_are(tmp_path, ray_cluster, monkeypatch, k, sync):
    seen = {"chained": 0, "rollouts": 0}
    verify = rb.RayVerifier.verify

    def checked(self, task, groups):  # every group collect() sees ends up with the task's own verdicts
        seen["chained"] += sum(id(g) in self.verified for g in groups)
        verify(self, task, groups)
        for g in groups:
            for ro in g:
                score = task.score(g.example, ro.text)
                assert (ro.verifier_reward, ro.correct) == (score.reward, score.correct)
                seen["rollouts"] += 1

    monkeypatch.setattr(rb.RayVerifier, "verify", checked)
    rows = _train(tmp_path, f"async{k}", [*RAY, f"distributed.max_staleness={k}", f"distributed.weight_sync={sync}"])
    assert seen["chained"] == 3 * 4 and seen["rollouts"] == 4 * 16  # steps 2-4 verified ahead, on workers
    rl = [m for m in rows if "losses/policy" in m]
    assert [m["rollout/staleness_max"] for m in rl] == [0.0] + [float(min(i, k)) for i in range(1, 4)]
    assert len(rl) == 4
    assert all(0 <= m["rollout/staleness_mean"] <= m["rollout/staleness_max"] for m in rl)
    assert rl[-1]["rollout/off_policy_token_frac"] == 1.0  # every token of a stale rollout is stale


@pytest.mark.parametrize("k", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_an_interrupted_asynchronous_run_resumes_exactly_like_an_uninterrupted_one(tmp_path, ray_cluster,
                                                                                   monkeypatch, k):
    """The checkpoint after step 61 holds the jobs sampled ahead from older weights (step 62; with
    k=2 also 63); the run fails inside step 62 and resumes from it: every step trains the groups
    the uninterrupted run trains (without them it would resample steps 62-63 with fresher weights)."""
    from graft.train import loop

    extra = [*RAY, f"distributed.max_staleness={k}", "checkpoint.every=2"]
    want = _train(tmp_path, "whole", extra)
    real, calls = loop.rl_step, []

    def fails_at_the_third_rl_step(*args, **kwargs):
        calls.append(kwargs["version"])
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "rl_step", fails_at_the_third_rl_step)
    out, cfg = tmp_path / "cut", build_config({}, [*RUN, *extra])
    with pytest.raises(RuntimeError, match="interrupted"):
        train(prepare(cfg), out)
    assert calls == [60, 61, 62] and len(read_metrics(out / "metrics.jsonl")) == 62
    monkeypatch.setattr(loop, "rl_step", real)
    train(prepare(cfg), out, resume=True)
    got = read_metrics(out / "metrics.jsonl")
    assert_same_metrics(got, want)
    assert [m["rollout/staleness_max"] for m in got[60:]] == [0.0] + [float(min(i, k)) for i in range(1, 4)]


def test_rollout_workers_reserve_gpus_and_put_their_copy_on_the_assigned_one(monkeypatch):
    cfg = build_config({}, [*RUN, *RAY, "distributed.rollout_workers=2", "distributed.rollout_worker_gpus=0.5"])
    assert rb.worker_model(cfg).device == "cuda" and cfg.model.device == "auto"  # the learner's stays
    plain = build_config({}, [*RUN, *RAY])
    assert rb.worker_model(plain) == plain.model  # no reservation: the configured device
    # a vLLM engine holds its own weights on the GPU: the copy it loads them from stays on the CPU
    on_vllm = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"engine": "vllm"})})
    assert rb.worker_model(on_vllm).device == "cpu"
    assert rb.gpu_shortfall(cfg, 1.0) is None  # 2 x 0.5 fit one GPU
    assert rb.gpu_shortfall(cfg, 0.0) == ("config key 'distributed.rollout_worker_gpus': 2 rollout workers x 0.5 "
                                          "GPU = 1 GPUs, but the Ray cluster has 0")
    made = []

    class Remote:  # stands in for ray.remote(cls): records each actor's options
        def options(self, **options):
            made.append(options)
            return self

        def remote(self, _cfg):
            return object()

    monkeypatch.setattr(rb.ray, "remote", lambda cls=None, **kw: Remote() if cls else (lambda c: Remote()))
    monkeypatch.setattr(rb.WorkerPool, "_ready", lambda self, slots: [(0, "node")] * len(slots))
    rb.WorkerPool("rollout", rb.RolloutWorker, cfg, 2, gpus=0.5)
    rb.WorkerPool("reward", rb.RewardWorker, cfg, 1)
    assert [m.get("num_gpus") for m in made] == [0.5, 0.5, None]  # reward workers reserve none


def test_gpu_reservations_the_cluster_cannot_meet_are_refused_before_any_worker(tmp_path, ray_cluster):
    cfg = build_config({}, [*RUN, *RAY, "distributed.rollout_worker_gpus=1"])
    with pytest.raises(rb.GraftError, match="distributed.rollout_worker_gpus.*the Ray cluster has 0"):
        train(prepare(cfg), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert ray.is_initialized()  # the module's cluster, joined, is left running
