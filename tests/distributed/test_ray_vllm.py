"""vLLM inside the Ray backend's rollout workers (``distributed.backend: ray`` with
``rollout.engine: vllm``): each worker builds its own engine, loads each new policy version into
it from the object store, and samples what the learner's own engine would. Synchronous runs with 1
and 2 workers equal the local backend's per-step metrics (to 1e-6); an asynchronous one bounds
staleness as with graft's engine.

These need vLLM and Ray in one venv: ``make test-vllm`` runs them in .venv-vllm (which has both);
in graft's own venv (no vLLM) they skip, saying so."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here: `make test-vllm` runs these in .venv-vllm")
pytest.importorskip("ray", reason="Ray is not installed here: `make test-vllm` installs it in .venv-vllm")

import ray
from same_metrics import assert_same_metrics

from graft.config import build_config
from graft.distributed.checks import distributed_problems
from graft.models.hf_testing import build_tiny_hf_model
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

pytestmark = pytest.mark.vllm
ALPHABET = "0123456789+-*= "
# 40 SFT steps on the arithmetic task, then 3 RL steps sampled by vLLM (the weights reloaded into the
# engine before each). The tiny model answers nothing right yet; DAPO's overlong punishment over the
# last 6 of 8 tokens makes rewards differ by length, so the RL losses are not 0 and each update moves
# the weights the engines must reload
RUN = {"seed": 3, "threads": 2, "log.progress": "false", "task.name": "arithmetic", "task.difficulty": 1,
       "task.num_train": 64, "task.num_test": 8, "sft.steps": 40, "sft.batch_size": 16, "sft.lr": 0.003,
       "sft.warmup_steps": 1, "rl.steps": 3, "rl.num_prompts": 4, "rl.num_generations": 4,
       "rl.max_new_tokens": 8, "shaping.overlong_cache": 6, "eval.num_examples": 4, "eval.max_new_tokens": 8, "checkpoint.every": 100,
       "rollout.engine": "vllm", "rollout.vllm.enforce_eager": True, "rollout.vllm.max_model_len": 160,
       "model.device": "cpu"}
RAY = {"distributed.backend": "ray", "distributed.worker_cpus": 0}
# the engine's weight loads are counted per engine: one per worker and version
PER_ENGINE = {"rollout/weight_loads", "perf/weight_sync_s"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_hf_model(tmp_path_factory.mktemp("qwen"), hidden_size=64, num_heads=2, num_kv_heads=1,
                               vocab_chars=ALPHABET, seed=0)


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _train(out, model_dir, **over) -> list[dict]:
    raw = {**RUN, "model.path": str(model_dir), **over}
    train(prepare(build_config({}, [f"{k}={v}" for k, v in raw.items()])), out)
    return read_metrics(out / "metrics.jsonl")


@pytest.fixture(scope="module")
def local(tmp_path_factory, model_dir):
    return _train(tmp_path_factory.mktemp("local") / "run", model_dir)


def _rl(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "rollout/reward_mean" in r]


def test_the_ray_backend_no_longer_refuses_the_vllm_engine(model_dir):
    cfg = build_config({}, [f"{k}={v}" for k, v in {**RUN, **RAY, "model.path": str(model_dir)}.items()])
    assert distributed_problems(cfg) == []


def test_the_local_run_samples_something_to_compare(local):
    rl = _rl(local)
    assert len(rl) == 3 and [r["rollout/weight_loads"] for r in rl] == [1.0] * 3
    assert all(r["losses/policy"] != 0 for r in rl), [r["losses/policy"] for r in rl]


@pytest.mark.parametrize("workers", [1, 2])
def test_vllm_rollout_workers_sample_exactly_like_the_local_engine(tmp_path, model_dir, local, ray_cluster, workers):
    got = _train(tmp_path / "run", model_dir, **RAY, **{"distributed.rollout_workers": workers,
                                                         "distributed.reward_workers": workers})
    assert_same_metrics(got, local, skip=PER_ENGINE)
    # each worker's engine took each new version once (the split gives every worker requests)
    assert [r["rollout/weight_loads"] for r in _rl(got)] == [float(workers)] * 3


def test_an_asynchronous_run_on_vllm_workers_bounds_staleness(tmp_path, model_dir, ray_cluster):
    rows = _rl(_train(tmp_path / "run", model_dir, **RAY, **{"distributed.max_staleness": 1}))
    assert len(rows) == 3
    assert [r["rollout/staleness_max"] for r in rows] == [0.0, 1.0, 1.0]


def test_a_worker_with_a_gpu_puts_the_engine_there_and_keeps_its_copy_on_the_cpu(model_dir):
    """What a rollout worker builds when it reserves a GPU (its constructor only: the engine itself
    is built at the first rollout, so this runs on a CPU)."""
    from graft.distributed.ray_backend import RolloutWorker
    from graft.models.policy import device_of

    over = {**RUN, **RAY, "model.path": str(model_dir), "distributed.rollout_worker_gpus": 0.5}
    worker = RolloutWorker(build_config({}, [f"{k}={v}" for k, v in over.items()]))
    assert device_of(worker.policy).type == "cpu" and worker.source.engine_device == "cuda"
    plain = RolloutWorker(build_config({}, [f"{k}={v}" for k, v in {**RUN, **RAY, "model.path": str(model_dir)}.items()]))
    assert plain.source.engine_device is None  # the engine follows the copy's device
