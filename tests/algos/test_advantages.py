"""Advantage estimators against hand-computed numbers: GRPO, Dr. GRPO, RLOO, Lite PPO, RAFT,
REINFORCE++, GAE, and the token-reward / whitening helpers."""

import math
import warnings

import pytest
import torch

from graft.algos import ADVANTAGES
from graft.algos.advantages import (
    AdvantageSpec,
    dr_grpo_advantages,
    gae_advantages,
    grpo_advantages,
    lite_advantages,
    outcome_token_rewards,
    raft_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
    tree_advantages,
    tree_segment_advantages,
    whiten,
)

NAN = float("nan")


def close(a, b):
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), atol=1e-6, rtol=0)


def test_two_right_two_wrong():
    # mean = 0.5; unbiased std = sqrt(4 * 0.25 / 3) = 0.5773502692
    # A = +-0.5 / (0.5773502692 + 1e-6) = +-0.8660239038
    a = grpo_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    expected = torch.tensor([[0.8660239038, -0.8660239038, -0.8660239038, 0.8660239038]])
    torch.testing.assert_close(a, expected, atol=1e-6, rtol=0)


def test_eps_zero_gives_sqrt3_over_2():
    a = grpo_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), eps=0.0)
    s = 0.8660254038  # sqrt(3) / 2
    torch.testing.assert_close(a, torch.tensor([[s, -s, -s, s]]), atol=1e-6, rtol=0)


def test_rows_are_normalised_separately():
    # row 0: mean 2, std sqrt((1 + 0 + 1) / 2) = 1 -> [-1, 0, 1] / (1 + 1e-6)
    # row 1: mean 1/3, deviations [-1/3, -1/3, 2/3], std sqrt((6/9) / 2) = 0.5773502692
    #        -> [-0.5773492692, -0.5773492692, 1.1546985384]
    a = grpo_advantages(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]))
    expected = torch.tensor(
        [[-0.9999990000, 0.0, 0.9999990000], [-0.5773492692, -0.5773492692, 1.1546985384]]
    )
    torch.testing.assert_close(a, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("value", [0.0, 1.0, 0.3, 0.1, 0.7])
@pytest.mark.parametrize("G", [2, 7, 8, 16])
def test_all_equal_rewards_give_exact_zeros(value, G):
    # 8 x 0.3 in float32: r - mean(r) = 3e-8 and std = 3e-8, which would give 0.03 without
    # the explicit zeroing of flat groups.
    a = grpo_advantages(torch.full((3, G), value))
    assert torch.equal(a, torch.zeros(3, G))


def test_flat_group_next_to_a_mixed_one():
    a = grpo_advantages(torch.tensor([[0.3, 0.3, 0.3], [0.0, 1.0, 2.0]]))
    assert torch.equal(a[0], torch.zeros(3))
    expected = torch.tensor([-0.9999990000, 0.0, 0.9999990000])
    torch.testing.assert_close(a[1], expected, atol=1e-6, rtol=0)


def test_group_of_one_gives_zeros_without_nan_or_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.std of one sample would warn (dof <= 0)
        a = grpo_advantages(torch.tensor([[1.0], [0.0], [5.0]]))
    assert a.shape == (3, 1)
    assert torch.equal(a, torch.zeros(3, 1))


def test_dtypes_and_no_mutation():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    before = r.clone()
    a = grpo_advantages(r)
    assert a.dtype == torch.float64
    assert torch.equal(r, before)
    # float64 keeps the hand value to 1e-9
    assert abs(float(a[0, 0]) - 0.5 / (math.sqrt(1 / 3) + 1e-6)) < 1e-9
    ints = torch.tensor([[1, 0, 0, 1]])
    a_int = grpo_advantages(ints)
    assert a_int.dtype == torch.float32
    assert torch.equal(ints, torch.tensor([[1, 0, 0, 1]]))




# ---------------------------------------------------------------- Dr. GRPO


def test_dr_grpo_by_hand():
    # row 0: mean 0.5 -> [0.5, -0.5, -0.5, 0.5]; row 1: mean 3 -> [-2, -1, 0, 3]
    a = dr_grpo_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 2.0, 3.0, 6.0]]))
    close(a, [[0.5, -0.5, -0.5, 0.5], [-2.0, -1.0, 0.0, 3.0]])


@pytest.mark.parametrize("fn", [dr_grpo_advantages, rloo_advantages, lite_advantages])
@pytest.mark.parametrize("value", [0.0, 1.0, 0.3, 0.7])
def test_all_equal_groups_give_exact_zeros(fn, value):
    # a flat group next to a mixed one is still exactly 0 (0.3 * 8 leaves rounding noise)
    r = torch.full((2, 8), value)
    r[1, 0] = value + 1.0
    a = fn(r)
    assert torch.equal(a[0], torch.zeros(8))
    assert torch.equal(fn(torch.full((3, 8), value)), torch.zeros(3, 8))


@pytest.mark.parametrize("fn", [dr_grpo_advantages, rloo_advantages, lite_advantages])
def test_group_of_one_is_zero(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = fn(torch.tensor([[1.0], [0.0], [5.0]]))
    assert torch.equal(a, torch.zeros(3, 1))


# ---------------------------------------------------------------- RLOO


def test_rloo_by_hand():
    # row 0: A_0 = 1 - (0 + 0 + 1)/3 = 2/3, A_1 = 0 - (1 + 0 + 1)/3 = -2/3
    # row 1: A_0 = 1 - (2+3+6)/3 = -8/3, A_1 = 2 - 10/3 = -4/3, A_2 = 3 - 9/3 = 0, A_3 = 6 - 6/3 = 4
    a = rloo_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 2.0, 3.0, 6.0]]))
    close(a, [[2 / 3, -2 / 3, -2 / 3, 2 / 3], [-8 / 3, -4 / 3, 0.0, 4.0]])
    # G = 2: each is compared with the other one only: [3 - 1, 1 - 3]
    close(rloo_advantages(torch.tensor([[3.0, 1.0]])), [[2.0, -2.0]])


# ---------------------------------------------------------------- Lite PPO


def test_lite_uses_group_mean_and_batch_std():
    # group means 0.5 and 1; the batch of 8 rewards has mean 6/8 = 0.75 and squared deviations
    # 2 * 0.5625 + 6 * 0.0625 = 1.5, unbiased var 1.5 / 7, std 0.4629100499
    # row 0: +-0.5 / (0.4629100499 + 1e-6) = +-1.0801211164; row 1 is flat: exactly 0
    a = lite_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    s = 1.0801211164
    close(a, [[s, -s, -s, s], [0.0, 0.0, 0.0, 0.0]])
    assert torch.equal(a[1], torch.zeros(4))
    # differs from GRPO on the same mixed row (group std 0.5774 -> 0.8660)
    assert abs(float(a[0, 0]) - float(grpo_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))[0, 0])) > 0.2


def test_lite_batch_std_spans_all_groups():
    # rewards [0, 1, 2, 5, 5, 5]: mean 3, squared deviations 9+4+1+4+4+4 = 26, var 26/5 = 5.2,
    # std 2.2803508502; row 0 centred on its own mean 1: [-1, 0, 1] / 2.2803518502
    a = lite_advantages(torch.tensor([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]]))
    close(a, [[-0.4385288173, 0.0, 0.4385288173], [0.0, 0.0, 0.0]])


def test_group_estimators_dtype_and_no_mutation():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    ints = torch.tensor([[1, 0, 0, 1]])
    for fn in (dr_grpo_advantages, rloo_advantages, lite_advantages):
        before = r.clone()
        assert fn(r).dtype == torch.float64
        assert torch.equal(r, before)
        assert fn(ints).dtype == torch.float32
        assert torch.equal(ints, torch.tensor([[1, 0, 0, 1]]))


# ---------------------------------------------------------------- token rewards and whitening


def test_outcome_token_rewards_last_masked_token():
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 1]])
    out = outcome_token_rewards(torch.tensor([1.0, 2.0, 3.0, 4.0]), mask)
    expected = [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 3], [0, 0, 0, 4]]
    assert torch.equal(out, torch.tensor(expected, dtype=torch.float32))


def test_whiten_by_hand_and_masking():
    # masked-in values 1, 2, 3, 6: mean 3, population var (4 + 1 + 0 + 9) / 4 = 3.5
    x = torch.tensor([[1.0, 2.0, NAN], [3.0, 6.0, float("inf")]])
    m = torch.tensor([[1, 1, 0], [1, 1, 0]])
    s = math.sqrt(3.5)
    close(whiten(x, m), [[-2 / s, -1 / s, 0.0], [0.0, 3 / s, 0.0]])
    assert torch.equal(whiten(x, torch.zeros(2, 3)), torch.zeros(2, 3))
    # constant over the mask (0.3 rounds in the mean) and a single entry: exactly 0
    assert torch.equal(whiten(torch.full((2, 4), 0.3), torch.ones(2, 4)), torch.zeros(2, 4))
    assert torch.equal(whiten(x, torch.tensor([[0, 1, 0], [0, 0, 0]])), torch.zeros(2, 3))


# ---------------------------------------------------------------- REINFORCE++


def test_reinforce_pp_gamma_one():
    # rewards 1 and 0 on the last tokens; gamma 1: returns [[1, 1, 1, -], [0, 0, -, -]]
    # masked-in returns 1, 1, 1, 0, 0: mean 0.6, population var (3 * 0.16 + 2 * 0.36) / 5 = 0.24
    # A = 0.4 / 0.4898979486 = 0.8164965643 and -0.6 / 0.4898979486 = -1.2247448464
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    r = outcome_token_rewards(torch.tensor([1.0, 0.0]), mask)
    a = reinforce_pp_advantages(r, mask)
    p, n = 0.8164965643, -1.2247448464
    close(a, [[p, p, p, 0.0], [n, n, 0.0, 0.0]])


def test_reinforce_pp_discount():
    # gamma 0.5: row 0 returns [0.25, 0.5, 1]; row 1 [0, 0]. Values 0.25, 0.5, 1, 0, 0: mean 0.35,
    # squared deviations 0.01 + 0.0225 + 0.4225 + 2 * 0.1225 = 0.7, var 0.14, std 0.3741657387
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    r = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 7.0]])  # the 7 is under the mask: ignored
    a = reinforce_pp_advantages(r, mask, gamma=0.5)
    close(a, [[-0.2672612348, 0.4008918522, 1.7371980260], [-0.9354143217, -0.9354143217, 0.0]])


def test_reinforce_pp_skips_holes_in_the_mask():
    # row 0 mask [1, 0, 1], gamma 0.5: the hole is not a step, G_0 = 0.5 * 1 = 0.5 (not 0.25);
    # row 1 one token with return 0. Values 0.5, 1, 0: mean 0.5, var 1/6, std 0.4082482905
    mask = torch.tensor([[1, 0, 1], [1, 0, 0]])
    r = torch.tensor([[0.0, 99.0, 1.0], [0.0, NAN, NAN]])
    a = reinforce_pp_advantages(r, mask, gamma=0.5)
    close(a, [[0.0, 0.0, 1.2247448414], [-1.2247448414, 0.0, 0.0]])


def test_reinforce_pp_degenerate_batches_are_zero():
    # a single token, equal returns everywhere, an empty mask
    one = reinforce_pp_advantages(torch.tensor([[5.0, NAN]]), torch.tensor([[1, 0]]))
    assert torch.equal(one, torch.zeros(1, 2))
    flat = reinforce_pp_advantages(torch.tensor([[0.3], [0.3], [0.3]]), torch.ones(3, 1))
    assert torch.equal(flat, torch.zeros(3, 1))
    assert torch.equal(reinforce_pp_advantages(torch.ones(2, 3), torch.zeros(2, 3)), torch.zeros(2, 3))


# ---------------------------------------------------------------- GAE


def test_gae_by_hand():
    r = torch.tensor([[0.0, 0.0, 1.0]])
    v = torch.tensor([[0.5, 0.6, 0.7]])
    m = torch.ones(1, 3)
    # gamma 1, lam 0.95: delta = [0.6 - 0.5, 0.7 - 0.6, 1 - 0.7] = [0.1, 0.1, 0.3]
    # A_2 = 0.3; A_1 = 0.1 + 0.95 * 0.3 = 0.385; A_0 = 0.1 + 0.95 * 0.385 = 0.46575
    adv, ret = gae_advantages(r, v, m, gamma=1.0, lam=0.95)
    close(adv, [[0.46575, 0.385, 0.3]])
    close(ret, [[0.96575, 0.985, 1.0]])
    # lam 1 is Monte Carlo: A_t = R - V_t, returns = R = 1
    adv, ret = gae_advantages(r, v, m, gamma=1.0, lam=1.0)
    close(adv, [[0.5, 0.4, 0.3]])
    close(ret, [[1.0, 1.0, 1.0]])
    # gamma 0.9, lam 0.5: delta = [0.54 - 0.5, 0.63 - 0.6, 1 - 0.7] = [0.04, 0.03, 0.3]
    # A_1 = 0.03 + 0.45 * 0.3 = 0.165; A_0 = 0.04 + 0.45 * 0.165 = 0.11425
    adv, ret = gae_advantages(r, v, m, gamma=0.9, lam=0.5)
    close(adv, [[0.11425, 0.165, 0.3]])
    close(ret, [[0.61425, 0.765, 1.0]])


def test_gae_masking_padding_holes_and_empty_rows():
    r = torch.tensor([[0.0, 1.0, NAN], [0.0, 5.0, 1.0], [NAN, NAN, NAN]])
    v = torch.tensor([[0.5, 0.6, NAN], [0.5, 9.0, 0.7], [NAN, 1.0, 2.0]], requires_grad=True)
    m = torch.tensor([[1, 1, 0], [1, 0, 1], [0, 0, 0]])
    adv, ret = gae_advantages(r, v, m, gamma=1.0, lam=0.95)
    # row 0 ends at t1 (V after it = 0): A_1 = 1 - 0.6 = 0.4, A_0 = (0.6 - 0.5) + 0.95 * 0.4 = 0.48
    # row 1 skips the hole: A_2 = 1 - 0.7 = 0.3, A_0 = (0.7 - 0.5) + 0.95 * 0.3 = 0.485
    close(adv, [[0.48, 0.4, 0.0], [0.485, 0.0, 0.3], [0.0, 0.0, 0.0]])
    close(ret, [[0.98, 1.0, 0.0], [0.985, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert not adv.requires_grad and not ret.requires_grad  # targets, not differentiated


def test_token_estimators_do_not_mutate():
    r = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    v = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    m = torch.tensor([[1, 1], [1, 0]])
    copies = [t.clone() for t in (r, v, m)]
    reinforce_pp_advantages(r, m, gamma=0.9)
    gae_advantages(r, v, m)
    outcome_token_rewards(torch.tensor([1.0, 2.0]), m)
    whiten(r, m)
    for t, c in zip((r, v, m), copies):
        assert torch.equal(t, c)


def test_raft_keeps_the_verified_completions():
    # 0/1 rewards: 1 on the correct ones; an all-wrong group 0; an all-correct group 1 everywhere
    # (RAFT imitates it, unlike the baselined estimators)
    a = raft_advantages(torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]]))
    assert a.dtype == torch.float32
    assert torch.equal(a, torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))


def test_raft_graded_rewards_keep_the_best_ties_and_nothing_unrewarded():
    # best-of-G: only the maximum (both tied 0.9 kept); a group whose best is 0 or below keeps nothing
    r = torch.tensor([[0.2, 0.9, 0.5, 0.9], [-1.0, -0.5, -0.5, -2.0], [0.0, 0.0, -1.0, 0.0]], dtype=torch.float64)
    copy = r.clone()
    a = raft_advantages(r)
    assert a.dtype == torch.float64
    assert torch.equal(a, torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
                                       dtype=torch.float64))
    assert torch.equal(r, copy)
    assert torch.equal(raft_advantages(torch.tensor([[0.7]])), torch.tensor([[1.0]]))  # a group of one


# ---------------------------------------------------------------- registry


def test_registry():
    assert set(ADVANTAGES) == {"grpo", "dr_grpo", "rloo", "reinforce_pp", "lite", "raft", "gae", "tree",
                               "tree_segment"}
    expected = {
        "grpo": (grpo_advantages, "group"),
        "dr_grpo": (dr_grpo_advantages, "group"),
        "rloo": (rloo_advantages, "group"),
        "lite": (lite_advantages, "group"),
        "raft": (raft_advantages, "group"),
        "reinforce_pp": (reinforce_pp_advantages, "token"),
        "gae": (gae_advantages, "critic"),
        "tree": (tree_advantages, "tree"),
        "tree_segment": (tree_segment_advantages, "tree"),
    }
    for name, (fn, level) in expected.items():
        assert ADVANTAGES[name] == AdvantageSpec(fn, level)
    with pytest.raises(ValueError, match="level"):
        AdvantageSpec(grpo_advantages, "sequence")
