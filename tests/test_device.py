"""model.device and model.precision: every tensor of the loop on the policy's device, dtypes as
configured, checkpoints in the configured dtype. CPU-only here; the CUDA runs are marked gpu."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch.overrides import TorchFunctionMode

from graft.config import build_config
from graft.errors import GraftError
from graft.models.device import resolve_device
from graft.models.hf import HFPolicy
from graft.models.hf_testing import build_tiny_hf_model
from graft.models.load import create_policy, load_saved_policy
from graft.models.policy import position_ids_from_mask
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

SRC = str(Path(__file__).resolve().parents[1] / "src" / "graft")
TORCH = str(Path(torch.__file__).parent)
FACTORIES = {torch.zeros, torch.ones, torch.full, torch.empty, torch.tensor, torch.as_tensor, torch.arange,
             torch.rand, torch.randn, torch.randint, torch.linspace, torch.eye}
# modules whose tensors are made from Python values and read back on the CPU (verifier rewards,
# shaping, schedules, curriculum bookkeeping): they never meet the model's tensors
CPU_SIDE = ("/rewards/", "/mix/", "/curriculum/step.py", "/curriculum/dars.py", "/train/collect.py")


class FactoryAudit(TorchFunctionMode):
    """Records every tensor factory call made from graft's source without a ``device`` (a draw
    from an explicit ``generator`` is that generator's, and allowed: the tiny model's init, the
    schedules' own streams)."""

    def __init__(self):
        super().__init__()
        self.calls: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs and "generator" not in kwargs:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(TORCH):
                frame = frame.f_back
            name = frame.f_code.co_filename if frame is not None else ""
            if name.startswith(SRC) and not any(part in name for part in CPU_SIDE):
                self.calls.add(f"{name[len(SRC) + 1:]}:{frame.f_lineno} ({func.__name__})")
        return func(*args, **kwargs)


BASE = ["seed=0", "threads=1", "log.progress=false", "model.d_model=32", "model.n_layers=2", "model.n_heads=2",
        "task.name=arithmetic", "task.difficulty=1", "task.num_train=128", "task.num_test=16",
        "sft.steps=60", "sft.batch_size=32", "sft.lr=0.01", "sft.warmup_steps=1", "rl.steps=3",
        "rl.num_prompts=4", "rl.num_generations=4", "rl.max_new_tokens=16", "eval.num_examples=8",
        "eval.max_new_tokens=16", "eval.batch_size=8", "checkpoint.every=1000", "checkpoint.keep=1"]
PATHS = {  # every rollout source, revision kind, frozen forward and loss path at least once
    "iid_kl_fused_sorted": ["algo.kl=k3", "algo.kl_coef=0.1", "optim.logprob_chunk=8",
                            "optim.logprob_impl=fused", "optim.sort_by_length=true", "rl.stop=['=']"],
    "tree": ["rollout.strategy=tree", "rollout.segment_len=4", "rollout.branch=2", "rollout.max_depth=2",
             "algo.advantage=tree_segment", "rl.stop=['0']"],
    "partial_is_cap": ["rollout.strategy=partial", "rollout.over_provision=2", "rollout.stale_is_cap=0.5",
                       "algo.mask_truncated=true", "rl.stop=['00']"],
    "hints_dynamic": ["mix.schedule=hints", "select.dynamic_sampling=true", "select.max_extra_prompts=8"],
    "inject_kl_reward": ["mix.schedule=inject", "algo.kl=k1", "algo.kl_coef=0.1", "algo.kl_in=reward"],
    "weighted_pcl_dars": ["mix.schedule=weighted", "curriculum.name=pcl", "curriculum.pool_factor=2",
                          "curriculum.dars=true", "curriculum.dars_extra=4", "optim.logprob_chunk=8"],
    "gae_chunk": ["algo.advantage=gae", "algo.critic_lr=0.001", "optim.logprob_chunk=8"],
}


@pytest.mark.parametrize("case", sorted(PATHS))
def test_every_tensor_the_loop_makes_names_its_device(tmp_path, case):
    """On a GPU a tensor made without a device is on the CPU and breaks (or silently slows) the
    step; on the CPU it works. So the audit is of the calls themselves, during real steps."""
    setup = prepare(build_config({}, BASE + PATHS[case]))
    audit = FactoryAudit()
    with audit:
        train(setup, tmp_path / "run")
    assert sorted(audit.calls) == []


def test_the_audit_sees_a_factory_call_without_a_device():
    audit = FactoryAudit()
    code = compile("torch.zeros(2)\ntorch.zeros(2, device='cpu')\ntorch.rand(2, generator=g)\n",
                   SRC + "/train/example.py", "exec")
    with audit:
        exec(code, {"torch": torch, "g": torch.Generator()})  # noqa: S102 -- a call from a graft file
    assert audit.calls == {"train/example.py:1 (zeros)"}


def test_device_names_and_errors(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(Exception, match="model.device"):
        build_config({}, ["model.device=gpu"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(GraftError, match="model.device: 'cuda:1' but CUDA is not available"):
        resolve_device("cuda:1")
    with pytest.raises(GraftError, match="model.device"):
        prepare(build_config({}, ["model.device=cuda"]))


def _bf16_checkpoint(tmp_path: Path) -> Path:
    src = build_tiny_hf_model(tmp_path / "fp32", arch="qwen2", seed=0)
    policy = HFPolicy.load(src, dtype=torch.bfloat16)
    policy.save(tmp_path / "bf16")
    return tmp_path / "bf16"


def _dtypes(directory: Path) -> set[str]:
    with safe_open(str(directory / "model.safetensors"), "pt") as f:
        return {str(f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118 -- not a dict


HF_TINY = ["name=hf", "log.progress=false", "threads=1", "task.name=arithmetic", "task.difficulty=1",
           "task.num_train=64", "task.num_test=8", "sft.steps=2", "sft.batch_size=8", "rl.steps=2",
           "rl.num_prompts=2", "rl.num_generations=2", "rl.max_new_tokens=8", "eval.num_examples=4",
           "eval.max_new_tokens=8", "checkpoint.every=100"]


def test_bf16_checkpoint_trains_in_bf16_and_stays_bf16_on_disk(tmp_path):
    bf16 = _bf16_checkpoint(tmp_path)
    assert _dtypes(bf16) == {"BF16"}
    cfg = build_config({}, HF_TINY + [f"model.path={bf16}", "model.precision=bf16", "algo.kl=k3",
                                      "algo.kl_coef=0.1"])
    setup = prepare(cfg)
    assert {p.dtype for p in setup.policy.module.parameters()} == {torch.bfloat16}
    assert setup.policy.module.config._attn_implementation == "sdpa"
    train(setup, tmp_path / "run")
    saved = tmp_path / "run" / "checkpoints" / "step_4"
    assert _dtypes(saved / "model") == {"BF16"} and _dtypes(saved / "reference") == {"BF16"}
    state = torch.load(saved / "trainer.pt", weights_only=False)["optimizer"]["state"]
    assert {v.dtype for s in state.values() for k, v in s.items() if k != "step"} == {torch.bfloat16}
    # fp32 (the default) upcasts the same checkpoint, exactly, and saves float32
    fp32 = load_saved_policy(bf16, build_config({}, HF_TINY + [f"model.path={bf16}"]).model)
    assert {p.dtype for p in fp32.module.parameters()} == {torch.float32}
    assert json.loads((saved / "model" / "config.json").read_text())["dtype"] == "bfloat16"


@pytest.mark.parametrize("hf", [False, True], ids=["tiny", "hf"])
def test_bf16_mixed_autocasts_forwards_and_keeps_fp32_master_weights(tmp_path, hf):
    extra = [f"model.path={build_tiny_hf_model(tmp_path / 'm', seed=0)}"] if hf else \
        ["model.d_model=32", "model.n_layers=2", "model.n_heads=2"]
    cfg32 = build_config({}, HF_TINY + extra)
    mixed = create_policy(build_config({}, HF_TINY + extra + ["model.precision=bf16_mixed"]).model, 0)
    plain = create_policy(cfg32.model, 0)
    assert {p.dtype for p in mixed.module.parameters()} == {torch.float32}
    linear_out = []
    layer = next(m for m in mixed.module.modules() if isinstance(m, torch.nn.Linear))
    layer.register_forward_hook(lambda mod, inp, out: linear_out.append(out.dtype))
    ids = torch.tensor([mixed.tokenizer.encode("12+34=46")])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        a, _ = mixed.forward(ids, mask, position_ids_from_mask(mask))
        b, _ = plain.forward(ids, mask, position_ids_from_mask(mask))
    assert linear_out and set(linear_out) == {torch.bfloat16}  # the matmuls ran in bf16
    assert a.dtype == torch.float32 and not torch.equal(a, b)  # float32 logits, bf16 rounding
    torch.testing.assert_close(a, b, atol=0.1, rtol=0.05)
    setup = prepare(build_config({}, HF_TINY + extra + ["model.precision=bf16_mixed"]))
    train(setup, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoints" / "step_4" / "trainer.pt",
                       weights_only=False)["optimizer"]["state"]
    assert {v.dtype for s in state.values() for k, v in s.items() if k != "step"} == {torch.float32}
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 4 and all(r["optim/grad_norm"] > 0 for r in rows if "losses/sft" in r)
    assert all(math.isfinite(v) for r in rows for v in r.values())


# ---------------------------------------------------------------- CUDA (`pytest -m gpu` on a GPU machine)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16_mixed", "bf16"])
def test_cuda_training_runs_every_path_on_the_gpu(tmp_path, precision):
    setup = prepare(build_config({}, BASE + PATHS["iid_kl_fused_sorted"] + [
        "model.device=cuda", f"model.precision={precision}"]))
    assert setup.policy.device.type == "cuda"
    train(setup, tmp_path / "run")
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert all(math.isfinite(v) for r in rows for v in r.values())
    assert all(r["optim/grad_norm"] > 0 for r in rows if "losses/sft" in r)


@pytest.mark.gpu
def test_cuda_sampling_draws_the_cpus_numbers(tmp_path):
    """Sampling numbers are integer functions of (key, position): the same on CPU and GPU bit for
    bit, so the same tokens wherever the logits agree (the tiny model's do, to float32 rounding)."""
    from graft.rollout.rng import key_tensor, mix, uniforms
    from graft.rollout.sampler import sample

    keys = [mix(1, i) for i in range(64)] + [0, (1 << 64) - 1]
    positions = torch.arange(len(keys), device="cpu") * 97
    on_cpu = uniforms(key_tensor(keys), positions)
    on_gpu = uniforms(key_tensor(keys, "cuda"), positions.to("cuda"))
    assert torch.equal(on_cpu, on_gpu.cpu())
    cpu = create_policy(build_config({}, BASE).model, 0)
    gpu = create_policy(build_config({}, BASE + ["model.device=cuda"]).model, 0)
    prompts = [cpu.tokenizer.encode(p) for p in ("1+2=", "3*4=", "9-5=")]
    a = sample(cpu, prompts, max_new_tokens=12, temperature=1.0, keys=1, repeats=4)
    b = sample(gpu, prompts, max_new_tokens=12, temperature=1.0, keys=1, repeats=4)
    same = sum(x.completion_ids == y.completion_ids for x, y in zip(a, b))
    assert same >= len(a) - 1
