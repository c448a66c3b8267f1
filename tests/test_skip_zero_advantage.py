"""optim.skip_zero_advantage: rows whose advantage is zero everywhere leave the update, which stays
the same (gradient, step, statistics) for fewer trained tokens."""

import copy
import tempfile
from pathlib import Path

import pytest
import torch
from same_metrics import assert_same_metrics

from graft.algos import POLICY_LOSSES
from graft.algos.selection import trained_rows
from graft.config import build_config
from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.models.tokenizer import CharTokenizer
from graft.tasks.arithmetic import ArithmeticTask
from graft.train.collect import sample_groups
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train
from graft.train.rl import Learner, trained_part, update
from graft.train.targets import build_batch


def test_trained_rows_by_hand():
    advantages = torch.tensor([[0.0, 0.0], [0.0, 0.5], [0.0, 2.0], [0.0, 0.0]])  # (4, 2)
    loss_mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    keep = torch.tensor([False, False, False, True])
    # row 0: zero everywhere; row 1: a signal; row 2: its only non-zero advantage is masked; row 3: kept
    assert trained_rows(advantages, loss_mask, keep).tolist() == [False, True, False, True]


@pytest.mark.parametrize("name", sorted(POLICY_LOSSES))
def test_every_policy_loss_is_zero_with_its_gradient_where_the_advantage_is(name):
    torch.manual_seed(0)
    logp = (torch.randn(3, 5) - 2).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(3, 5)  # ratios away from 1, some past the clip bounds
    advantages = torch.tensor([[0.0] * 5, [1.0] * 5, [-2.0] * 5])  # (3, 5): row 0 has none
    per_token, _ = POLICY_LOSSES[name](logp=logp, old_logp=old, advantages=advantages, mask=torch.ones(3, 5),
                                       clip_low=0.2, clip_high=0.28)
    per_token.sum().backward()
    assert torch.all(per_token[0] == 0) and torch.all(logp.grad[0] == 0)
    assert per_token[1:].abs().sum() > 0 and logp.grad[1:].abs().sum() > 0


def _setup(overrides):
    cfg = build_config({}, ["rl.num_generations=4", "rl.max_new_tokens=10", "optim.skip_zero_advantage=true",
                            *overrides])
    policy = TinyPolicy.create(TinyConfig(vocab_size=CharTokenizer().vocab_size, d_model=32, n_layers=1, n_heads=2), seed=0)
    task = ArithmeticTask(difficulty=1, num_train=20, num_test=4)
    groups = sample_groups(policy, task, task.train_examples()[:4], cfg, 0, version=0)
    for i, ro in enumerate(ro for g in groups for ro in g):  # groups 0 and 2 all equal, 1 and 3 spread
        ro.shaped_reward = 1.0 if i // 4 in (0, 2) else float(i % 4)  # 0, 1, 2, 3: no row at the mean
    return cfg, policy, groups


def _learner(policy):
    # plain SGD: parameters after a step differ exactly as the gradients do (Adam would blow the
    # rounding of near-zero gradients up to the size of a step)
    module = copy.deepcopy(policy)
    return Learner(module, torch.optim.SGD(module.module.parameters(), lr=0.1))


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_sum_norm"])
@pytest.mark.parametrize("loss", sorted(POLICY_LOSSES))
@pytest.mark.parametrize("advantage", ["grpo", "dr_grpo", "rloo"])
def test_the_update_on_the_trained_rows_is_the_whole_batchs(agg, loss, advantage):
    cfg, policy, groups = _setup([f"algo.loss_agg={agg}", f"algo.policy_loss={loss}", f"algo.advantage={advantage}",
                                  "rl.num_iterations=2", "optim.micro_batch_size=3"])  # a second pass: ratios != 1
    whole, part = _learner(policy), _learner(policy)
    batch, _ = build_batch(whole, groups, cfg)
    trained, skipped = trained_part(part, batch, cfg)
    assert skipped == 8 and len(trained) == 8  # the two all-equal groups
    want = update(whole, batch, cfg, lr=0.1)
    got = update(part, trained, cfg, lr=0.1, total_tokens=float(batch.loss_mask.sum()))
    assert got[1] == pytest.approx(want[1], rel=1e-5)  # gradient norm
    for key in ("policy", "total"):
        assert getattr(got[0], key) == pytest.approx(getattr(want[0], key), abs=1e-6), key
    assert got[0].clip_frac <= want[0].clip_frac + 1e-9  # the left-out rows' tokens count as unclipped
    for a, b in zip(whole.policy.module.parameters(), part.policy.module.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("override", ["algo.entropy_coef=0.01", "algo.kl=k3", "optim.skip_zero_advantage=false"])
def test_rows_stay_when_another_term_trains_them_or_the_switch_is_off(override):
    extra = [override, "algo.kl_coef=0.1"] if override == "algo.kl=k3" else [override]
    cfg, policy, groups = _setup(extra)
    learner = _learner(policy)
    if override == "algo.kl=k3":
        learner.ref = copy.deepcopy(policy)
    batch, _ = build_batch(learner, groups, cfg)
    trained, skipped = trained_part(learner, batch, cfg)
    assert trained is batch and skipped == 0


def test_a_demonstrations_shaping_rows_stay_and_a_batch_without_signal_keeps_one_row():
    cfg, policy, groups = _setup([])
    learner = _learner(policy)
    batch, _ = build_batch(learner, groups, cfg)
    batch.policy_shaping_mask[0, 0] = 1.0  # row 0 (an all-equal group) takes LUFFY's loss
    trained, skipped = trained_part(learner, batch, cfg)
    assert skipped == 7 and torch.equal(trained.ids[0], batch.ids[0])
    batch.policy_shaping_mask.zero_()
    batch.advantages.zero_()
    trained, skipped = trained_part(learner, batch, cfg)
    assert len(trained) == 1 and skipped == len(batch) - 1  # the optimizer still steps, on a zero gradient


def test_a_run_trains_the_same_on_fewer_tokens(tiny_overrides):
    # the overlong penalty spreads the untrained policy's rewards in some groups and not others
    base = tiny_overrides + ["shaping.overlong_cache=12", "rl.max_new_tokens=16", "optim.micro_batch_size=4"]
    runs = {}
    for skip in ("false", "true"):
        out = Path(tempfile.mkdtemp())
        train(prepare(build_config({}, base + [f"optim.skip_zero_advantage={skip}"])), out)
        runs[skip] = read_metrics(out / "metrics.jsonl")
    rl = [r for r in runs["true"] if "losses/policy" in r]
    plain = [r for r in runs["false"] if "losses/policy" in r]
    assert len(rl) == 4 and all(r["batch/skipped_rows"] > 0 for r in rl) and sum(r["optim/grad_norm"] > 0 for r in rl) >= 2
    assert all(a["perf/train_tokens"] < b["perf/train_tokens"] for a, b in zip(rl, plain))
    assert all("batch/skipped_rows" not in r for r in plain)
    # the sampler's entropy estimate covers every sampled row, so skipping leaves it as it is
    # (compared below with the other metrics); losses/entropy is the trained rows' and moves
    assert all("rollout/entropy" in r for r in rl + plain)
    assert any(a["losses/entropy"] != b["losses/entropy"] for a, b in zip(rl, plain))
    assert_same_metrics(runs["true"], runs["false"],
                        skip=("perf/train_tokens", "perf/compute", "losses/entropy", "batch/skipped_rows",
                              "perf/padding_frac"))
