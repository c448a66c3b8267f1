"""The built-in tiny transformer, its policy wrapper and the character tokenizer."""

import pytest
import torch

from graft.models.policy import position_ids_from_mask
from graft.models.tiny import TinyConfig, TinyTransformer, attention_allowed
from graft.models.tiny_policy import TinyPolicy
from graft.models.tokenizer import CharTokenizer

V = 99
SMALL = {"vocab_size": V, "d_model": 32, "n_layers": 2, "n_heads": 2, "max_seq_len": 64}


def small_policy(seed=0, **overrides) -> TinyPolicy:
    return TinyPolicy.create(TinyConfig(**{**SMALL, **overrides}), seed=seed)


def full_forward(policy, seq: list[int]) -> torch.Tensor:
    """Logits (T, V) of one unpadded sequence, no cache."""
    ids = torch.tensor([seq])
    mask = torch.ones_like(ids)
    return policy.forward(ids, mask, position_ids_from_mask(mask))[0][0]


def left_pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
    return ids, mask


def test_same_seed_same_weights_other_seed_differs_and_global_rng_untouched():
    rng_before = torch.get_rng_state()
    a, b, c = (small_policy(seed=s).module.state_dict() for s in (7, 7, 8))
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["tok_emb.weight"], c["tok_emb.weight"])
    assert not torch.equal(a["blocks.0.attn.qkv.weight"], c["blocks.0.attn.qkv.weight"])


def test_default_config_and_init_scale():
    cfg = TinyConfig(vocab_size=V)
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.tie_embeddings) == (128, 4, 4, 352, True)
    w = TinyTransformer(TinyConfig(**SMALL), seed=0).state_dict()
    assert abs(w["tok_emb.weight"].std().item() - 0.02) < 0.002
    assert abs(w["blocks.0.mlp.down.weight"].std().item() - 0.02 / 2) < 0.002  # 1/sqrt(2 * 2 layers)
    with pytest.raises(ValueError, match="divisible"):
        TinyConfig(vocab_size=V, d_model=30, n_heads=4)


def test_kv_cache_decoding_matches_full_forward():
    policy = small_policy()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, V, (3, 10), generator=g)  # (B, T + k)
    T, k = 6, 4
    mask = torch.ones_like(ids)
    full, _ = policy.forward(ids, mask, position_ids_from_mask(mask))  # (B, T + k, V)

    logits, cache = policy.forward(ids[:, :T], mask[:, :T], position_ids_from_mask(mask[:, :T]))
    steps = [logits]
    for t in range(T, T + k):
        pos = torch.full((3, 1), t)
        logits, cache = policy.forward(ids[:, t : t + 1], mask[:, : t + 1], pos, cache)
        steps.append(logits)
    assert cache[0][0].shape == (3, 2, T + k, 16)  # (B, nh, T_total, hs)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_left_padding_matches_unpadded_including_cached_decoding():
    policy = small_policy()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, V, (n,), generator=g).tolist() for n in (7, 3, 5)]
    continuation = torch.randint(3, V, (3, 4), generator=g)  # (B, k) fed one at a time
    ids, mask = left_pad(prompts)
    logits, cache = policy.forward(ids, mask, position_ids_from_mask(mask))
    for i, p in enumerate(prompts):
        torch.testing.assert_close(logits[i, -len(p):], full_forward(policy, p), atol=1e-5, rtol=0)

    positions = mask.sum(-1, keepdim=True)  # (B, 1)
    for t in range(continuation.shape[1]):
        mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], dim=1)
        logits, cache = policy.forward(continuation[:, t : t + 1], mask, positions + t, cache)
        for i, p in enumerate(prompts):
            expected = full_forward(policy, p + continuation[i, : t + 1].tolist())[-1]
            torch.testing.assert_close(logits[i, -1], expected, atol=1e-5, rtol=0)


def test_no_nan_with_padding_empty_rows_and_masked_decode_steps():
    policy = small_policy()
    ids, mask = left_pad([[5, 6, 7, 8], [9], []])  # last row is all padding
    logits, cache = policy.forward(ids, mask, position_ids_from_mask(mask))
    assert torch.isfinite(logits).all()
    # a finished row keeps decoding a pad token whose key is masked out (as the sampler does)
    for step_mask in ([1, 0, 1], [0, 0, 1], [0, 0, 0]):
        mask = torch.cat([mask, torch.tensor(step_mask)[:, None]], dim=1)
        positions = position_ids_from_mask(mask)[:, -1:]
        logits, cache = policy.forward(torch.zeros(3, 1, dtype=torch.long), mask, positions, cache)
        assert torch.isfinite(logits).all()
    # gradients through padded rows are finite too
    ids, mask = left_pad([[5, 6, 7], []])
    logits, _ = policy.forward(ids, mask, position_ids_from_mask(mask))
    (logits * mask[..., None]).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in policy.module.parameters())


def test_attention_allowed_hides_pads_and_future_and_never_leaves_a_query_blind():
    # one past key then 2 new tokens; row 0: [pad, pad | pad, a], row 1: [x, y | z, pad]
    mask = torch.tensor([[0, 0, 0, 1], [1, 1, 1, 0]])
    allowed = attention_allowed(mask, t_new=2)[:, 0]  # (B, T, S)
    expected = torch.tensor([
        [[0, 0, 1, 0], [0, 0, 0, 1]],  # pad query sees only itself (else softmax over nothing)
        [[1, 1, 1, 0], [1, 1, 1, 1]],  # a pad query's own key is its only visible pad
    ]).bool()
    assert torch.equal(allowed, expected)


def test_bad_shapes_and_positions_fail_clearly():
    policy = small_policy()
    ids = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="attention_mask"):
        policy.forward(ids, torch.ones(2, 4, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_seq_len"):
        policy.forward(ids, torch.ones(2, 3, dtype=torch.long), torch.full((2, 3), 64))


@pytest.mark.parametrize("tie", [True, False])
def test_save_load_round_trip_reproduces_logits_exactly(tmp_path, tie):
    policy = small_policy(seed=3, tie_embeddings=tie)
    assert ("lm_head.weight" in policy.module.state_dict()) is not tie
    policy.save(tmp_path)
    loaded = TinyPolicy.load(tmp_path)
    assert loaded.config == policy.config
    ids, mask = left_pad([[10, 11, 12, 13], [14, 15]])
    pos = position_ids_from_mask(mask)
    assert torch.equal(loaded.forward(ids, mask, pos)[0], policy.forward(ids, mask, pos)[0])
    assert loaded.tokenizer.encode("ab\n") == policy.tokenizer.encode("ab\n")


def test_tokenizer_round_trip_specials_and_errors(tmp_path):
    tok = CharTokenizer()
    assert (tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id) == (99, 0, 1, 2)
    text = "Q: 12+30=?\nA: 42 ~{}"
    ids = tok.encode(text)
    assert len(ids) == len(text) and min(ids) >= 3 and max(ids) < 99
    assert tok.encode("\n ~") == [3, 4, 98]
    assert tok.decode([tok.bos_id] + ids + [tok.eos_id, tok.pad_id]) == text
    with pytest.raises(ValueError, match=r"'é' at position 3"):
        tok.encode("abcé")
    tok.save(tmp_path)
    assert CharTokenizer.load(tmp_path).encode(text) == ids


def test_a_few_sgd_steps_reduce_the_loss():
    policy = small_policy()
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(3, V, (8, 16), generator=g)
    mask = torch.ones_like(ids)
    pos = position_ids_from_mask(mask)
    opt = torch.optim.SGD(policy.module.parameters(), lr=0.5)
    losses = []
    for _ in range(4):
        logits, _ = policy.forward(ids[:, :-1], mask[:, :-1], pos[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses
