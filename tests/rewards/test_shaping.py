"""Reward shaping by hand: DAPO overlong punishment, LASER, GRPO-lambda, S-GRPO."""

from types import SimpleNamespace

import pytest
import torch

from graft.rewards.shaping import (
    LENGTH_SHAPING,
    grpo_lambda_shaping,
    laser_shaping,
    no_length_shaping,
    overlong_penalty,
    s_grpo_shaping,
)

T, F = True, False


def close(a, b):
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), atol=1e-6, rtol=0)


def params(**kw):
    base = {"target_len": 10, "coef": 0.5, "top_fraction": 0.4, "decay": 0.5}
    base.update(kw)
    return SimpleNamespace(**base)


# ---------------------------------------------------------------- overlong_penalty


def test_overlong_penalty_by_hand():
    # L_max 20, L_cache 4: free up to 16, then (16 - L) / 4, -1 beyond 20
    lengths = torch.tensor([0, 10, 16, 17, 18, 19, 20, 21, 100])
    out = overlong_penalty(lengths, max_len=20, cache_len=4)
    assert out.dtype == torch.float32
    close(out, [0.0, 0.0, 0.0, -0.25, -0.5, -0.75, -1.0, -1.0, -1.0])
    # cache of one token: only L = 20 (ramp end, -1) and beyond are punished
    close(overlong_penalty(torch.tensor([19.0, 20.0, 25.0]), 20, 1), [0.0, -1.0, -1.0])
    # cache = max_len: the ramp starts at 0 length
    close(overlong_penalty(torch.tensor([0.0, 5.0, 10.0]), 10, 10), [0.0, -0.5, -1.0])


def test_overlong_penalty_off_and_bad_arguments():
    lengths = torch.tensor([5.0, 30.0])
    assert torch.equal(overlong_penalty(lengths, 20, 0), torch.zeros(2))
    with pytest.raises(ValueError):
        overlong_penalty(lengths, 20, 21)
    with pytest.raises(ValueError):
        overlong_penalty(lengths, 20, -1)
    assert torch.equal(lengths, torch.tensor([5.0, 30.0]))


# ---------------------------------------------------------------- none / LASER


def test_none_is_a_copy():
    r = torch.tensor([[1.0, 0.0]])
    out = no_length_shaping(r, torch.tensor([[T, F]]), torch.tensor([[3.0, 4.0]]), params())
    assert torch.equal(out, r) and out.data_ptr() != r.data_ptr()


def test_laser_bonus_only_for_correct_and_short():
    r = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.8, 1.0]])
    correct = torch.tensor([[T, T, F, F], [T, F, T, T]])
    lengths = torch.tensor([[5.0, 12.0, 3.0, 10.0], [10.0, 10.0, 4.0, 11.0]])
    out = laser_shaping(r, correct, lengths, params(target_len=10, coef=0.5))
    # correct and <= 10 tokens: +0.5 (boundary 10 included); long or wrong: unchanged
    close(out, [[1.5, 1.0, 0.0, 0.0], [1.5, 0.0, 1.3, 1.0]])
    out = laser_shaping(r, correct, lengths, params(target_len=4, coef=0.2))
    close(out, [[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 1.0]])


# ---------------------------------------------------------------- GRPO-lambda

# five groups of four; correctness ratios 0.75, 1, 0.25, 0.75, 0
GL_CORRECT = torch.tensor(
    [[T, T, T, F], [T, T, T, T], [T, F, F, F], [T, T, T, F], [F, F, F, F]]
)
GL_LENGTHS = torch.tensor(
    [[10.0, 10.0, 40.0, 5.0], [10.0, 20.0, 30.0, 40.0], [7.0, 1.0, 2.0, 3.0],
     [10.0, 20.0, 30.0, 1.0], [1.0, 2.0, 3.0, 4.0]]
)
GL_REWARDS = GL_CORRECT.float()


def test_grpo_lambda_top_fraction_by_hand():
    # lambda 0.4 of 5 groups -> 2 groups: group 1 (ratio 1), then group 0 (0.75, before the tied
    # group 3 by order). alpha 0.5.
    # group 1: lengths 10..40, mean 25, population std sqrt(125) = 11.1803398875,
    #   z = [-1.3416407865, -0.4472135955, 0.4472135955, 1.3416407865],
    #   1 - 0.5 sigmoid(z) = [0.8963798193, 0.8049882687, 0.6950117313, 0.6036201807]
    # group 0: correct lengths 10, 10, 40: mean 20, std sqrt(200) = 14.1421356237,
    #   z = [-0.7071067812, -0.7071067812, 1.4142135624] -> [0.8348807747, 0.8348807747, 0.5977851587];
    #   the wrong one keeps 0
    out = grpo_lambda_shaping(GL_REWARDS, GL_CORRECT, GL_LENGTHS, params(top_fraction=0.4, coef=0.5))
    expected = [
        [0.8348807747, 0.8348807747, 0.5977851587, 0.0],
        [0.8963798193, 0.8049882687, 0.6950117313, 0.6036201807],
        [1.0, 0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
    close(out, expected)


def test_grpo_lambda_edges():
    p0 = params(top_fraction=0.0)
    assert torch.equal(grpo_lambda_shaping(GL_REWARDS, GL_CORRECT, GL_LENGTHS, p0), GL_REWARDS)
    # lambda 1: every group. Group 2 has one correct answer: z = 0, 1 - 0.5 * 0.5 = 0.75;
    # group 4 has none: unchanged.
    out = grpo_lambda_shaping(GL_REWARDS, GL_CORRECT, GL_LENGTHS, params(top_fraction=1.0))
    close(out[2], [0.75, 0.0, 0.0, 0.0])
    assert torch.equal(out[4], torch.zeros(4))
    # equal correct lengths: flat penalty coef / 2 = 0.1, no nan
    out = grpo_lambda_shaping(
        torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[T, T, F]]), torch.tensor([[8.0, 8.0, 2.0]]),
        params(top_fraction=1.0, coef=0.2),
    )
    close(out, [[0.9, 0.9, 0.0]])
    # lambda 0.3 of 10 groups is 3 groups, not ceil(3.0000000000000004) = 4
    r = torch.ones(10, 2)
    out = grpo_lambda_shaping(r, r.bool(), torch.tensor([[1.0, 3.0]]).expand(10, 2),
                              params(top_fraction=0.3))
    assert int((out != 1.0).any(dim=-1).sum()) == 3


# ---------------------------------------------------------------- S-GRPO


def test_s_grpo_decay_by_exit_rank():
    # correct lengths 30, 10, 20, 10 (the wrong length-5 one does not count): ranks 4, 1, 3, 1
    r = torch.tensor([[1.0, 0.0, 1.0, 1.0, 1.0]])
    correct = torch.tensor([[T, F, T, T, T]])
    lengths = torch.tensor([[30.0, 5.0, 10.0, 20.0, 10.0]])
    close(s_grpo_shaping(r, correct, lengths, params(decay=0.5)), [[0.125, 0.0, 1.0, 0.25, 1.0]])
    close(s_grpo_shaping(r, correct, lengths, params(decay=0.9)), [[0.729, 0.0, 1.0, 0.81, 1.0]])


def test_s_grpo_wrong_is_zero_and_groups_are_separate():
    r = torch.tensor([[-1.0, 0.0], [2.0, 1.0], [1.0, 1.0]])
    correct = torch.tensor([[F, F], [T, T], [T, F]])
    lengths = torch.tensor([[1.0, 2.0], [9.0, 3.0], [50.0, 1.0]])
    # row 0 all wrong (even a negative reward) -> 0; row 1: 9 is second -> 2 * 0.5; row 2: one correct
    close(s_grpo_shaping(r, correct, lengths, params()), [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    one = s_grpo_shaping(torch.tensor([[1.0]]), torch.tensor([[T]]), torch.tensor([[7.0]]), params())
    close(one, [[1.0]])


# ---------------------------------------------------------------- all of them


@pytest.mark.parametrize("name", sorted(LENGTH_SHAPING))
def test_shaping_is_pure_and_shaped(name):
    r = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    correct = torch.tensor([[T, F, T], [T, T, F]])
    lengths = torch.tensor([[4.0, 9.0, 12.0], [3, 30, 5]])
    copies = [t.clone() for t in (r, correct, lengths)]
    out = LENGTH_SHAPING[name](r, correct, lengths, params(top_fraction=1.0))
    assert out.shape == (2, 3) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    for t, c in zip((r, correct, lengths), copies):
        assert torch.equal(t, c)


def test_registry():
    assert LENGTH_SHAPING == {
        "none": no_length_shaping,
        "laser": laser_shaping,
        "grpo_lambda": grpo_lambda_shaping,
        "s_grpo": s_grpo_shaping,
    }
