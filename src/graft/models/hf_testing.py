"""Tiny randomly initialised Hugging Face models, built locally, for tests and smoke runs.

Nothing is downloaded: the config, the weights and the tokenizer are all made
here and written with ``save_pretrained``, so the directory loads with
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``
exactly like a real checkpoint.

The tokenizer is byte-level BPE with no merges: one token per byte, which for
ASCII text is one token per character. A plain WordLevel character tokenizer
would be simpler, but transformers 5 ignores the saved ``tokenizer_class`` for
``model_type: qwen2`` and rebuilds the tokenizer as ``Qwen2Tokenizer`` (BPE +
ByteLevel pre-tokenizer and decoder) from the vocabulary in
``tokenizer.json``; a WordLevel vocabulary then loses every space. A
byte-level vocabulary survives that rebuild unchanged, so both architectures
load the same tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import AddedToken, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as RustTokenizer
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

# ids 0..3. "<unk>" is never produced (every byte is in the vocabulary) but must
# be named: Qwen2Tokenizer otherwise adds its default "<|endoftext|>" as a new
# token on load, and len(tokenizer) no longer matches the model's vocab_size.
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
_ARCHS = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from each byte to a printable character (space -> 'Ġ', '\\n' -> 'Ċ')."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = list(printable)
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def build_char_tokenizer(vocab_chars: str | None = None, pad_to: int | None = None) -> PreTrainedTokenizerFast:
    """One token per character of ``vocab_chars`` (ASCII only), after the special tokens.

    ``pad_to``: grow the vocabulary to this many tokens with filler entries ``<extra_i>`` that
    encoding never produces (the BPE has no merges) but that decode as their own text, so a model
    with a realistic vocabulary size (e.g. 32,000) can be sampled from end to end.

    Default alphabet: every byte, so any UTF-8 text round-trips exactly
    (ASCII one token per character, other characters one token per byte).
    A custom ``vocab_chars`` gives a smaller vocabulary; characters outside it
    are dropped by ``encode``.
    """
    byte_to_char = _bytes_to_unicode()
    if vocab_chars is None:
        alphabet = [byte_to_char[b] for b in range(256)]
    else:
        if not vocab_chars.isascii():
            raise ValueError("vocab_chars must be ASCII (one byte per character)")
        alphabet = [byte_to_char[b] for b in dict.fromkeys(vocab_chars.encode())]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    vocab.update({ch: len(SPECIAL_TOKENS) + i for i, ch in enumerate(alphabet)})
    if pad_to is not None:
        if pad_to < len(vocab):
            raise ValueError(f"pad_to={pad_to} is smaller than the character vocabulary ({len(vocab)})")
        vocab.update({f"<extra_{i}>": len(vocab) + i for i in range(pad_to - len(vocab))})

    backend = RustTokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
    # No regex split: the BPE has no merges, so each byte is its own token anyway.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,  # else decode turns "a ." into "a."
    )


def build_tiny_hf_model(
    directory: str | Path,
    arch: str = "qwen2",
    seed: int = 0,
    vocab_chars: str | None = None,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    vocab_size: int | None = None,
    max_positions: int = 512,
    tie_embeddings: bool = False,
    rope_theta: float | None = None,
) -> Path:
    """Write a tiny random ``arch`` causal LM ("qwen2" or "llama") and its tokenizer to ``directory``.

    Defaults: two layers, hidden size 64, 4 query heads over 2 key/value heads (so
    grouped-query attention is exercised), MLP width 2 x hidden. ``vocab_size`` pads the
    character tokenizer to that many tokens (see ``build_char_tokenizer``'s ``pad_to``); the
    model's embedding table always equals ``len(tokenizer)``. ``tie_embeddings`` shares the
    input embedding with the LM head (as Qwen2.5-0.5B does); ``rope_theta`` sets the rotary base
    (default: the architecture's). Same ``seed`` -> same weights; the global torch RNG is left
    untouched.
    """
    if arch not in _ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(_ARCHS)}")
    config_cls, model_cls = _ARCHS[arch]
    tokenizer = build_char_tokenizer(vocab_chars, pad_to=vocab_size)
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size or 2 * hidden_size,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=tie_embeddings,
        **({} if rope_theta is None else {"rope_theta": rope_theta}),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config).to(torch.float32)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
