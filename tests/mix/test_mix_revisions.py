"""The mixer's revisions (requests for hints and injected demonstrations), how the rollout source
carries them out, and how their demonstration tokens reach the batch and the loss."""

import copy

import pytest
import torch

from graft.algos import POLICY_LOSSES
from graft.algos.losses import aggregate
from graft.config import build_config
from graft.mix.revisions import failing, hint_requests, inject_requests
from graft.mix.rules import policy_shaping_loss
from graft.mix.schedules import Interleaved
from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.models.tokenizer import CharTokenizer
from graft.rewards.scoring import shape_groups, verify_groups
from graft.rollout.rng import row_keys
from graft.rollout.sources import IidSource
from graft.rollout.types import Group, apply_revisions
from graft.tasks.arithmetic import ArithmeticTask
from graft.tasks.base import DemoSubset
from graft.train.batch import completion_logprobs
from graft.train.collect import REVISIONS, keyed, sample_groups
from graft.train.rl import Learner, _policy_loss
from graft.train.targets import build_batch

G = 4


def _setup(overrides=()):
    cfg = build_config({}, [f"rl.num_generations={G}", "rl.max_new_tokens=16", *overrides])
    policy = TinyPolicy.create(TinyConfig(vocab_size=CharTokenizer().vocab_size, d_model=32, n_layers=1,
                                          n_heads=2), seed=0)
    task = ArithmeticTask(difficulty=1, num_train=20, num_test=4)
    examples = task.train_examples()[:3]
    groups = sample_groups(policy, task, examples, cfg, 0, version=0)
    return cfg, policy, task, examples, groups


def _revise(cfg, policy, task, groups, requests, seed=0, version=0):
    """Carry out revision requests as the step does: key, sample, verify, put in place, shape."""
    revised, report = IidSource(cfg).generate(policy, keyed(requests, seed, 0, REVISIONS), version)
    verify_groups(task, revised)
    out, _ = apply_revisions(groups, requests, revised)
    shape_groups(out, cfg.shaping, cfg.rl.max_new_tokens)
    return out, report


def test_failing_needs_no_correct_completion_and_a_demonstration():
    _, _, task, _examples, groups = _setup()
    assert failing(groups) == [0, 1, 2]  # an untrained policy solves nothing
    groups[1][2].correct = True
    no_demo = DemoSubset(task, 0.0, 0).train_examples()[2]
    assert failing([groups[0], groups[1], Group(no_demo, groups[2].rollouts)]) == [0]


def test_interleaved_buffers_failures_and_asks_for_nothing():
    cfg, policy, _task, examples, groups = _setup(["mix.schedule=interleaved", "sft.steps=0"])
    schedule = Interleaved(cfg)
    plan = schedule.plan(0)
    assert schedule.revise(plan, groups, policy.tokenizer) == []
    assert schedule.buffer == examples
    assert schedule.observe(0, plan, None)["mix/buffered"] == 3.0


def test_inject_replaces_the_last_rollout_by_the_demonstration():
    cfg, policy, task, examples, groups = _setup()
    before = copy.deepcopy(groups)
    requests = inject_requests(groups, failing(groups))
    assert [(r.n, r.demonstration, r.replaces, r.keep) for r in requests] == [(0, True, i, G - 1) for i in range(3)]
    out, report = _revise(cfg, policy, task, groups, requests, version=7)
    assert report.fwd_tokens == 0  # placed, not sampled
    tok = policy.tokenizer
    for ex, g, old in zip(examples, out, before):
        demo = g[-1]
        assert demo.completion_ids == tok.encode(ex.demonstration) + [tok.eos_id]
        assert demo.logprobs == [0.0] * len(demo.completion_ids)  # behaviour probability 1
        assert demo.demo_len == len(demo.completion_ids) and demo.policy_shaping
        assert demo.correct and demo.verifier_reward == 1.0 and demo.policy_version == 7
        assert [ro.completion_ids for ro in g[:-1]] == [ro.completion_ids for ro in old[:-1]]
        assert not any(ro.policy_shaping or ro.demo_len for ro in g[:-1])
    # the sampled groups themselves are untouched (rollout metrics stay the policy's own)
    assert [[ro.completion_ids for ro in g] for g in groups] == [[ro.completion_ids for ro in g] for g in before]
    assert all(ro.shaped_reward is not None for g in out for ro in g)


def test_injected_group_gets_grpo_advantages_and_the_shaped_loss():
    cfg, policy, task, _examples, groups = _setup()
    out, _ = _revise(cfg, policy, task, groups, inject_requests(groups, failing(groups)))
    learner = Learner(policy, torch.optim.SGD(policy.module.parameters(), lr=0.0))
    batch, _ = build_batch(learner, out, cfg)
    demo_rows = [G - 1, 2 * G - 1, 3 * G - 1]
    # rewards 0, 0, 0, 1 -> mean 0.25, unbiased std 0.5 -> advantages -0.5 (own) and 1.5 (demonstration)
    for row in range(3 * G):
        n = int(batch.loss_mask[row].sum())
        want = 1.5 if row in demo_rows else -0.5
        assert torch.allclose(batch.advantages[row, :n], torch.full((n,), want), atol=1e-5)
        assert batch.policy_shaping_mask[row].sum() == (n if row in demo_rows else 0)
    assert torch.equal(batch.demo_mask, batch.policy_shaping_mask)
    # the loss: ppo_clip on own tokens, -A p / (p + gamma) on demonstration tokens, token mean
    total = float(batch.loss_mask.sum())
    got = _policy_loss(learner, batch, cfg, total)
    with torch.no_grad():
        logp, _ = completion_logprobs(policy, batch, cfg.rl.temperature)
        ppo, _ = POLICY_LOSSES["ppo_clip"](logp=logp, old_logp=batch.old_logprobs, advantages=batch.advantages,
                                           mask=batch.loss_mask, clip_low=0.2, clip_high=0.28)
        luffy = policy_shaping_loss(logp, batch.advantages, batch.policy_shaping_mask, 0.1)
        want = aggregate(torch.where(batch.policy_shaping_mask > 0, luffy, ppo), batch.loss_weights)
    assert got["policy"] == pytest.approx(want.item(), abs=1e-6)
    assert got["total"] == pytest.approx(want.item(), abs=1e-6)  # no KL, no entropy bonus


def test_hints_resample_failing_groups_with_a_demonstration_prefix():
    cfg, policy, task, examples, groups = _setup()
    before = copy.deepcopy(groups)
    requests = hint_requests(groups, failing(groups), policy.tokenizer, 1.0, torch.Generator().manual_seed(0),
                             G, cfg.rl.max_new_tokens)
    out, report = _revise(cfg, policy, task, groups, requests, 1, 3)
    tok = policy.tokenizer
    hint_total = 0
    for ex, g in zip(examples, out):
        demo = tok.encode(ex.demonstration)
        n = min(len(demo), cfg.rl.max_new_tokens - 1)  # p = 1: the whole demonstration, capped
        hint_total += n
        assert len(g) == G
        for ro in g:
            assert ro.completion_ids[:n] == demo[:n] and ro.demo_len == n and not ro.policy_shaping
            assert ro.logprobs[:n] == [0.0] * n and len(ro.logprobs) == len(ro.completion_ids)
            assert len(ro.completion_ids) <= cfg.rl.max_new_tokens
            assert ro.prompt_ids == tok.encode(ex.prompt)  # trained on the hint-free prompt
            assert ro.text == tok.decode(ro.completion_ids)
            assert ro.correct == task.score(ex, ro.text).correct
    assert sum(len(r.prefix) for r in requests) == hint_total
    # sampling cost: every one of the 3 x G rows prefills prompt + hint and decodes its raw continuation
    assert report.fwd_tokens > 3 * G * min(len(tok.encode(ex.prompt)) + 1 for ex in examples)
    assert [[ro.completion_ids for ro in g] for g in groups] == [[ro.completion_ids for ro in g] for g in before]


def test_hint_cost_counts_every_hinted_row():
    """Bug fixed in the pipeline refactor: the hint hook zipped its H prompts with its H x G samples,
    so only H of the rows' costs were counted in perf/fwd_tokens."""
    cfg, policy, _task, _examples, groups = _setup()
    requests = hint_requests(groups, failing(groups), policy.tokenizer, 0.5, torch.Generator().manual_seed(0),
                             G, cfg.rl.max_new_tokens)
    source = IidSource(cfg)
    policy.module.eval()
    contexts = [policy.tokenizer.encode(r.example.prompt) + list(r.prefix) for r in requests]
    raw = source.sample_rows(policy, contexts, [G] * len(requests), row_keys([r.seed for r in requests],
                             [G] * len(requests)), 0,
                             max_new_tokens=cfg.rl.max_new_tokens - min(len(r.prefix) for r in requests),
                             stop_context=[list(r.prefix) for r in requests for _ in range(G)])
    want = sum(len(contexts[i // G]) + len(ro.completion_ids) for i, ro in enumerate(raw))
    _, report = source.generate(policy, requests, 0)
    assert report.fwd_tokens == want


def test_hint_tokens_take_the_ratio_to_behaviour_probability_one():
    cfg, policy, task, _examples, groups = _setup()
    requests = hint_requests(groups, failing(groups), policy.tokenizer, 0.5, torch.Generator().manual_seed(0),
                             G, cfg.rl.max_new_tokens)
    out, _ = _revise(cfg, policy, task, groups, requests, 1)
    learner = Learner(policy, torch.optim.SGD(policy.module.parameters(), lr=0.0))
    batch, _ = build_batch(learner, out, cfg)
    assert batch.policy_shaping_mask.sum() == 0
    for row, ro in enumerate(ro for g in out for ro in g):
        assert batch.demo_mask[row, : ro.demo_len].sum() == ro.demo_len
        assert batch.demo_mask[row, ro.demo_len :].sum() == 0
    with torch.no_grad():
        logp, _ = completion_logprobs(policy, batch, cfg.rl.temperature)
    on = batch.demo_mask > 0
    # hint tokens: old logprob 0, so rho = pi_theta(tok) <= 1; continuation tokens: rho = 1 at the start
    assert torch.all(batch.old_logprobs[on] == 0) and torch.all(logp[on] < 0)
    cont = (batch.loss_mask > 0) & ~on
    assert torch.allclose(logp[cont], batch.old_logprobs[cont], atol=1e-4)


def test_hints_do_nothing_at_p_zero_or_without_failures():
    _cfg, policy, _task, _examples, groups = _setup()
    rng = torch.Generator().manual_seed(0)
    state = rng.get_state()
    assert hint_requests(groups, failing(groups), policy.tokenizer, 0.0, rng, G, 16) == []
    assert torch.equal(rng.get_state(), state)  # no hint length drawn
    for g in groups:
        g[0].correct = True
    assert failing(groups) == [] and inject_requests(groups, failing(groups)) == []


def test_demo_subset_keeps_a_seeded_share_of_demonstrations():
    task = ArithmeticTask(difficulty=2, num_train=40, num_test=5)
    part = DemoSubset(task, 0.25, seed=3)
    kept = [i for i, ex in enumerate(part.train_examples()) if ex.demonstration]
    assert len(kept) == 10
    assert kept == [i for i, ex in enumerate(DemoSubset(task, 0.25, seed=3).train_examples()) if ex.demonstration]
    assert kept != [i for i, ex in enumerate(DemoSubset(task, 0.25, seed=4).train_examples()) if ex.demonstration]
    assert [ex.prompt for ex in part.train_examples()] == [ex.prompt for ex in task.train_examples()]
    assert part.test_examples() == task.test_examples() and part.name == "arithmetic"
    ex = part.train_examples()[0]
    assert part.score(ex, "A:" + ex.answer).correct
    with pytest.raises(ValueError):
        DemoSubset(task, 1.5, seed=0)
