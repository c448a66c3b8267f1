"""HFPolicy on tiny random Qwen2 / Llama checkpoints built locally (nothing downloaded)."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from graft.models.hf import HFPolicy, HFTokenizer
from graft.models.hf_testing import build_tiny_hf_model
from graft.models.policy import position_ids_from_mask


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def model_dir(request, tmp_path_factory):
    return build_tiny_hf_model(tmp_path_factory.mktemp(request.param), arch=request.param, seed=0)


@pytest.fixture(scope="module")
def policy(model_dir) -> HFPolicy:
    return HFPolicy.load(model_dir)


def _left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in seqs])  # (B, T)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])  # (B, T)
    return ids, mask


def test_tokenizer_round_trip_and_ids(policy):
    tok = policy.tokenizer
    assert isinstance(tok, HFTokenizer)
    text = "12+34= A:46 x"
    ids = tok.encode(text)
    assert len(ids) == len(text)  # one token per ASCII character, spaces included
    assert tok.decode(ids) == text
    for other in ["  two  spaces\nnew line . , ;", "héllo ✓", ""]:
        assert tok.decode(tok.encode(other)) == other
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id]) == text  # specials dropped
    assert tok.vocab_size == policy.module.config.vocab_size
    assert max(ids) < tok.vocab_size


def test_left_padding_matches_unpadded(policy):
    tok = policy.tokenizer
    seqs = [tok.encode("7*8=56"), tok.encode("1+1=2 and more")]
    ids, mask = _left_pad(seqs, tok.pad_id)
    with torch.no_grad():
        logits, _ = policy.forward(ids, mask, position_ids_from_mask(mask))
    assert logits.dtype == torch.float32 and logits.shape == (2, ids.shape[1], tok.vocab_size)
    assert torch.isfinite(logits).all()  # pad rows too: a NaN there would leak into masked losses
    for row, seq in enumerate(seqs):
        alone = torch.tensor([seq])
        with torch.no_grad():
            ref, _ = policy.forward(
                alone, torch.ones_like(alone), position_ids_from_mask(torch.ones_like(alone))
            )
        torch.testing.assert_close(logits[row, -len(seq) :], ref[0], atol=1e-4, rtol=0)


def test_incremental_decoding_matches_full_forward(policy):
    tok = policy.tokenizer
    seqs = [tok.encode("9-3=6;"), tok.encode("12+34=")]
    steps = [tok.encode("abc"), tok.encode("xyz")]  # (B, 3) tokens fed one at a time
    ids, mask = _left_pad(seqs, tok.pad_id)
    with torch.no_grad():
        logits, cache = policy.forward(ids, mask, position_ids_from_mask(mask))
        last_pos = position_ids_from_mask(mask)[:, -1:]  # (B, 1)
        step_logits = [logits[:, -1]]
        for t in range(3):
            new = torch.tensor([[s[t]] for s in steps])  # (B, 1)
            mask = torch.cat([mask, torch.ones_like(new)], dim=1)  # (B, T_past + 1)
            last_pos = last_pos + 1
            out, cache = policy.forward(new, mask, last_pos, cache)
            step_logits.append(out[:, -1])
        full_ids = torch.cat([ids, torch.tensor(steps)], dim=1)
        full, _ = policy.forward(full_ids, mask, position_ids_from_mask(mask))
    torch.testing.assert_close(torch.stack(step_logits, 1), full[:, -4:], atol=1e-4, rtol=0)


def test_backward_gives_finite_nonzero_grads_everywhere(model_dir):
    policy = HFPolicy.load(model_dir)  # own copy: grads must not leak into the shared fixture
    tok = policy.tokenizer
    ids, mask = _left_pad([tok.encode("3+4=7"), tok.encode("10-2=8")], tok.pad_id)
    logits, _ = policy.forward(ids, mask, position_ids_from_mask(mask))
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1)
    m = mask[:, 1:].float()
    loss = -(logp * m).sum() / m.sum()
    loss.backward()
    params = list(policy.module.named_parameters())
    assert params and all(p.requires_grad for _, p in params)
    for name, p in params:  # every parameter is in the loss: none detached, unused or frozen
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_save_then_plain_transformers_load(policy, tmp_path):
    policy.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "saved", dtype=torch.float32)
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "saved")
    ids = torch.tensor([hf_tok.encode("5+5=10", add_special_tokens=False)])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ours, _ = policy.forward(ids, mask, position_ids_from_mask(mask))
        theirs = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(ours, theirs.float())
    reloaded = HFPolicy.load(tmp_path / "saved")
    assert reloaded.tokenizer.encode("a b") == policy.tokenizer.encode("a b")


def test_build_is_seeded_and_keeps_global_rng(tmp_path):
    state = torch.random.get_rng_state()
    a = build_tiny_hf_model(tmp_path / "a", arch="llama", seed=5)
    assert torch.equal(state, torch.random.get_rng_state())
    b = build_tiny_hf_model(tmp_path / "b", arch="llama", seed=5)
    c = build_tiny_hf_model(tmp_path / "c", arch="llama", seed=6)
    sd = {k: HFPolicy.load(d).module.state_dict() for k, d in {"a": a, "b": b, "c": c}.items()}
    assert all(torch.equal(sd["a"][k], sd["b"][k]) for k in sd["a"])
    assert not torch.equal(sd["a"]["lm_head.weight"], sd["c"]["lm_head.weight"])


def test_vocab_chars_gives_small_vocab(tmp_path):
    d = build_tiny_hf_model(tmp_path / "m", arch="qwen2", vocab_chars="0123456789+-*= \n")
    policy = HFPolicy.load(d)
    assert policy.tokenizer.vocab_size == 4 + 16 == policy.module.config.vocab_size
    assert policy.tokenizer.decode(policy.tokenizer.encode("12 + 3 = 15\n")) == "12 + 3 = 15\n"


@pytest.mark.parametrize("missing", ["dir", "config.json", "model.safetensors", "tokenizer.json"])
def test_missing_pieces_give_one_clear_error(model_dir, tmp_path, missing):
    target = tmp_path / "model"
    if missing != "dir":
        shutil.copytree(model_dir, target)
        (target / missing).unlink()
    with pytest.raises((FileNotFoundError, ValueError)) as info:
        HFPolicy.load(target)
    message = str(info.value)
    assert str(target) in message and "\n" not in message
    expected = {
        "dir": "does not exist",
        "config.json": "config.json",
        "model.safetensors": "no weights",
        "tokenizer.json": "no tokenizer",
    }[missing]
    assert expected in message
    err = info.value  # no chained transformers traceback under it
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_corrupt_weights_give_short_error(model_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    (target / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="could not load the model in"):
        HFPolicy.load(target)
