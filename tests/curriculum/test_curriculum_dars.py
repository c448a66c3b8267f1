"""DARS's allocation of extra groups, on hand-computed cases."""

import math

import torch

from graft.curriculum.dars import dars_allocation, equal_treatment_need


def test_equal_treatment_need_hand_computed():
    rates = torch.tensor([0.5, 0.125, 0.0, 0.25])
    got = equal_treatment_need(rates, 8)
    # a = 0.125: 8 (0.5 / sqrt(0.125 * 0.875) - 1); a = 0 is taken as 1/16; a = 0.25: 8 (0.5 / sqrt(3/16) - 1)
    want = [0.0, 8 * (0.5 / math.sqrt(0.109375) - 1), 8 * (0.5 / math.sqrt(15 / 256) - 1),
            8 * (0.5 / math.sqrt(0.1875) - 1)]
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), atol=1e-12, rtol=0)
    assert abs(want[1] - 4.094863) < 1e-6 and abs(want[2] - 8.524728) < 1e-6


def test_dars_allocation_round_robin_hardest_first():
    rates = torch.tensor([0.5, 0.0, 0.125, 0.0, 0.875])
    # needs in groups of 8: ceil(8.52 / 8) = 2 for the two 0.0 prompts, ceil(4.09 / 8) = 1 for 0.125,
    # none for 0.5 and 0.875 (not below the threshold)
    assert dars_allocation(rates, 8, 3, 0.5).tolist() == [0, 1, 1, 1, 0]  # round 1 spends the budget
    assert dars_allocation(rates, 8, 10, 0.5).tolist() == [0, 2, 1, 2, 0]  # every need met, 5 of 10 used
    assert dars_allocation(rates, 8, 2, 0.5).tolist() == [0, 1, 0, 1, 0]  # hardest first, ties by index
    assert dars_allocation(rates, 8, 0, 0.5).tolist() == [0, 0, 0, 0, 0]
    assert dars_allocation(rates, 8, 10, 0.1).tolist() == [0, 2, 0, 2, 0]  # a stricter "hard"
    assert dars_allocation(torch.tensor([0.75, 1.0]), 4, 5, 0.5).tolist() == [0, 0]  # nothing hard
