"""Token log-probs, entropy, PPO clip (DAPO clip-higher), GSPO, CISPO, SFT loss, token mean and
the aggregation weights, by hand."""

import math

import pytest
import torch

from graft.algos import LOSS_AGG, POLICY_LOSSES
from graft.algos.losses import (
    aggregate,
    cispo_loss,
    entropy_from_logits,
    gspo_loss,
    ppo_clip_loss,
    seq_mean_token_mean_weights,
    seq_mean_token_sum_weights,
    seq_sum_norm_weights,
    sft_loss,
    token_logprobs,
    token_mean,
    token_mean_weights,
)

LN2, LN3 = math.log(2.0), math.log(3.0)
NAN, INF = float("nan"), float("inf")


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




# ---------------------------------------------------------------- gspo_loss

# five sequences of 3 tokens, old log-probs 0, DAPO band [0.8, 1.28]:
#   row 0: ratios [1.1, 0.9, pad], A = +2: s = sqrt(0.99) = 0.9949874371, inside -> -2 s = -1.9899748742
#   row 1: ratios [2, 1.5, 1],     A = +1: s = 3^(1/3) = 1.4422495703 > 1.28 -> -1.28, clipped
#   row 2: same ratios,            A = -1: max(1.4422495703, 1.28) = 1.4422495703, not clipped
#   row 3: ratios [0.5, 0.5, pad], A = -1: s = 0.5 < 0.8 -> max(0.5, 0.8) = 0.8, clipped
#   row 4: no token masked in (nan everywhere), A = +3 -> 0
S0, S1 = 0.9949874371, 1.4422495703


def _gspo_inputs():
    logp = torch.tensor(
        [
            [math.log(1.1), math.log(0.9), NAN],
            [LN2, math.log(1.5), 0.0],
            [LN2, math.log(1.5), 0.0],
            [math.log(0.5), math.log(0.5), 200.0],
            [NAN, INF, -INF],
        ]
    )
    old = torch.zeros(5, 3)
    adv = torch.tensor([2.0, 1.0, -1.0, -1.0, 3.0])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 0], [0, 0, 0]])
    return logp, old, adv, mask


def test_gspo_values_clipped_and_gradient():
    logp, old, adv, mask = _gspo_inputs()
    logp.requires_grad_(True)
    loss, clipped = gspo_loss(logp, old, adv, mask, CL, CH)
    expected = [
        [-2 * S0, -2 * S0, 0.0],
        [-1.28, -1.28, -1.28],
        [S1, S1, S1],
        [0.8, 0.8, 0.0],
        [0.0, 0.0, 0.0],
    ]
    torch.testing.assert_close(loss, torch.tensor(expected), atol=1e-6, rtol=0)
    # clipped is a property of the sequence: all its masked-in tokens or none
    expected_clipped = torch.tensor(
        [[0, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.bool
    )
    assert torch.equal(clipped, expected_clipped)
    loss.sum().backward()
    # token gradient -A s_i (d s_it / d logp_t = s_i, no cross-token terms), 0 where clipped/masked
    grad = [[-2 * S0, -2 * S0, 0.0], [0.0, 0.0, 0.0], [S1, S1, S1], [0.0, 0.0, 0.0], [0.0] * 3]
    assert torch.isfinite(logp.grad).all()
    torch.testing.assert_close(logp.grad, torch.tensor(grad), atol=1e-6, rtol=0)


def test_gspo_clip_low_and_clip_high_are_separate():
    # s = 0.75, A = -1: band low 0.8 clips (0.8), band low 0.7 does not (0.75)
    logp = torch.log(torch.tensor([[0.75, 0.75]]))
    old, mask, neg = torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([-1.0])
    loss, clipped = gspo_loss(logp, old, neg, mask, clip_low=0.2, clip_high=0.28)
    torch.testing.assert_close(loss, torch.tensor([[0.8, 0.8]]), atol=1e-6, rtol=0)
    assert clipped.all()
    loss, clipped = gspo_loss(logp, old, neg, mask, clip_low=0.3, clip_high=0.28)
    torch.testing.assert_close(loss, torch.tensor([[0.75, 0.75]]), atol=1e-6, rtol=0)
    assert not clipped.any()
    # s = 1.25, A = +1: inside with clip_high 0.28 (-1.25), clipped with clip_high 0.2 (-1.2)
    up = torch.log(torch.tensor([[1.25, 1.25]]))
    pos = torch.tensor([1.0])
    loss, _ = gspo_loss(up, old, pos, mask, clip_low=0.2, clip_high=0.28)
    torch.testing.assert_close(loss, torch.tensor([[-1.25, -1.25]]), atol=1e-6, rtol=0)
    loss, clipped = gspo_loss(up, old, pos, mask, clip_low=0.2, clip_high=0.2)
    torch.testing.assert_close(loss, torch.tensor([[-1.2, -1.2]]), atol=1e-6, rtol=0)
    assert clipped.all()


def test_gspo_token_advantages_and_single_token_rows():
    # GSPO-token: s = 1 (logp = old), per-token A = [2, -1] -> [-2, 1]
    loss, _ = gspo_loss(
        torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[2.0, -1.0]]), torch.ones(1, 2), CL, CH
    )
    torch.testing.assert_close(loss, torch.tensor([[-2.0, 1.0]]), atol=1e-6, rtol=0)
    logp, old, adv, mask = _gspo_inputs()
    a_seq, c_seq = gspo_loss(logp, old, adv, mask, CL, CH)
    a_tok, c_tok = gspo_loss(logp, old, adv[:, None].expand(5, 3), mask, CL, CH)
    assert_same(a_seq, a_tok)
    assert torch.equal(c_seq, c_tok)
    # one-token sequences: the sequence ratio is the token ratio, so GSPO is PPO-clip
    logp1 = torch.log(torch.tensor([[0.5], [0.75], [1.0], [1.25], [1.5]]))
    adv1 = torch.tensor([2.0, -1.0, 0.5, 2.0, -1.0])
    g = gspo_loss(logp1, torch.zeros(5, 1), adv1, torch.ones(5, 1), CL, CH)
    p = ppo_clip_loss(logp1, torch.zeros(5, 1), adv1, torch.ones(5, 1), CL, CH)
    torch.testing.assert_close(g[0], p[0], atol=1e-6, rtol=0)
    assert torch.equal(g[1], p[1])


def test_gspo_does_not_mutate_and_bool_mask():
    logp, old, adv, mask = _gspo_inputs()
    copies = [t.clone() for t in (logp, old, adv, mask)]
    lf, cf = gspo_loss(logp, old, adv, mask.float(), CL, CH)
    lb, cb = gspo_loss(logp, old, adv, mask.bool(), CL, CH)
    assert_same(lf, lb)
    assert torch.equal(cf, cb)
    for t, c in zip((logp, old, adv, mask), copies):
        assert_same(t, c)


# ---------------------------------------------------------------- cispo_loss

# old log-prob -1, ratios [0.5, 1.0, 1.5] -> logp = [-1.6931471806, -1, -0.5945348919];
# band [0.8, 1.28]: weights sg(clip(rho)) = [0.8, 1.0, 1.28]
LP = [-1.6931471806, -1.0, -0.5945348919]


def _cispo_inputs():
    logp = torch.tensor(
        [LP, LP, [-1.0, NAN, INF], [NAN, NAN, NAN]]
    )
    old = torch.full((4, 3), -1.0)
    adv = torch.tensor([2.0, -1.0, 2.0, 2.0])
    mask = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 0, 0], [0, 0, 0]])
    return logp, old, adv, mask


def test_cispo_values_clipped_and_gradient():
    logp, old, adv, mask = _cispo_inputs()
    logp.requires_grad_(True)
    loss, clipped = cispo_loss(logp, old, adv, mask, CL, CH)
    # A = +2: -w A logp = [-0.8 * 2 * -1.6931471806, 2, -1.28 * 2 * -0.5945348919]
    # A = -1: w logp = [0.8 * -1.6931471806, -1, 1.28 * -0.5945348919]
    # row 2: rho = 1, w = 1: -2 * -1 = 2 on its one token
    expected = [
        [2.7090354889, 2.0, 1.5220093232],
        [-1.3545177444, -1.0, -0.7610046616],
        [2.0, 0.0, 0.0],
        [0.0, 0.0, 0.0],
    ]
    torch.testing.assert_close(loss, torch.tensor(expected), atol=1e-6, rtol=0)
    expected_clipped = torch.tensor([[1, 0, 1], [1, 0, 1], [0, 0, 0], [0, 0, 0]], dtype=torch.bool)
    assert torch.equal(clipped, expected_clipped)
    loss.sum().backward()
    # gradient -w A on every masked-in token, clipped or not (the weight carries no gradient)
    grad = [[-1.6, -2.0, -2.56], [0.8, 1.0, 1.28], [-2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert torch.isfinite(logp.grad).all()
    torch.testing.assert_close(logp.grad, torch.tensor(grad), atol=1e-6, rtol=0)


def test_cispo_clip_low_and_clip_high_are_separate():
    logp = torch.tensor([LP])
    old, mask, adv = torch.full((1, 3), -1.0), torch.ones(1, 3), torch.tensor([2.0])
    # clip_low 1.0 (the paper's "no lower bound"), clip_high 0.28: weights [0.5, 1, 1.28]
    loss, clipped = cispo_loss(logp, old, adv, mask, clip_low=1.0, clip_high=0.28)
    torch.testing.assert_close(
        loss, torch.tensor([[1.6931471806, 2.0, 1.5220093232]]), atol=1e-6, rtol=0
    )
    assert clipped.tolist() == [[False, False, True]]
    # clip_high 0.6: 1.5 is inside too -> -1.5 * 2 * -0.5945348919 = 1.7836046757
    loss, clipped = cispo_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.6)
    torch.testing.assert_close(
        loss, torch.tensor([[2.7090354889, 2.0, 1.7836046757]]), atol=1e-6, rtol=0
    )
    assert clipped.tolist() == [[True, False, False]]


def test_cispo_token_advantages_and_no_mutation():
    logp, old, adv, mask = _cispo_inputs()
    copies = [t.clone() for t in (logp, old, adv, mask)]
    a_seq, c_seq = cispo_loss(logp, old, adv, mask, CL, CH)
    a_tok, c_tok = cispo_loss(logp, old, adv[:, None].expand(4, 3), mask.bool(), CL, CH)
    assert_same(a_seq, a_tok)
    assert torch.equal(c_seq, c_tok)
    for t, c in zip((logp, old, adv, mask), copies):
        assert_same(t, c)


# ---------------------------------------------------------------- aggregation weights

# lengths 3, 1, 0, 2: 6 tokens, 3 rows with a token, 4 rows; garbage under the mask
AGG_X = torch.tensor(
    [[1.0, 2.0, 3.0, NAN], [4.0, INF, NAN, NAN], [NAN, NAN, NAN, NAN], [5.0, 6.0, NAN, -INF]]
)
AGG_M = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]])
M = AGG_M.float()
MAX_LEN = 5


def test_weights_by_hand():
    torch.testing.assert_close(token_mean_weights(AGG_M, MAX_LEN), M / 6, atol=1e-7, rtol=0)
    # 1 / (len_i * 3): 1/9, 1/3, -, 1/6
    per_row = torch.tensor([[1 / 9], [1 / 3], [0.0], [1 / 6]])
    torch.testing.assert_close(
        seq_mean_token_mean_weights(AGG_M, MAX_LEN), M * per_row, atol=1e-7, rtol=0
    )
    torch.testing.assert_close(seq_mean_token_sum_weights(AGG_M, MAX_LEN), M / 3, atol=1e-7, rtol=0)
    # Dr. GRPO: 1 / (4 rows * max_len 5) = 1/20, all four rows counted
    torch.testing.assert_close(seq_sum_norm_weights(AGG_M, MAX_LEN), M / 20, atol=1e-7, rtol=0)


@pytest.mark.parametrize(
    "fn, expected",
    [
        (token_mean_weights, 21 / 6),  # (1 + 2 + 3 + 4 + 5 + 6) / 6 = 3.5
        (seq_mean_token_mean_weights, 11.5 / 3),  # row means 2, 4, 5.5 -> 3.8333333
        (seq_mean_token_sum_weights, 7.0),  # row sums 6, 4, 11 -> 21 / 3
        (seq_sum_norm_weights, 1.05),  # 21 / (4 * 5)
    ],
)
def test_aggregate_by_hand_ignores_garbage_and_splits_exactly(fn, expected):
    x = AGG_X.clone().requires_grad_(True)
    w = fn(AGG_M, MAX_LEN)
    total = aggregate(x, w)
    torch.testing.assert_close(total, torch.tensor(expected), atol=1e-6, rtol=0)
    total.backward()
    assert torch.isfinite(x.grad).all()
    assert_same(x.grad, w)  # d loss / d x_t is the token's weight, 0 under the mask
    # micro-batches: rows sliced from x and from the full-batch weights add up to the whole
    parts = [aggregate(AGG_X[rows], w[rows]) for rows in ([0], [1, 2], [3])]
    torch.testing.assert_close(sum(parts), torch.tensor(expected), atol=1e-6, rtol=0)


def test_token_mean_weights_match_token_mean():
    torch.testing.assert_close(
        aggregate(AGG_X, token_mean_weights(AGG_M, MAX_LEN)), token_mean(AGG_X, AGG_M),
        atol=1e-6, rtol=0,
    )


def test_weights_edge_cases():
    for fn in LOSS_AGG.values():
        w = fn(torch.zeros(3, 4), MAX_LEN)
        assert torch.equal(w, torch.zeros(3, 4))  # empty mask: zeros, no nan
        assert aggregate(AGG_X[:3], w) == 0.0
        assert_same(fn(AGG_M.bool(), MAX_LEN), fn(AGG_M.float(), MAX_LEN))
        assert fn(AGG_M, MAX_LEN).dtype == torch.float32
    # token_mean and seq_mean_token_mean weights sum to 1 over the batch
    for fn in (token_mean_weights, seq_mean_token_mean_weights):
        torch.testing.assert_close(fn(AGG_M, MAX_LEN).sum(), torch.tensor(1.0), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="max_len"):
        seq_sum_norm_weights(AGG_M, 0)
    before = AGG_M.clone()
    for fn in LOSS_AGG.values():
        fn(AGG_M, MAX_LEN)
    assert torch.equal(AGG_M, before)


def test_registries():
    assert POLICY_LOSSES == {"ppo_clip": ppo_clip_loss, "gspo": gspo_loss, "cispo": cispo_loss}
    assert LOSS_AGG == {
        "token_mean": token_mean_weights,
        "seq_mean_token_mean": seq_mean_token_mean_weights,
        "seq_mean_token_sum": seq_mean_token_sum_weights,
        "seq_sum_norm": seq_sum_norm_weights,
    }
