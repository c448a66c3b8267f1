"""The mixer's pure rules against numbers worked out by hand (graft.mix.rules)."""

import itertools
import math

import pytest
import torch

from graft.mix.rules import (
    linear_weight,
    policy_shaping_loss,
    sample_hint_lengths,
    sasr_sft_probability,
    sft_share,
    uft_hint_probability,
)

# ---------------------------------------------------------------- UFT hint schedule


@pytest.mark.parametrize(("t", "horizon", "low", "high", "want"), [
    (0, 4, 0.0, 1.0, 0.5 * (1 + math.sqrt(0.5))),  # cos(pi/4) = sqrt(1/2): 0.853553...
    (1, 4, 0.0, 1.0, 0.5),  # cos(pi/2) = 0
    (3, 4, 0.1, 0.9, 0.1),  # cos(pi) = -1: exactly p_low on the last hinted step
    (0, 2, 0.2, 0.6, 0.4),  # 0.2 + 0.5 * 0.4 * (1 + 0)
    (4, 4, 0.1, 0.9, 0.0),  # after T_hint: no hint
    (9, 4, 0.1, 0.9, 0.0),
])
def test_uft_hint_probability(t, horizon, low, high, want):
    assert uft_hint_probability(t, horizon, low, high) == pytest.approx(want, abs=1e-12)


def test_uft_hint_probability_shrinks_and_rejects_an_empty_horizon():
    ps = [uft_hint_probability(t, 10, 0.05, 0.9) for t in range(10)]
    assert all(a > b for a, b in itertools.pairwise(ps))
    with pytest.raises(ValueError):
        uft_hint_probability(0, 0, 0.0, 1.0)


def test_hint_lengths_at_the_extremes_and_capped():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([5, 30, 0])
    assert sample_hint_lengths(lengths, 0.0, gen, max_len=20).tolist() == [0, 0, 0]
    assert sample_hint_lengths(lengths, 1.0, gen, max_len=20).tolist() == [5, 20, 0]  # 30 capped at 20


def test_hint_lengths_are_binomial_and_seeded():
    a = sample_hint_lengths(torch.full((2000,), 10), 0.3, torch.Generator().manual_seed(1), max_len=99)
    b = sample_hint_lengths(torch.full((2000,), 10), 0.3, torch.Generator().manual_seed(1), max_len=99)
    assert torch.equal(a, b) and a.dtype == torch.long
    assert a.min() >= 0 and a.max() <= 10
    # Binomial(10, 0.3): mean 3, variance 2.1; the mean of 2000 draws has std 0.032
    assert abs(a.float().mean().item() - 3.0) < 0.15
    assert abs(a.float().var().item() - 2.1) < 0.3


# ---------------------------------------------------------------- SASR-style switch


@pytest.mark.parametrize(("g", "ref", "want"), [
    (2.0, 4.0, 0.5),  # ratio inside the band
    (8.0, 4.0, 0.9),  # ratio 2 clipped to p_max
    (0.2, 4.0, 0.1),  # ratio 0.05 clipped to p_min
    (3.0, 0.0, 0.9),  # no reference yet: p_max
    (float("nan"), 4.0, 0.9),
])
def test_sasr_sft_probability(g, ref, want):
    assert sasr_sft_probability(g, ref, 0.1, 0.9) == pytest.approx(want, abs=1e-12)


# ---------------------------------------------------------------- LUFFY policy shaping


def test_policy_shaping_loss_values_and_gradient():
    # p = 0.1, 0.5 and a masked-out nan; gamma = 0.1, advantage 2 for the sequence
    logp = torch.log(torch.tensor([[0.1, 0.5, float("nan")]])).requires_grad_(True)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss = policy_shaping_loss(logp, torch.tensor([2.0]), mask, gamma=0.1)
    # f(0.1) = 0.1 / 0.2 = 0.5 -> -1; f(0.5) = 0.5 / 0.6 -> -5/3; masked -> 0
    assert loss.tolist()[0] == pytest.approx([-1.0, -5.0 / 3.0, 0.0], abs=1e-6)
    loss.sum().backward()
    # d(-A f)/d log p = -A * gamma * p / (p + gamma)^2: -2 * 0.01 / 0.04 = -0.5; -2 * 0.05 / 0.36
    assert logp.grad.tolist()[0] == pytest.approx([-0.5, -0.1 / 0.36, 0.0], abs=1e-6)


def test_policy_shaping_lifts_low_probability_tokens_above_the_plain_ratio():
    # plain ratio p / 1 (behaviour prob 1): d(-A p)/d log p = -A p = -0.2 at p = 0.1, A = 2;
    # shaped: -0.5 (previous test): the rare expert token gets 2.5x the push
    logp = torch.log(torch.tensor([[0.1]])).requires_grad_(True)
    policy_shaping_loss(logp, torch.tensor([[2.0]]), torch.ones(1, 1), gamma=0.1).sum().backward()
    assert logp.grad.item() == pytest.approx(-0.5, abs=1e-6)
    assert abs(logp.grad.item()) > abs(-2.0 * 0.1)


def test_policy_shaping_does_not_modify_its_inputs():
    logp = torch.tensor([[-1.0, -2.0]])
    adv = torch.tensor([[1.0, -1.0]])
    before = (logp.clone(), adv.clone())
    policy_shaping_loss(logp, adv, torch.ones(1, 2), gamma=0.1)
    assert torch.equal(logp, before[0]) and torch.equal(adv, before[1])


# ---------------------------------------------------------------- weights and shares


@pytest.mark.parametrize(("t", "horizon", "start", "end", "want"), [
    (0, 5, 1.0, 0.0, 1.0),
    (2, 5, 1.0, 0.0, 0.5),
    (4, 5, 1.0, 0.0, 0.0),
    (9, 5, 1.0, 0.0, 0.0),
    (3, 5, 0.1, 0.1, 0.1),  # constant
    (0, 1, 1.0, 0.3, 0.3),  # a horizon of one step is its end value
])
def test_linear_weight(t, horizon, start, end, want):
    assert linear_weight(t, horizon, start, end) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(("rl", "demo", "w", "want"), [
    (0.0, 0.0, 1.0, 1.0),  # an SFT step
    (1.0, 0.0, 0.0, 0.0),  # a pure RL step
    (1.0, 0.0, 0.1, 0.1 / 1.1),  # weighted: w / (w + 1)
    (1.0, 0.25, 0.0, 0.25),  # a quarter of the token weight on injected demonstration tokens
    (1.0, 0.25, 0.5, 0.5),  # (0.5 + 0.25) / (0.5 + 1)
    (0.0, 0.0, 0.0, 0.0),  # nothing to update
])
def test_sft_share(rl, demo, w, want):
    assert sft_share(rl, demo, w) == pytest.approx(want, abs=1e-12)
