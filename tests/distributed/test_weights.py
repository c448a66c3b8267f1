"""graft.distributed.weights: a state dict to flat per-dtype buffers and back, exactly."""

import torch

from graft.distributed.weights import empty_buffers, flatten, unflatten


def test_flatten_then_unflatten_gives_the_state_back_bit_for_bit_whatever_the_dtypes():
    g = torch.Generator().manual_seed(0)
    state = {"a": torch.randn(3, 4, generator=g), "b": torch.randn(5, generator=g).to(torch.bfloat16),
             "c": torch.arange(6).view(2, 3), "d": torch.randn(2, 2, generator=g)}
    specs, buffers = flatten(state)
    assert {d: b.numel() for d, b in buffers.items()} == {torch.float32: 16, torch.bfloat16: 5, torch.int64: 6}
    back = unflatten(specs, buffers)
    assert list(back) == list(state)
    for k, t in state.items():
        assert back[k].dtype == t.dtype and torch.equal(back[k], t)
    # what a receiver allocates has the same layout; filled with the sender's bytes it is the state
    empty = empty_buffers(specs)
    assert {d: b.shape for d, b in empty.items()} == {d: b.shape for d, b in buffers.items()}
    for d in empty:
        empty[d].copy_(buffers[d])
    assert all(torch.equal(unflatten(specs, empty)[k], state[k]) for k in state)
    # the buffers are copies: changing the state afterwards does not change what was sent
    state["a"].add_(1.0)
    assert not torch.equal(back["a"], state["a"])
