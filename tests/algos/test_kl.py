"""KL estimators (Schulman 2020) against hand-computed numbers, x = ref_logp - logp."""

import torch

from graft.algos import KL_ESTIMATORS
from graft.algos.kl import kl_k1, kl_k2, kl_k3

# x = ref_logp - logp = [-1, 1, 0]
LOGP = torch.tensor([[-1.0, -2.0, -0.5]])
REF = torch.tensor([[-2.0, -1.0, -0.5]])


def test_k1():
    assert torch.equal(kl_k1(LOGP, REF), torch.tensor([[1.0, -1.0, 0.0]]))  # -x


def test_k2():
    assert torch.equal(kl_k2(LOGP, REF), torch.tensor([[0.5, 0.5, 0.0]]))  # x^2 / 2


def test_k3():
    # exp(-1) - (-1) - 1 = 0.3678794412; exp(1) - 1 - 1 = 0.7182818285; exp(0) - 0 - 1 = 0
    out = kl_k3(LOGP, REF)
    expected = torch.tensor([[0.3678794412, 0.7182818285, 0.0]])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert out[0, 2] == 0.0


def test_gradients_wrt_logp():
    # d/dlogp: k1 -> 1; k2 -> -x = [1, -1, 0]; k3 -> 1 - exp(x) = [0.6321205588, -1.7182818285, 0]
    expected = {
        kl_k1: [1.0, 1.0, 1.0],
        kl_k2: [1.0, -1.0, 0.0],
        kl_k3: [0.6321205588, -1.7182818285, 0.0],
    }
    for fn, grad in expected.items():
        logp = LOGP.clone().requires_grad_(True)
        fn(logp, REF).sum().backward()
        torch.testing.assert_close(logp.grad, torch.tensor([grad]), atol=1e-6, rtol=0)


def test_k3_clamps_only_the_overflow_side():
    logp = torch.tensor([[-50.0, 0.0, -200.0]], requires_grad=True)
    ref = torch.tensor([[0.0, -50.0, 0.0]])  # x = [50, -50, 200]
    out = kl_k3(logp, ref)
    assert torch.isfinite(out).all()
    # x = 50 and 200 are clamped to 20: exp(20) - 21 = 485165174.41
    # (a relative check: the float32 spacing at 4.9e8 is 32)
    capped = torch.tensor([485165174.41, 485165174.41])
    torch.testing.assert_close(out[0, [0, 2]], capped, rtol=1e-6, atol=0)
    # x = -50 is not clamped: exp(-50) + 50 - 1 = 49
    assert out[0, 1] == 49.0
    out.sum().backward()
    # gradient 0 in the clamped region, 1 - exp(-50) = 1 where not clamped
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-6, rtol=0)


def test_nonnegative_and_no_mutation():
    logp = torch.tensor([[-0.1, -3.0, -7.0], [-2.0, -0.01, -1.0]])
    ref = torch.tensor([[-4.0, -0.2, -7.0], [-2.5, -0.3, -0.9]])
    lb, rb = logp.clone(), ref.clone()
    for fn in (kl_k2, kl_k3):
        out = fn(logp, ref)
        assert out.shape == (2, 3)
        assert (out >= 0).all()
    assert torch.equal(logp, lb) and torch.equal(ref, rb)


def test_registry():
    assert KL_ESTIMATORS == {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}
