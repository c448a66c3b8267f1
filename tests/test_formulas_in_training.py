"""Registered advantages, losses and KL estimators, run through the real stages, give the numbers
their docstring formulas imply; every expected value is computed by hand here, never by the
registry function under test."""

import copy
import statistics
import zlib

import pytest
import torch

from graft.algos import LOSS_AGG, POLICY_LOSSES
from graft.config import build_config
from graft.curriculum.step import Curriculum
from graft.curriculum.uniform import UniformStream
from graft.mix.schedules import MIX_SCHEDULES
from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.models.tokenizer import CharTokenizer
from graft.rollout.sources import ROLLOUT_SOURCES
from graft.rollout.types import Request
from graft.tasks.arithmetic import ArithmeticTask
from graft.tasks.base import Score
from graft.train.batch import completion_logprobs
from graft.train.collect import collect, sample_groups
from graft.train.loop import start_rl
from graft.train.rl import Learner, update
from graft.train.targets import build_batch

G, MAX_NEW = 4, 10
# shaped rewards per group: mixed, mixed with ties, and one flat group (nothing to learn from)
REWARDS = [[0.0, 1.0, 2.0, 0.0], [1.0, 0.5, 1.0, 3.0], [1.0, 1.0, 1.0, 1.0]]


def _policy(seed=0):
    tiny = TinyConfig(vocab_size=CharTokenizer().vocab_size, d_model=32, n_layers=1, n_heads=2)
    return TinyPolicy.create(tiny, seed=seed)


def _setup(overrides, rewards=REWARDS):
    cfg = build_config({}, [f"rl.num_generations={G}", f"rl.max_new_tokens={MAX_NEW}", *overrides])
    policy = _policy()
    task = ArithmeticTask(difficulty=1, num_train=20, num_test=4)
    groups = _sample(policy, task, cfg, seed=0, rewards=rewards)
    return cfg, policy, task, groups


def _sample(policy, task, cfg, seed, rewards=REWARDS):
    groups = sample_groups(policy, task, task.train_examples()[:len(rewards)], cfg,
                           seed, version=0)
    for g, row in zip(groups, rewards):
        for ro, r in zip(g, row):
            ro.shaped_reward = r
    return groups


def _lengths(groups):
    return [len(ro.completion_ids) for g in groups for ro in g]


# ---------------------------------------------------------------- 1. group advantages


def _grpo(rs):
    m, s = statistics.fmean(rs), statistics.stdev(rs)  # stdev: unbiased (G - 1)
    return [0.0 if len(set(rs)) == 1 else (r - m) / (s + 1e-6) for r in rs]


def _dr_grpo(rs):
    m = statistics.fmean(rs)
    return [0.0 if len(set(rs)) == 1 else r - m for r in rs]


def _rloo(rs):
    others = [[rs[j] for j in range(len(rs)) if j != i] for i in range(len(rs))]
    return [0.0 if len(set(rs)) == 1 else r - sum(o) / len(o) for r, o in zip(rs, others)]


def _lite(rs, batch_std):
    m = statistics.fmean(rs)
    return [0.0 if len(set(rs)) == 1 else (r - m) / (batch_std + 1e-6) for r in rs]


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "lite"])
def test_group_advantages_follow_their_formula_on_every_loss_token(name):
    """grpo: A_i = (r_i - mean r) / (std_unbiased r + 1e-6); dr_grpo: A_i = r_i - mean r;
    rloo: A_i = r_i - 1/(G-1) sum_{j != i} r_j; lite: A_i = (r_i - mean_group r) /
    (std_unbiased over all P*G rewards + 1e-6). A flat group gets exactly 0; padding gets 0."""
    cfg, policy, _, groups = _setup([f"algo.advantage={name}"])
    learner = Learner(policy, torch.optim.SGD(policy.module.parameters(), lr=0.0))
    batch, _ = build_batch(learner, groups, cfg)
    batch_std = statistics.stdev([r for row in REWARDS for r in row])
    expected = [a for rs in REWARDS
                for a in (_lite(rs, batch_std) if name == "lite" else globals()[f"_{name}"](rs))]
    assert any(abs(a) > 0.1 for a in expected)
    for row, (value, n) in enumerate(zip(expected, _lengths(groups))):
        assert batch.loss_mask[row, :n].sum() == n and batch.loss_mask[row, n:].sum() == 0
        got = batch.advantages[row, :n]
        assert torch.allclose(got, torch.full((n,), value), atol=1e-6), (row, value)
        assert batch.advantages[row, n:].abs().sum() == 0


# ---------------------------------------------------------------- 2. policy losses x aggregation


def _weight(agg, lengths, row):
    """The hand-written aggregation weight of each token of ``row`` (every row has tokens)."""
    B = len(lengths)
    return {"token_mean": 1.0 / sum(lengths), "seq_mean_token_mean": 1.0 / (lengths[row] * B),
            "seq_mean_token_sum": 1.0 / B, "seq_sum_norm": 1.0 / (B * MAX_NEW)}[agg]


@pytest.mark.parametrize("agg", sorted(LOSS_AGG))
@pytest.mark.parametrize("loss", sorted(POLICY_LOSSES))
def test_policy_loss_at_ratio_one_and_its_first_step(loss, agg):
    """At the first pass rho = exp(logp - old_logp) = 1 (the sampler recorded old_logp with these
    weights). ppo_clip: L_t = max(-A rho, -A clip(rho)) = -A; gspo: s_i = exp(mean_t log rho) = 1,
    L_t = -A; cispo: L_t = -sg(clip(rho)) A logp_t = -A logp_t. policy = sum_t w_t L_t with the
    aggregation's weights; clip_frac = 0. All three have gradient -sum_t w_t A_t d logp_t at
    rho = 1, so an SGD step of lr 1 without clipping moves the weights by minus that gradient."""
    cfg, policy, _, groups = _setup([f"algo.policy_loss={loss}", f"algo.loss_agg={agg}",
                                     "optim.grad_clip=1e9", "rl.num_iterations=1"])
    learner = Learner(policy, torch.optim.SGD(policy.module.parameters(), lr=1.0))
    batch, _ = build_batch(learner, groups, cfg)
    lengths = _lengths(groups)
    before = copy.deepcopy(policy)
    logp, _ = completion_logprobs(before, batch)  # (B, T) with gradient, the current weights
    on = batch.loss_mask > 0
    assert torch.allclose(logp[on], batch.old_logprobs[on], atol=1e-5)  # ratio 1 up to float error
    A = [float(batch.advantages[i, 0]) for i in range(len(lengths))]
    w = torch.tensor([_weight(agg, lengths, i) for i in range(len(lengths))])[:, None]
    w = w * batch.loss_mask  # (B, T)
    if loss == "cispo":
        expected = sum(-w[i, t] * A[i] * float(logp[i, t].detach())
                       for i, n in enumerate(lengths) for t in range(n))
    else:
        expected = sum(-A[i] * n * _weight(agg, lengths, i) for i, n in enumerate(lengths))
    surrogate = -(w * batch.advantages * logp).sum()  # shared gradient at rho = 1
    surrogate.backward()
    hand = [p.grad.clone() for p in before.module.parameters()]
    old = [p.detach().clone() for p in policy.module.parameters()]

    stats, grad_norm, _ = update(learner, batch, cfg, lr=1.0)
    assert stats.policy == pytest.approx(float(expected), abs=1e-5)
    assert stats.total == pytest.approx(stats.policy, abs=1e-6)  # no KL, no entropy bonus
    assert stats.clip_frac == 0.0
    assert grad_norm > 0
    hand_norm = float(torch.cat([g.flatten() for g in hand]).norm())
    assert grad_norm == pytest.approx(hand_norm, rel=1e-4)
    for (name, p), p0, g in zip(policy.module.named_parameters(), old, hand):
        assert not torch.equal(p.detach(), p0), f"{name} did not move"
        assert torch.allclose(p.detach() - p0, -g, atol=1e-6, rtol=1e-3), name


# ---------------------------------------------------------------- 3. KL to the reference


def _kl(name, logp, ref):
    x = ref - logp
    return {"k1": -x, "k2": 0.5 * x * x, "k3": torch.exp(x) - x - 1.0}[name]


@pytest.mark.parametrize("kl", ["k1", "k2", "k3"])
def test_kl_in_loss_starts_at_zero_then_measures_the_drift(kl):
    """Schulman's estimators with x = log pi_ref - log pi_theta: k1 = -x, k2 = x^2/2,
    k3 = e^x - x - 1, token-mean aggregated. The reference is the starting policy, so the first
    update's kl is 0; after one step, a second batch gives the hand-computed value (> 0 for k2, k3).
    LossStats: total = policy + kl_coef * kl - entropy_coef * entropy."""
    cfg, policy, task, groups = _setup([f"algo.kl={kl}", "algo.kl_coef=0.1", "algo.kl_in=loss",
                                        "algo.entropy_coef=0.01"])
    learner = start_rl(policy, cfg)
    assert learner.ref is not None and learner.ref is not policy
    batch, _ = build_batch(learner, groups, cfg)
    first, _, _ = update(learner, batch, cfg, lr=1e-2)
    assert first.kl == pytest.approx(0.0, abs=1e-6)

    batch, _ = build_batch(learner, _sample(policy, task, cfg, seed=1), cfg)
    with torch.no_grad():
        logp, _ = completion_logprobs(policy, batch)
        ref, _ = completion_logprobs(learner.ref, batch)
    on = batch.loss_mask > 0
    expected = float(_kl(kl, logp, ref)[on].sum() / on.sum())
    second, _, _ = update(learner, batch, cfg, lr=1e-2)
    assert second.kl == pytest.approx(expected, abs=1e-6)
    if kl == "k1":
        assert float((logp - ref)[on].abs().max()) > 1e-3  # the policy did move
    else:
        assert second.kl > 1e-6
    for s in (first, second):
        assert s.entropy > 0
        assert s.total == pytest.approx(s.policy + 0.1 * s.kl - 0.01 * s.entropy, abs=1e-6)


# ---------------------------------------------------------------- 4. dynamic sampling


class CrcTask(ArithmeticTask):
    """Reward = crc32(completion) % 2, except 0 for every completion of a ``flat`` prompt."""

    def __init__(self, flat):
        super().__init__(difficulty=1, num_train=30, num_test=4)
        self.flat = set(flat)

    def score(self, example, completion):
        r = 0.0 if example.prompt in self.flat else float(zlib.crc32(completion.encode()) % 2)
        return Score(reward=r, correct=r > 0, parts={})


def _varied(group):
    return len({ro.verifier_reward for ro in group}) > 1


@pytest.mark.parametrize(("want", "n_asked", "budget"),
                         [(3, 3, 1), (3, 3, 2), (3, 3, 8), (2, 5, 8)])
def test_dynamic_sampling_drops_zero_variance_groups_and_refills_in_order(want, n_asked, budget):
    """DAPO dynamic sampling: keep groups whose verifier rewards differ, at most rl.num_prompts of
    them, in sampling order; refill from the front of ``refills`` in rounds of
    min(want - kept, budget - extra) prompts until want are kept or select.max_extra_prompts is
    spent."""
    cfg = build_config({}, [f"rl.num_generations={G}", f"rl.max_new_tokens={MAX_NEW}",
                            f"rl.num_prompts={want}", "select.dynamic_sampling=true",
                            f"select.max_extra_prompts={budget}"])
    examples = ArithmeticTask(difficulty=1, num_train=30, num_test=4).train_examples()
    asked, refills = examples[:n_asked], examples[n_asked : n_asked + 9]
    task = CrcTask(flat=[asked[0].prompt, asked[2].prompt, refills[0].prompt])
    policy = _policy()
    schedule = MIX_SCHEDULES[cfg.mix.schedule](cfg)
    source = ROLLOUT_SOURCES[cfg.rollout.strategy](cfg)
    curriculum = Curriculum(cfg, UniformStream(examples, 0))
    got = collect(source, policy, task, [Request(ex, n=G) for ex in asked], refills, schedule,
                  schedule.plan(cfg.sft.steps), curriculum, cfg, 3,  # step key 3: asked[1]'s
                  version=0)  # rewards differ (with keyed sampling, key 0's 4 completions shared a parity)
    sel, extra = got.select, int(got.select.extra_prompts)
    # sampled: the requests, then refills taken in order from the front
    assert [g.example for g in got.sampled] == asked + refills[:extra]
    flags = [_varied(g) for g in got.sampled]
    assert not flags[0] and not flags[2]  # flat prompts were sampled ...
    assert all(_varied(g) for g in got.groups)  # ... and none is kept
    assert got.groups == [g for g, ok in zip(got.sampled, flags) if ok][:want]
    assert sel.kept_groups == len(got.groups) == min(want, sum(flags))
    assert extra <= budget and sel.extra_rollouts == extra * G
    # rounds: stop as soon as want are kept, each round asks for the deficit at most
    kept, used = sum(flags[:n_asked]), 0
    while kept < want and used < budget:
        count = min(want - kept, budget - used)
        kept, used = kept + sum(flags[n_asked + used : n_asked + used + count]), used + count
    assert used == extra and sel.filled == float(kept >= want)
    if n_asked == 3:  # one informative request: refills were needed
        assert sum(flags[:3]) == 1 and extra > 0
    if (n_asked, budget) == (3, 8):
        assert sel.filled == 1.0 and extra < budget  # stopped before the budget ran out
    if budget == 1:
        assert sel.filled == 0.0 and sel.kept_groups == 1.0  # refills[0] is flat too
    if n_asked == 5:  # more informative requests than wanted: no refill, the first `want` kept
        assert sum(flags) > want and extra == 0
