"""The lean update (issue 7): the fused log-probability head and activation checkpointing give the
plain path's loss and gradients, and keep less for backward."""

import math

import pytest
import torch

from graft.algos.losses import entropy_from_logits, token_logprobs
from graft.config import build_config
from graft.errors import GraftError
from graft.models.checkpointing import _hf_is_checkpointing, set_activation_checkpointing
from graft.models.hf import HFPolicy
from graft.models.hf_testing import build_tiny_hf_model
from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.models.tokenizer import CharTokenizer
from graft.tasks.arithmetic import ArithmeticTask
from graft.train.collect import sample_groups
from graft.train.fused_head import fused_token_logprobs
from graft.train.rl import Learner, _policy_loss
from graft.train.targets import build_batch

# ---------------------------------------------------------------- the pure function


def test_fused_head_on_a_hand_computed_case():
    # logits (0, ln 2, ln 5): p = (1/8, 2/8, 5/8)
    hidden = torch.tensor([[1.0]])  # (1, C=1)
    weight = torch.tensor([[0.0], [math.log(2)], [math.log(5)]])  # (V=3, C)
    logp, ent = fused_token_logprobs(hidden, weight, torch.tensor([1]), temperature=1.0, chunk=1)
    assert logp.item() == pytest.approx(math.log(2 / 8), abs=1e-6)
    p = (1 / 8, 2 / 8, 5 / 8)
    assert ent.item() == pytest.approx(-sum(q * math.log(q) for q in p), abs=1e-6)
    # temperature 2 halves the logits: (0, ln 2 / 2, ln 5 / 2) -> weights (1, sqrt 2, sqrt 5)
    logp2, _ = fused_token_logprobs(hidden, weight, torch.tensor([2]), temperature=2.0, chunk=1)
    s = 1 + math.sqrt(2) + math.sqrt(5)
    assert logp2.item() == pytest.approx(math.log(math.sqrt(5) / s), abs=1e-6)


def test_fused_head_passes_gradcheck_in_float64():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(7, 5, dtype=torch.float64, generator=g, requires_grad=True)  # (N, C)
    weight = torch.randn(11, 5, dtype=torch.float64, generator=g, requires_grad=True)  # (V, C)
    targets = torch.randint(0, 11, (7,), generator=g)
    # chunk 3 does not divide N = 7: the last chunk is short; both outputs are checked
    assert torch.autograd.gradcheck(lambda h, w: fused_token_logprobs(h, w, targets, 0.7, 3), (hidden, weight))


@pytest.mark.parametrize("use", ["logp", "entropy", "both"])
def test_fused_head_matches_the_plain_computation(use):
    g = torch.Generator().manual_seed(1)
    N, C, V, tau = 37, 16, 300, 0.8
    h0 = torch.randn(N, C, generator=g)
    w0 = torch.randn(V, C, generator=g) * 0.3
    targets = torch.randint(0, V, (N,), generator=g)
    coef = torch.randn(N, generator=g)  # a loss that weights every position differently

    def loss_and_grads(fn):
        h, w = h0.clone().requires_grad_(), w0.clone().requires_grad_()
        logp, ent = fn(h, w)
        loss = {"logp": (coef * logp).sum(), "entropy": (coef * ent).sum(),
                "both": (coef * logp).sum() - 0.3 * ent.sum()}[use]
        loss.backward()
        return logp.detach(), ent.detach(), h.grad, w.grad

    def plain(h, w):
        z = (h @ w.t() / tau)[None]  # (1, N, V)
        return token_logprobs(z, targets[None])[0], entropy_from_logits(z)[0]

    want = loss_and_grads(plain)
    got = loss_and_grads(lambda h, w: fused_token_logprobs(h, w, targets, tau, chunk=8))
    for a, b in zip(want, got):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)


def test_fused_head_trains_a_bf16_head():
    """bf16 weights (model.precision=bf16, full fine-tuning): the weight gradient is accumulated in
    float32 over the chunks and returned in bf16, close to the float32 computation's."""
    g = torch.Generator().manual_seed(2)
    h0, w0 = torch.randn(20, 8, generator=g), torch.randn(50, 8, generator=g) * 0.3
    targets = torch.randint(0, 50, (20,), generator=g)
    grads = {}
    for dtype in (torch.float32, torch.bfloat16):
        h, w = h0.to(dtype).clone().requires_grad_(), w0.to(dtype).clone().requires_grad_()
        logp, ent = fused_token_logprobs(h, w, targets, 1.0, chunk=6)
        (logp.sum() - 0.1 * ent.sum()).backward()
        assert w.grad.dtype == h.grad.dtype == dtype
        grads[dtype] = (h.grad.float(), w.grad.float())
    for want, got in zip(grads[torch.float32], grads[torch.bfloat16]):
        assert (got - want).abs().max() <= 0.05 * want.abs().max()


def test_fused_head_rejects_a_bad_chunk():
    with pytest.raises(ValueError, match="chunk"):
        fused_token_logprobs(torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(2, dtype=torch.long), chunk=0)


# ---------------------------------------------------------------- wired through the RL loss


def _tiny_setup(overrides):
    cfg = build_config({}, ["rl.num_generations=4", "rl.max_new_tokens=10", "algo.entropy_coef=0.01",
                            "rl.temperature=0.9", *overrides])
    policy = TinyPolicy.create(TinyConfig(vocab_size=CharTokenizer().vocab_size, d_model=32, n_layers=2, n_heads=2),
                               seed=0)
    return cfg, policy


def _groups(policy, cfg, task):
    groups = sample_groups(policy, task, task.train_examples()[:3], cfg, 0, version=0)
    for i, ro in enumerate(ro for g in groups for ro in g):
        ro.shaped_reward = float(i % 3)  # distinct rewards: non-zero advantages
    return groups


def _loss_grads(learner, batch, cfg, micro=5):
    learner.policy.module.zero_grad()
    learner.policy.module.train()
    total = max(float(batch.loss_mask.sum()), 1.0)
    set_activation_checkpointing(learner.policy.module, cfg.optim.activation_checkpointing)
    parts = [_policy_loss(learner, mb, cfg, total) for mb in batch.split(micro)]
    grads = {n: p.grad.clone() for n, p in learner.policy.module.named_parameters() if p.grad is not None}
    return sum(p["total"] for p in parts), sum(p["entropy"] for p in parts), grads


def _assert_same(a, b, tol=1e-6):
    assert a[0] == pytest.approx(b[0], abs=tol) and a[1] == pytest.approx(b[1], abs=tol)
    assert a[2].keys() == b[2].keys() and a[2]
    for name in a[2]:
        assert torch.allclose(a[2][name], b[2][name], atol=tol), name


LEAN = {
    "chunk": ["optim.logprob_chunk=16"],
    "fused": ["optim.logprob_chunk=16", "optim.logprob_impl=fused"],
    "activation_checkpointing": ["optim.activation_checkpointing=true"],
    "all": ["optim.logprob_chunk=7", "optim.logprob_impl=fused", "optim.activation_checkpointing=true"],
}


@pytest.mark.parametrize("switch", sorted(LEAN))
def test_lean_switches_keep_loss_entropy_and_gradients_tiny(switch):
    cfg, policy = _tiny_setup([])
    task = ArithmeticTask(difficulty=1, num_train=20, num_test=4)
    learner = Learner(policy, torch.optim.SGD(policy.module.parameters(), lr=0.0))
    batch, _ = build_batch(learner, _groups(policy, cfg, task), cfg)
    plain = _loss_grads(learner, batch, cfg)
    lean_cfg, _ = _tiny_setup(LEAN[switch])
    _assert_same(plain, _loss_grads(learner, batch, lean_cfg))


def _hf_policy(tmp_path):
    model_dir = build_tiny_hf_model(tmp_path / "qwen2", arch="qwen2", seed=0, vocab_size=600)
    return HFPolicy.load(model_dir)


def test_lean_switches_keep_loss_and_gradients_hf(tmp_path):
    policy = _hf_policy(tmp_path)
    assert policy.head_weight() is policy.module.get_output_embeddings().weight
    cfg, _ = _tiny_setup([])
    task = ArithmeticTask(difficulty=1, num_train=20, num_test=4)
    learner = Learner(policy, torch.optim.SGD(policy.module.parameters(), lr=0.0))
    batch, _ = build_batch(learner, _groups(policy, cfg, task), cfg)
    plain = _loss_grads(learner, batch, cfg)
    lean_cfg, _ = _tiny_setup(LEAN["all"])
    lean = _loss_grads(learner, batch, lean_cfg)
    assert _hf_is_checkpointing(policy.module)
    _assert_same(plain, lean, tol=2e-6)
    _assert_same(plain, _loss_grads(learner, batch, cfg), tol=2e-6)  # switched off again
    assert not _hf_is_checkpointing(policy.module)


def _saved_bytes(learner, batch, cfg) -> int:
    """Bytes of the tensors autograd keeps for backward during one micro-batch's forward
    (a tensor saved twice is counted once)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    learner.policy.module.zero_grad()
    set_activation_checkpointing(learner.policy.module, cfg.optim.activation_checkpointing)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _policy_loss(learner, batch, cfg, max(float(batch.loss_mask.sum()), 1.0))
    params = {p.untyped_storage().data_ptr() for p in learner.policy.module.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)  # activations only


def test_lean_switches_keep_less_for_backward(tmp_path):
    policy = _hf_policy(tmp_path)
    cfg, _ = _tiny_setup([])
    task = ArithmeticTask(difficulty=1, num_train=20, num_test=4)
    learner = Learner(policy, torch.optim.SGD(policy.module.parameters(), lr=0.0))
    batch, _ = build_batch(learner, _groups(policy, cfg, task), cfg)
    policy.module.train()
    plain = _saved_bytes(learner, batch, cfg)
    sizes = {k: _saved_bytes(learner, batch, _tiny_setup(v)[0]) for k, v in LEAN.items()}
    logits_bytes = batch.targets.numel() * 600 * 4  # one (B, Tc, V) float32 tensor
    assert plain - sizes["fused"] > 2 * logits_bytes  # logits, log-softmax, softmax ... are gone
    assert plain - sizes["chunk"] > 2 * logits_bytes
    assert sizes["activation_checkpointing"] < plain
    assert sizes["all"] < min(sizes["fused"], sizes["activation_checkpointing"])


def test_bad_logprob_impl_names_the_field():
    with pytest.raises(GraftError, match="optim.logprob_impl"):
        build_config({}, ["optim.logprob_impl=fast"])
