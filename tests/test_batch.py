"""completion_logprobs: the memory-lean chunked path equals the full-logits path (issue 7)."""

import pytest
import torch

from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.train.batch import completion_logprobs, make_batch


def _tiny():
    return TinyPolicy.create(TinyConfig(vocab_size=99, d_model=32, n_layers=2, n_heads=2), seed=0)


def _hf(tmp_path):
    from graft.models.hf import HFPolicy
    from graft.models.hf_testing import build_tiny_hf_model

    return HFPolicy.load(build_tiny_hf_model(tmp_path, arch="qwen2", seed=0))


def _batch(policy):
    enc = policy.tokenizer.encode
    prompts = [enc("12+3="), enc("7-5="), enc("99+99="), enc("1")]
    completions = [enc("15"), enc("2 and more"), enc("198"), enc("")]
    return make_batch(prompts, completions, policy.tokenizer.pad_id)


def _run(policy, batch, chunk):
    """logp, entropy and the gradient of a loss that uses both, plus the largest tensor saved
    for backward whose last dimension is the vocabulary (the logits the chunking avoids)."""
    policy.module.zero_grad()
    V = policy.logits_from_hidden(torch.zeros(1, policy.hidden_size)).shape[-1]
    largest = [0]

    def pack(t):
        if t.dim() and t.shape[-1] == V:
            largest[0] = max(largest[0], t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logp, ent = completion_logprobs(policy, batch, temperature=0.7, with_entropy=True, chunk=chunk)
    w = batch.loss_weights
    ((logp * w).sum() - 0.1 * (ent * w).sum()).backward()
    grads = [p.grad.clone() for p in policy.module.parameters() if p.grad is not None]
    return logp.detach(), ent.detach(), grads, largest[0]


@pytest.mark.parametrize("model", ["tiny", "hf"])
def test_chunked_logprobs_entropy_and_gradients_match_the_full_logits(model, tmp_path):
    torch.set_num_threads(1)
    policy = _tiny() if model == "tiny" else _hf(tmp_path)
    batch = _batch(policy)
    full_logp, full_ent, full_grads, full_saved = _run(policy, batch, chunk=0)
    B, Tc = batch.targets.shape
    for chunk in (7, 64):  # a chunk that does not divide B * Tc, and one larger than it
        logp, ent, grads, saved = _run(policy, batch, chunk=chunk)
        assert torch.allclose(logp, full_logp, atol=1e-5, rtol=0)
        assert torch.allclose(ent, full_ent, atol=1e-5, rtol=0)
        assert len(grads) == len(full_grads)
        for a, b in zip(grads, full_grads):
            assert torch.allclose(a, b, atol=1e-5, rtol=0)
        # memory: no vocabulary-wide tensor is kept for backward (chunks are recomputed)
        assert full_saved >= B * Tc * policy.logits_from_hidden(torch.zeros(1, policy.hidden_size)).shape[-1]
        assert saved == 0
    with torch.no_grad():  # no-grad path (reference scoring) chunks without checkpointing
        logp, _ = completion_logprobs(policy, batch, temperature=0.7, chunk=5)
    assert torch.allclose(logp, full_logp, atol=1e-5, rtol=0)
