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
