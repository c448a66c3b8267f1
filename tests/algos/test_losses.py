"""Token log-probs, entropy, PPO clip (DAPO clip-higher), SFT loss and token mean, by hand."""

import math

import torch

from graft.algos import LOSS_AGG, POLICY_LOSSES
from graft.algos.losses import (
    entropy_from_logits,
    ppo_clip_loss,
    sft_loss,
    token_logprobs,
    token_mean,
)

LN2, LN3 = math.log(2.0), math.log(3.0)


def assert_same(a, b):
    torch.testing.assert_close(a, b, atol=0, rtol=0, equal_nan=True)


# ---------------------------------------------------------------- token_logprobs / entropy

# one sequence, 3 tokens, vocabulary of 3
#   t0: logits [0, 0, ln 2] -> p = [1/4, 1/4, 1/2]; target 2 -> ln 1/2 = -0.6931471806
#   t1: logits [1, 1, 1]    -> p = [1/3] * 3;       target 0 -> ln 1/3 = -1.0986122887
#   t2: logits [0, 0, ln 2] -> target 0             -> ln 1/4 = -1.3862943611
LOGITS = torch.tensor([[[0.0, 0.0, LN2], [1.0, 1.0, 1.0], [0.0, 0.0, LN2]]])  # (1, 3, 3)
TARGETS = torch.tensor([[2, 0, 0]])


def test_token_logprobs_by_hand():
    out = token_logprobs(LOGITS, TARGETS)
    assert out.shape == (1, 3) and out.dtype == torch.float32
    expected = torch.tensor([[-0.6931471806, -1.0986122887, -1.3862943611]])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_token_logprobs_shift_invariant_and_no_overflow():
    out = token_logprobs(LOGITS + 1000.0, TARGETS)
    # float32 spacing at 1000 is 6e-5, so ln 2 itself is only kept to ~3e-5 after the shift
    torch.testing.assert_close(
        out, torch.tensor([[-0.6931471806, -1.0986122887, -1.3862943611]]), atol=1e-4, rtol=0
    )


def test_token_logprobs_gradient_is_onehot_minus_softmax():
    logits = LOGITS.clone().requires_grad_(True)
    token_logprobs(logits, TARGETS).sum().backward()
    expected = torch.tensor(
        [[[-0.25, -0.25, 0.5], [2 / 3, -1 / 3, -1 / 3], [0.75, -0.25, -0.5]]]
    )
    torch.testing.assert_close(logits.grad, expected, atol=1e-6, rtol=0)


def test_token_logprobs_low_precision_in_float32_out():
    logits = torch.ones(2, 4, 3, dtype=torch.bfloat16)
    out = token_logprobs(logits, torch.zeros(2, 4, dtype=torch.long))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full((2, 4), -1.0986122887), atol=1e-6, rtol=0)


def test_entropy_by_hand():
    out = entropy_from_logits(LOGITS)
    # t0, t2: -(2 * 1/4 ln 1/4 + 1/2 ln 1/2) = 1.0397207708; t1: ln 3 = 1.0986122887
    expected = torch.tensor([[1.0397207708, 1.0986122887, 1.0397207708]])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_entropy_uniform_is_log_v():
    for V in (2, 5, 50):
        out = entropy_from_logits(torch.full((2, 3, V), 7.0))
        assert out.shape == (2, 3) and out.dtype == torch.float32
        torch.testing.assert_close(out, torch.full((2, 3), math.log(V)), atol=1e-6, rtol=0)
    # large logits do not overflow: ln 2 = 0.6931471806
    out = entropy_from_logits(torch.full((1, 1, 2), 1e4, dtype=torch.bfloat16))
    torch.testing.assert_close(out, torch.tensor([[0.6931471806]]), atol=1e-6, rtol=0)


def test_logprobs_and_entropy_do_not_mutate():
    logits, targets = LOGITS.clone(), TARGETS.clone()
    token_logprobs(logits, targets)
    entropy_from_logits(logits)
    assert_same(logits, LOGITS)
    assert_same(targets, TARGETS)


# ---------------------------------------------------------------- ppo_clip_loss

# DAPO band: clip_low 0.2, clip_high 0.28 -> rho in [0.8, 1.28] is inside.
CL, CH = 0.2, 0.28
# rho: below, below, inside, inside (only thanks to clip-higher), above
RATIOS = [0.5, 0.75, 1.0, 1.25, 1.5]
OLD = -1.0


def _ppo_inputs():
    log_r = [math.log(r) for r in RATIOS]
    rows = [
        log_r,  # A = +2
        log_r,  # A = -1
        log_r,  # A = 0
        [math.log(0.5), math.log(1.5), 200.0, -200.0, float("nan")],  # A = +2, partly masked
        log_r,  # A = +2, fully masked
    ]
    old = torch.full((5, 5), OLD)
    logp = old + torch.tensor(rows)  # (5, 5); row 3 holds overflow and nan in its padding
    adv = torch.tensor([2.0, -1.0, 0.0, 2.0, 2.0])
    mask = torch.ones(5, 5)
    mask[3, 2:] = 0.0
    mask[4] = 0.0
    return logp, old, adv, mask


# A = +2: L = max(-2 rho, -2 clip(rho)):
#   0.5 -> max(-1.0, -1.6) = -1.0; 0.75 -> -1.5; 1.0 -> -2.0; 1.25 -> -2.5;
#   1.5 -> max(-3.0, -2.56) = -2.56 (clipped)
# A = -1: L = max(rho, clip(rho)):
#   0.5 -> max(0.5, 0.8) = 0.8 (clipped); 0.75 -> 0.8 (clipped); 1.0 -> 1.0; 1.25 -> 1.25;
#   1.5 -> max(1.5, 1.28) = 1.5 (not clipped: the lower branch never binds for A < 0 above the band)
EXPECTED_LOSS = torch.tensor(
    [
        [-1.0, -1.5, -2.0, -2.5, -2.56],
        [0.8, 0.8, 1.0, 1.25, 1.5],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [-1.0, -2.56, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)
EXPECTED_CLIPPED = torch.tensor(
    [
        [False, False, False, False, True],
        [True, True, False, False, False],
        [False, False, False, False, False],
        [False, True, False, False, False],
        [False, False, False, False, False],
    ]
)
# dL/dlogp = -A * rho where unclipped (d rho / d logp = rho), 0 where clipped or masked
EXPECTED_GRAD = torch.tensor(
    [
        [-1.0, -1.5, -2.0, -2.5, 0.0],
        [0.0, 0.0, 1.0, 1.25, 1.5],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [-1.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)


def test_ppo_clip_loss_values_and_clipped_tokens():
    logp, old, adv, mask = _ppo_inputs()
    loss, clipped = ppo_clip_loss(logp, old, adv, mask, clip_low=CL, clip_high=CH)
    assert loss.shape == (5, 5) and clipped.dtype == torch.bool
    torch.testing.assert_close(loss, EXPECTED_LOSS, atol=1e-6, rtol=0)
    assert torch.equal(clipped, EXPECTED_CLIPPED)
    # masked tokens are exactly 0, even with overflow / nan in the padding
    assert torch.equal(loss[mask == 0], torch.zeros(int((mask == 0).sum())))


def test_ppo_clip_loss_gradient():
    logp, old, adv, mask = _ppo_inputs()
    logp.requires_grad_(True)
    loss, _ = ppo_clip_loss(logp, old, adv, mask, clip_low=CL, clip_high=CH)
    loss.sum().backward()
    assert torch.isfinite(logp.grad).all()
    torch.testing.assert_close(logp.grad, EXPECTED_GRAD, atol=1e-6, rtol=0)


def test_clip_low_and_clip_high_are_separate():
    logp = torch.log(torch.tensor([[1.25, 0.75]]))
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2)
    # symmetric 0.2: rho 1.25 with A = +2 is now above the band -> -2 * 1.2 = -2.4, clipped
    loss, clipped = ppo_clip_loss(logp, old, torch.tensor([2.0]), mask, clip_low=0.2, clip_high=0.2)
    torch.testing.assert_close(loss[0, 0], torch.tensor(-2.4), atol=1e-6, rtol=0)
    assert clipped[0, 0]
    # wider clip_low 0.3: rho 0.75 with A = -1 is inside [0.7, 1.28] -> 0.75, not clipped
    neg = torch.tensor([-1.0])
    loss, clipped = ppo_clip_loss(logp, old, neg, mask, clip_low=0.3, clip_high=0.28)
    torch.testing.assert_close(loss[0, 1], torch.tensor(0.75), atol=1e-6, rtol=0)
    assert not clipped[0, 1]


def test_per_token_advantages_match_per_sequence_broadcast():
    logp, old, adv, mask = _ppo_inputs()
    a_seq, c_seq = ppo_clip_loss(logp, old, adv, mask, CL, CH)
    a_tok, c_tok = ppo_clip_loss(logp, old, adv[:, None].expand(5, 5), mask, CL, CH)
    assert_same(a_seq, a_tok)
    assert torch.equal(c_seq, c_tok)
    # distinct per-token advantages: A = [2, -1] at rho = [1.5, 0.5] -> [-2.56, 0.8], both clipped
    loss, clipped = ppo_clip_loss(
        torch.log(torch.tensor([[1.5, 0.5]])), torch.zeros(1, 2), torch.tensor([[2.0, -1.0]]),
        torch.ones(1, 2), CL, CH,
    )
    torch.testing.assert_close(loss, torch.tensor([[-2.56, 0.8]]), atol=1e-6, rtol=0)
    assert clipped.all()


def test_bool_mask_equals_float_mask():
    logp, old, adv, mask = _ppo_inputs()
    lf, cf = ppo_clip_loss(logp, old, adv, mask, CL, CH)
    lb, cb = ppo_clip_loss(logp, old, adv, mask.bool(), CL, CH)
    assert_same(lf, lb)
    assert torch.equal(cf, cb)


def test_ppo_clip_loss_does_not_mutate():
    logp, old, adv, mask = _ppo_inputs()
    copies = [t.clone() for t in (logp, old, adv, mask)]
    ppo_clip_loss(logp, old, adv, mask, CL, CH)
    for t, c in zip((logp, old, adv, mask), copies):
        assert_same(t, c)


# ---------------------------------------------------------------- token_mean / sft_loss


def test_token_mean_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    # (1 + 2 + 5) / 3 = 2.6666667
    torch.testing.assert_close(token_mean(x, m), torch.tensor(8.0 / 3.0), atol=1e-6, rtol=0)
    assert_same(token_mean(x, m.bool()), token_mean(x, m))


def test_token_mean_empty_mask_is_zero_not_nan():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert token_mean(x, torch.zeros(2, 2)) == 0.0
    # a fully masked row does not change the mean of the others: (3 + 4) / 2
    m = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(token_mean(x, m), torch.tensor(3.5), atol=1e-6, rtol=0)


def test_token_mean_ignores_nan_and_inf_under_the_mask():
    x = torch.tensor([[1.0, float("nan")], [float("inf"), 3.0]], requires_grad=True)
    m = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = token_mean(x, m)
    torch.testing.assert_close(out, torch.tensor(2.0), atol=1e-6, rtol=0)
    out.backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.5, 0.0], [0.0, 0.5]]), atol=0, rtol=0)


def test_sft_loss_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -9.0, -9.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    before = logp.clone()
    # (1 + 2 + 0.5) / 3 = 1.1666667
    torch.testing.assert_close(sft_loss(logp, m), torch.tensor(3.5 / 3.0), atol=1e-6, rtol=0)
    assert sft_loss(logp, torch.zeros(2, 3)) == 0.0
    assert_same(logp, before)


def test_registries():
    assert POLICY_LOSSES == {"ppo_clip": ppo_clip_loss}
    assert LOSS_AGG == {"token_mean": token_mean}
