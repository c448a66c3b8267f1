"""build_tiny_hf_model's shape options (used by bench/vs_trl.py): width, depth and a padded vocabulary."""

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from graft.models.hf_testing import build_char_tokenizer, build_tiny_hf_model


def test_padded_vocabulary_loads_and_round_trips(tmp_path):
    path = build_tiny_hf_model(tmp_path / "m", hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                               intermediate_size=48, vocab_size=1000)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert len(tok) == model.config.vocab_size == 1000
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.intermediate_size) == (32, 1, 48)
    ids = tok.encode("12+34= ok", add_special_tokens=False)
    assert max(ids) < 260  # filler tokens are never produced by encoding
    assert tok.decode(ids) == "12+34= ok"
    assert tok.decode([999]) == "<extra_739>"


def test_default_shape_unchanged(tmp_path):
    model = AutoModelForCausalLM.from_pretrained(build_tiny_hf_model(tmp_path / "m"))
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size, cfg.vocab_size) == (64, 2, 128, 260)


def test_pad_to_smaller_than_alphabet_rejected():
    with pytest.raises(ValueError, match="pad_to"):
        build_char_tokenizer("0123456789", pad_to=5)


def test_tied_embeddings_and_rope_theta(tmp_path):
    """The options bench/gpu_bench.py uses for its Qwen2.5-0.5B shape: one shared embedding / head
    matrix (saved once) and the rotary base."""
    path = build_tiny_hf_model(tmp_path / "m", hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                               vocab_size=400, tie_embeddings=True, rope_theta=1e6)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.tie_word_embeddings is True
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    rope = getattr(model.config, "rope_parameters", None) or {"rope_theta": model.config.rope_theta}
    assert rope["rope_theta"] == 1e6
    n = sum(p.numel() for p in model.parameters())  # parameters() lists the shared matrix once
    untied = AutoModelForCausalLM.from_pretrained(build_tiny_hf_model(
        tmp_path / "u", hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, vocab_size=400))
    assert sum(p.numel() for p in untied.parameters()) - n == 400 * 32
