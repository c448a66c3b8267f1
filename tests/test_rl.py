"""The RL step's wiring: micro-batching is exact, masks and selection do what they say."""

import pytest
import torch

from graft.config import build_config
from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.models.tokenizer import CharTokenizer
from graft.tasks.arithmetic import ArithmeticTask
from graft.train.collect import sample_groups
from graft.train.rl import Learner, _policy_loss
from graft.train.targets import build_batch


def _setup(overrides):
    cfg = build_config({}, ["rl.num_generations=4", "rl.max_new_tokens=10", *overrides])
    policy = TinyPolicy.create(TinyConfig(vocab_size=CharTokenizer().vocab_size, d_model=32, n_layers=1, n_heads=2), seed=0)
    task = ArithmeticTask(difficulty=1, num_train=20, num_test=4)
    groups = sample_groups(policy, task, task.train_examples()[:3], cfg,
                           0, version=0)
    # give the groups distinct rewards so every advantage estimator has something to say
    for i, ro in enumerate(ro for g in groups for ro in g):
        ro.shaped_reward = float(i % 3)
    return cfg, Learner(policy, torch.optim.SGD(policy.module.parameters(), lr=0.0)), groups


def _grads(learner, batch, cfg, micro):
    learner.policy.module.zero_grad()
    total = max(float(batch.loss_mask.sum()), 1.0)
    loss = sum(_policy_loss(learner, mb, cfg, total)["total"] for mb in batch.split(micro))
    grads = [p.grad.clone() for p in learner.policy.module.parameters() if p.grad is not None]
    return loss, grads


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_sum_norm"])
@pytest.mark.parametrize("loss", ["ppo_clip", "gspo", "cispo"])
def test_micro_batches_add_up_to_the_whole_batch(agg, loss):
    cfg, learner, groups = _setup([f"algo.loss_agg={agg}", f"algo.policy_loss={loss}"])
    batch, _ = build_batch(learner, groups, cfg)
    whole_loss, whole = _grads(learner, batch, cfg, micro=len(batch))
    split_loss, split = _grads(learner, batch, cfg, micro=5)
    assert split_loss == pytest.approx(whole_loss, abs=1e-6)
    for a, b in zip(whole, split):
        assert torch.allclose(a, b, atol=1e-6)


def test_truncated_completions_leave_the_loss_when_masked():
    cfg, learner, groups = _setup(["algo.mask_truncated=true", "rl.max_new_tokens=3"])
    batch, _ = build_batch(learner, groups, cfg)
    flat = [ro for g in groups for ro in g]
    cut = torch.tensor([ro.finish_reason == "length" for ro in flat])
    assert cut.any()  # 3 tokens are too few to finish an answer
    assert batch.loss_mask[cut].sum() == 0 and batch.advantages[cut].abs().sum() == 0
    assert batch.loss_weights[cut].sum() == 0


def test_group_advantages_are_broadcast_over_each_completions_tokens():
    cfg, learner, groups = _setup(["algo.advantage=dr_grpo"])
    batch, _ = build_batch(learner, groups, cfg)
    # rewards of group 0 are 0,1,2,0 -> mean 0.75 -> advantages -0.75, 0.25, 1.25, -0.75
    expected = [-0.75, 0.25, 1.25, -0.75]
    for row, value in enumerate(expected):
        n = int(batch.loss_mask[row].sum())
        assert torch.allclose(batch.advantages[row, :n], torch.full((n,), value))
        assert batch.advantages[row, n:].abs().sum() == 0


def test_chunked_logprobs_give_the_same_policy_loss_and_gradients():
    cfg, learner, groups = _setup(["algo.entropy_coef=0.01"])
    batch, _ = build_batch(learner, groups, cfg)
    full_loss, full = _grads(learner, batch, cfg, micro=5)
    cfg.optim.logprob_chunk = 16
    chunk_loss, chunked = _grads(learner, batch, cfg, micro=5)
    assert chunk_loss == pytest.approx(full_loss, abs=1e-6)
    for a, b in zip(full, chunked):
        assert torch.allclose(a, b, atol=1e-6)


def test_length_sorted_micro_batches_keep_the_loss_and_cut_padding():
    from graft.train.batch import padding_fraction
    from graft.train.rl import update

    cfg, learner, groups = _setup(["algo.advantage=dr_grpo"])
    for g in groups[1:]:  # long prompts in two groups: rows now differ a lot in length
        for ro in g:
            ro.prompt_ids = ro.prompt_ids * 3
    batch, _ = build_batch(learner, groups, cfg)
    whole_loss, whole = _grads(learner, batch, cfg, micro=len(batch))
    learner.policy.module.zero_grad()
    total = max(float(batch.loss_mask.sum()), 1.0)
    parts = batch.split_by_length(4)
    assert sorted(len(mb) for mb in parts) == sorted(len(mb) for mb in batch.split(4))
    loss = sum(_policy_loss(learner, mb, cfg, total)["total"] for mb in parts)
    grads = [p.grad.clone() for p in learner.policy.module.parameters() if p.grad is not None]
    assert loss == pytest.approx(whole_loss, abs=1e-6)
    for a, b in zip(whole, grads):
        assert torch.allclose(a, b, atol=1e-6)
    assert padding_fraction(parts) < padding_fraction(batch.split(4)) - 0.1
    cfg.optim.micro_batch_size, cfg.optim.sort_by_length = 4, True  # wired through the update
    assert update(learner, batch, cfg, lr=0.0)[2] == pytest.approx(padding_fraction(parts))
