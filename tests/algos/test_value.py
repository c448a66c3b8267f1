import torch

from graft.algos.value import clipped_value_loss


def test_clipped_value_loss_hand_computed():
    # token 1: V=1.0, V_old=0.5, R=0.0, c=0.2 -> err=1.0, V_clip=0.7, err_clip=0.49 -> 0.5*1.0 = 0.5
    # token 2: V=0.0, V_old=0.5, R=1.0, c=0.2 -> err=1.0, V_clip=0.3, err_clip=0.49 -> 0.5
    # token 3: V=0.9, V_old=0.0, R=1.0 -> err=0.01, V_clip=0.2, err_clip=0.64 -> 0.32 (clipped branch)
    # token 4: masked out (weight 0), garbage value nan
    values = torch.tensor([[1.0, 0.0], [0.9, float("nan")]], requires_grad=True)
    old = torch.tensor([[0.5, 0.5], [0.0, 0.0]])
    ret = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    w = torch.tensor([[1 / 3, 1 / 3], [1 / 3, 0.0]])
    loss, clipped = clipped_value_loss(values, old, ret, w, clip=0.2)
    assert abs(loss.item() - (0.5 + 0.5 + 0.32) / 3) < 1e-6
    assert clipped.tolist() == [[False, False], [True, False]]
    loss.backward()
    # d/dV of 0.5 (V - R)^2 * w = (V - R) w on unclipped tokens; 0 on the clipped one and the masked one
    expected = torch.tensor([[1.0 / 3, -1.0 / 3], [0.0, 0.0]])
    assert torch.allclose(values.grad, expected, atol=1e-6)


def test_no_clip_is_plain_squared_error():
    values = torch.tensor([[2.0, 0.0]])
    loss, clipped = clipped_value_loss(values, torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]),
                                       torch.tensor([[0.5, 0.5]]), clip=0.0)
    assert abs(loss.item() - 0.25) < 1e-7  # 0.5 * 1^2 * 0.5
    assert not clipped.any()
