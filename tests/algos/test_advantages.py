"""GRPO advantages against hand-computed numbers (DeepSeekMath Sec. 4.1.2)."""

import math
import warnings

import pytest
import torch

from graft.algos import ADVANTAGES
from graft.algos.advantages import grpo_advantages


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


def test_registry():
    assert ADVANTAGES["grpo"] is grpo_advantages
