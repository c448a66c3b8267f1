"""LoRA through peft (model.lora): adapters train, base weights stay, the KL reference is the base
model with adapters disabled, checkpoints hold the adapter and resume exactly, and `graft export
--merge` writes a plain HF model that decodes and scores as the adapter model did."""

from __future__ import annotations

import json
import subprocess
import zlib

import pytest
import torch
from killed_runs import Trainer, assert_resumed_like
from killed_runs import cli as _cli
from transformers import AutoModelForCausalLM, AutoTokenizer

from graft.config import build_config
from graft.errors import GraftError
from graft.models.hf import HFPolicy
from graft.models.hf_testing import build_tiny_hf_model
from graft.models.load import create_policy, load_saved_policy
from graft.models.lora import BaseReference
from graft.models.policy import position_ids_from_mask
from graft.rollout.sampler import sample
from graft.tasks.base import Score
from graft.train.batch import completion_logprobs, make_batch
from graft.train.logging import read_metrics
from graft.train.loop import prepare, start_rl, train

STOPS = list("abcdefghijklmnopqrstuvwxyz")  # a random model's completions end at varied lengths
TINY_HF = ["name=lora", "log.progress=false", "threads=1", "task.name=arithmetic", "task.difficulty=1",
           "task.num_train=64", "task.num_test=16", "sft.steps=4", "sft.batch_size=8", "sft.warmup_steps=1",
           "rl.steps=4", "rl.num_prompts=2", "rl.num_generations=4", "rl.max_new_tokens=12",
           "eval.num_examples=8", "eval.max_new_tokens=12", "checkpoint.every=2", "model.lora.rank=4",
           "model.lora.alpha=8", "algo.kl=k3", "algo.kl_coef=0.1"]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return build_tiny_hf_model(tmp_path_factory.mktemp("base") / "qwen2", arch="qwen2", seed=0)


def _params(module, trainable: bool) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad == trainable}


@pytest.fixture(scope="module")
def lora_run(base_dir, tmp_path_factory):
    """One SFT -> RL run with LoRA; snapshots of adapter and base weights at start, end of SFT, end."""
    run = tmp_path_factory.mktemp("run") / "run"
    cfg = build_config({}, TINY_HF + [f"model.path={base_dir}"])
    setup = prepare(cfg)
    # a random model never answers right: a deterministic reward that varies with the text
    setup.task.score = lambda ex, text: Score(reward=float(zlib.crc32(text.encode()) % 2), correct=False, parts={})
    module = setup.policy.module
    snaps = {0: (_params(module, True), _params(module, False))}

    def after(step, total, metrics):
        if step in (cfg.sft.steps, cfg.total_steps):
            snaps[step] = (_params(module, True), _params(module, False))

    train(setup, run, progress=after)
    return cfg, run, snaps


def test_lora_trains_every_adapter_parameter_in_sft_and_rl_and_no_base_weight(lora_run):
    cfg, run, snaps = lora_run
    (a0, b0), (a1, b1), (a2, b2) = snaps[0], snaps[cfg.sft.steps], snaps[cfg.total_steps]
    assert a0 and all("lora_" in n for n in a0)
    assert {n.split(".")[-2] for n in a0} == {"default"}
    targets = {n.split(".lora_")[0].split(".")[-1] for n in a0}  # ...self_attn.q_proj.lora_A.default.weight
    assert targets == set(cfg.model.lora.target_modules)  # every projection of attention and MLP
    assert [n for n in a0 if torch.equal(a0[n], a1[n])] == [], "adapter not trained by SFT"
    assert [n for n in a1 if torch.equal(a1[n], a2[n])] == [], "adapter not trained by RL"
    for before, after in ((b0, b1), (b1, b2)):
        assert before.keys() == after.keys() and all(torch.equal(before[n], after[n]) for n in before)
    rows = read_metrics(run / "metrics.jsonl")
    assert all(r["optim/grad_norm"] > 0 for r in rows)
    assert any(r.get("losses/kl", 0) > 0 for r in rows)
    model = run / "checkpoints" / f"step_{cfg.total_steps}" / "model"
    files = {p.name for p in model.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "graft_model.json"} <= files
    assert "model.safetensors" not in files and not (model.parent / "reference").exists()
    assert torch.load(model.parent / "trainer.pt", weights_only=False)["reference"] == "base"


def test_the_kl_reference_is_the_base_model_under_the_same_weights(base_dir, lora_run):
    cfg, run, _ = lora_run
    policy = load_saved_policy(run / "checkpoints" / f"step_{cfg.total_steps}" / "model", cfg.model)
    learner = start_rl(policy, cfg)
    assert isinstance(learner.ref, BaseReference) and learner.ref.module is policy.module  # no copy
    plain = HFPolicy.load(base_dir)
    ids = torch.tensor([policy.tokenizer.encode("12+34=46 and 7")])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ref, _ = learner.ref.forward(ids, mask, position_ids_from_mask(mask))
        base, _ = plain.forward(ids, mask, position_ids_from_mask(mask))
        tuned, _ = policy.forward(ids, mask, position_ids_from_mask(mask))
        hidden = learner.ref.logits_from_hidden(learner.ref.hidden(ids, mask, position_ids_from_mask(mask)))
    torch.testing.assert_close(ref, base, atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden, base, atol=1e-5, rtol=0)
    assert (tuned - base).abs().max() > 1e-3  # the adapters are on outside the context


def test_lora_needs_an_hf_model_and_matching_modules(base_dir):
    with pytest.raises(Exception, match="model.lora.rank.*model.path"):
        build_config({}, ["model.lora.rank=8"])
    cfg = build_config({}, [f"model.path={base_dir}", "model.lora.rank=4", "model.lora.target_modules=[nope]"])
    with pytest.raises(GraftError, match="model.lora.target_modules"):
        create_policy(cfg.model, 0)


def test_adapter_init_is_seeded_and_leaves_the_global_rng_alone(base_dir):
    cfg = build_config({}, [f"model.path={base_dir}", "model.lora.rank=4"])
    state = torch.random.get_rng_state()
    a = _params(create_policy(cfg.model, 0).module, True)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = _params(create_policy(cfg.model, 0).module, True)
    c = _params(create_policy(cfg.model, 1).module, True)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a if "lora_A" in n)



COMPARED = ("losses/sft", "losses/policy", "losses/kl", "rollout/reward_mean", "optim/grad_norm",
            "rollout/completion_len")


def test_lora_resume_after_sigkill_matches_the_uninterrupted_run(tmp_path, base_dir):
    # the task's verifier never rewards a random model: DAPO's overlong penalty over completions
    # of varied lengths (stop strings) gives every RL step non-zero advantages instead
    overrides = TINY_HF + [f"model.path={base_dir}", "checkpoint.every=1", f"rl.stop={STOPS}",
                           "shaping.overlong_cache=10"]
    trainer = Trainer(tmp_path, overrides)
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    reference = trainer.run(ref_dir)
    assert any(r.get("losses/policy", 0) != 0 for r in reference)
    for kill_after in (2, 6):  # once in SFT, once in RL
        trainer.kill_after(cut_dir, kill_after, timeout=180)
        assert len(read_metrics(cut_dir / "metrics.jsonl")) < len(reference)  # killed mid-run
    assert not (cut_dir / "summary.json").exists()
    resumed = trainer.run(cut_dir, resume=True)
    assert_resumed_like(reference, resumed, COMPARED)
    final = f"checkpoints/step_{len(reference)}/model/adapter_model.safetensors"
    assert (ref_dir / final).read_bytes() == (cut_dir / final).read_bytes()


def test_export_merge_writes_a_plain_hf_model_that_decodes_and_scores_as_the_adapter(tmp_path, lora_run):
    cfg, run, _ = lora_run
    out = tmp_path / "merged"
    done = subprocess.run(_cli("export", str(run), "--merge", "--out", str(out)), capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert not (out / "adapter_config.json").exists() and not (out / "graft_model.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert type(model).__name__ == "Qwen2ForCausalLM" and len(tok) == model.config.vocab_size
    adapter = load_saved_policy(run / "checkpoints" / f"step_{cfg.total_steps}" / "model", cfg.model)
    merged = HFPolicy.load(out)
    setup = prepare(cfg)  # the task's held-out examples
    examples = setup.task.test_examples()[:6]
    prompts = [adapter.tokenizer.encode(ex.prompt) for ex in examples]
    a = sample(adapter, prompts, max_new_tokens=12, temperature=0.0)
    b = sample(merged, prompts, max_new_tokens=12, temperature=0.0)
    assert [r.completion_ids for r in a] == [r.completion_ids for r in b]
    assert [setup.task.score(ex, r.text) for ex, r in zip(examples, a)] == \
        [setup.task.score(ex, r.text) for ex, r in zip(examples, b)]
    batch = make_batch(prompts, [r.completion_ids for r in a], adapter.tokenizer.pad_id)
    with torch.no_grad():
        la, _ = completion_logprobs(adapter, batch)
        lb, _ = completion_logprobs(merged, batch)
    torch.testing.assert_close(la, lb, atol=1e-5, rtol=0)
    with torch.no_grad():
        base, _ = completion_logprobs(HFPolicy.load(cfg.model.path), batch)
    assert (la - base).abs().max() > 1e-4  # the merge carries the trained adapter
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 2


def test_export_refuses_what_it_cannot_write_and_copies_a_full_fine_tune(tmp_path, lora_run, base_dir,
                                                                          tiny_overrides):
    _, run, _ = lora_run
    no_merge = subprocess.run(_cli("export", str(run), "--out", str(tmp_path / "x")), capture_output=True,
                              text=True, check=False)
    assert no_merge.returncode == 2 and "pass --merge" in no_merge.stderr
    assert not (tmp_path / "x").exists()
    full = tmp_path / "full"
    train(prepare(build_config({}, [o for o in TINY_HF if "lora" not in o and "kl" not in o] + [
        f"model.path={base_dir}", "sft.steps=2", "rl.steps=0"])), full)
    out = subprocess.run(_cli("export", str(full), "--out", str(tmp_path / "copy")), capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr
    copied = AutoModelForCausalLM.from_pretrained(tmp_path / "copy", local_files_only=True).state_dict()
    saved = HFPolicy.load(full / "checkpoints" / "step_2" / "model").module.state_dict()
    assert all(torch.equal(copied[k], saved[k]) for k in saved)
    tiny = tmp_path / "tiny"
    train(prepare(build_config({}, tiny_overrides + ["sft.steps=2", "rl.steps=0"])), tiny)
    refused = subprocess.run(_cli("export", str(tiny), "--out", str(tmp_path / "t")), capture_output=True,
                             text=True, check=False)
    assert refused.returncode == 2 and "tiny transformer" in refused.stderr


def test_graft_eval_reads_a_lora_checkpoint(lora_run):
    cfg, run, _ = lora_run
    out = subprocess.run(_cli("eval", str(run), "--num-examples", "4"), capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads((run / "eval" / f"step_{cfg.total_steps}.json").read_text())
    assert result["n"] == 4
