import torch

from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.rollout.sampler import pick_tokens, sample
from graft.train.batch import completion_logprobs, make_batch


def _policy():
    return TinyPolicy.create(TinyConfig(vocab_size=99, d_model=32, n_layers=2, n_heads=2), seed=0)


def test_pick_tokens_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    grid = (torch.arange(200, device="cpu") + 0.5) / 200  # (200,) uniforms over [0, 1), none on a boundary
    tokens, _ = pick_tokens(logits.expand(200, 4), 1.0, 0.7, grid)
    assert set(tokens.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.7; tokens 2, 3 never drawn
    assert int((tokens == 0).sum()) == 125  # 0.5 / 0.8 of the kept mass
    tok, logp = pick_tokens(logits, 0.0, 1.0)
    assert int(tok) == 0 and abs(float(logp) - torch.log(torch.tensor(0.5)).item()) < 1e-6


def test_sample_logprobs_match_training_forward_and_stop_at_eos():
    pol = _policy()
    prompts = [pol.tokenizer.encode(p) for p in ["12+3=", "7-5=", "99+99="]] * 2
    rollouts = sample(pol, prompts, max_new_tokens=12, temperature=1.0, keys=1)
    for ro in rollouts:
        assert len(ro.completion_ids) == len(ro.logprobs) <= 12
        assert (ro.finish_reason == "stop") == (pol.tokenizer.eos_id in ro.completion_ids)
        if ro.finish_reason == "stop":
            assert ro.completion_ids.index(pol.tokenizer.eos_id) == len(ro.completion_ids) - 1
    batch = make_batch([r.prompt_ids for r in rollouts], [r.completion_ids for r in rollouts],
                       pol.tokenizer.pad_id, [r.logprobs for r in rollouts])
    with torch.no_grad():
        logp, _ = completion_logprobs(pol, batch)
    assert float(((logp - batch.old_logprobs) * batch.loss_mask).abs().max()) < 1e-4


def test_same_keys_same_samples():
    pol = _policy()
    prompts = [pol.tokenizer.encode("1+1=")] * 4
    a = sample(pol, prompts, max_new_tokens=8, temperature=1.0, keys=3)
    b = sample(pol, prompts, max_new_tokens=8, temperature=1.0, keys=3)
    assert [r.completion_ids for r in a] == [r.completion_ids for r in b]


# ---------------------------------------------------------------- issue 7: compaction, shared prefill

PROMPTS = ["12+3=", "7-5=", "99+99=", "1", "abc", "hello there"]
SWITCHES = [(True, True), (True, False), (False, True), (False, False)]  # (compact, share_prefill)


class CountingPolicy:
    """Delegates to a policy and counts the token rows its forward passes compute."""

    def __init__(self, policy):
        self.policy, self.tokenizer, self.rows = policy, policy.tokenizer, 0

    def forward(self, ids, *args, **kwargs):
        self.rows += ids.numel()  # (b, T) tokens run through the model
        return self.policy.forward(ids, *args, **kwargs)

    def select_cache_rows(self, cache, index):
        return self.policy.select_cache_rows(cache, index)


def _eos_like(policy, head: torch.Tensor, token: int, scale: float = 1.05) -> None:
    """Make EOS a stronger copy of ``token`` in the LM head, so greedy decoding stops wherever
    it would have emitted ``token`` (rows then finish at different steps)."""
    with torch.no_grad():
        head[policy.tokenizer.eos_id] = scale * head[token]


def _run(policy, temperature, compact, share, seed=0, max_new_tokens=16):
    counting = CountingPolicy(policy)
    prompts = [policy.tokenizer.encode(p) for p in PROMPTS]
    out = sample(counting, prompts, max_new_tokens=max_new_tokens, temperature=temperature, repeats=3,
                 keys=seed, compact=compact, share_prefill=share)
    return out, counting.rows


def _same_rollouts(policy, temperature):
    results = {s: _run(policy, temperature, *s) for s in SWITCHES}
    ref, ref_rows = results[(False, False)]
    lengths = {len(r.completion_ids) for r in ref}
    assert len(lengths) > 1  # rows finish at different steps, so compaction has work to do
    for (compact, share), (out, rows) in results.items():
        assert [r.completion_ids for r in out] == [r.completion_ids for r in ref]
        assert [r.finish_reason for r in out] == [r.finish_reason for r in ref]
        for a, b in zip(out, ref):
            assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-6, rtol=0)
        if compact or share:
            assert rows < ref_rows  # less work than padding every finished row and every prompt copy
    return results


def test_compaction_and_shared_prefill_change_work_not_samples_tiny():
    torch.set_num_threads(1)
    pol = _policy()
    _eos_like(pol, pol.module.tok_emb.weight, 33)  # greedy on this seed repeats 33 for 3 prompts
    greedy = _same_rollouts(pol, 0.0)
    sampled = _same_rollouts(pol, 1.0)
    assert [r.completion_ids for r in sampled[(True, True)][0]] != [r.completion_ids for r in greedy[(True, True)][0]]
    # the seed decides the samples: another seed, other samples
    other, _ = _run(pol, 1.0, True, True, seed=1)
    assert [r.completion_ids for r in other] != [r.completion_ids for r in sampled[(True, True)][0]]


def test_compaction_and_shared_prefill_change_work_not_samples_hf(tmp_path):
    from graft.models.hf import HFPolicy
    from graft.models.hf_testing import build_tiny_hf_model

    torch.set_num_threads(1)
    pol = HFPolicy.load(build_tiny_hf_model(tmp_path, arch="qwen2", seed=0))
    pol.module.eval()
    greedy, _ = _run(pol, 0.0, False, False)
    common = max({t for r in greedy for t in r.completion_ids},
                 key=lambda t: sum(t in r.completion_ids for r in greedy))
    head = pol.module.get_output_embeddings().weight
    _eos_like(pol, head, common)
    _same_rollouts(pol, 0.0)
    _eos_like(pol, head, common, scale=10.0)  # a random model's logits are flat: make EOS likely
    _same_rollouts(pol, 1.0)


def test_pick_tokens_rounding_guard_keeps_to_tokens_with_mass():
    # top-p 0.5 keeps only token 2 of (0.1, 0.2, 0.7): a draw at the largest float below 1 (whose
    # u * total may round up to the total) must still return the last token with mass, not one past it
    logits = torch.tensor([[0.1, 0.2, 0.7]]).log().repeat(3, 1)  # (3, V)
    uniform = torch.tensor([0.0, 0.5, 1.0 - 2.0**-24])
    tokens, logp = pick_tokens(logits, 1.0, 0.5, uniform)
    assert tokens.tolist() == [2, 2, 2]
    assert torch.allclose(logp, torch.tensor(0.7).log().expand(3))
    tokens, _ = pick_tokens(logits, 1.0, 1.0, uniform)  # full distribution: inverse CDF
    assert tokens.tolist() == [0, 2, 2]
