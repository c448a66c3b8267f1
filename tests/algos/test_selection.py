"""DAPO dynamic-sampling filter (arXiv 2503.14476, Eq. 11) on small reward matrices."""

import torch

from graft.algos.selection import informative_groups, zero_variance


def test_binary_groups():
    # all wrong, all right, mixed, one right
    r = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert zero_variance(r).tolist() == [True, True, False, False]
    assert informative_groups(r).tolist() == [False, False, True, True]


def test_graded_rewards_and_float_noise():
    # equal graded rewards carry no signal; 0.1 + 0.2 != 0.3 in float64 counts as different
    r = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.25], [0.1 + 0.2, 0.3, 0.3, 0.3]],
                     dtype=torch.float64)
    assert zero_variance(r).tolist() == [True, False, False]


def test_group_of_one_ints_and_nan():
    assert zero_variance(torch.tensor([[1.0], [0.0]])).tolist() == [True, True]
    assert informative_groups(torch.tensor([[1.0], [0.0]])).tolist() == [False, False]
    assert zero_variance(torch.tensor([[2, 2], [2, 3]])).tolist() == [True, False]
    assert zero_variance(torch.tensor([[float("nan"), float("nan")]])).tolist() == [False]


def test_shapes_dtype_and_no_mutation():
    r = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    before = r.clone()
    out = zero_variance(r)
    assert out.shape == (3,) and out.dtype == torch.bool
    assert torch.equal(r, before)
    assert zero_variance(torch.zeros(0, 4)).shape == (0,)
