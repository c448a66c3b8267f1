"""Lean update settings chosen from the model and the batch (``optim.* = auto``, docs/lean.md).

Four keys decide how the update spends memory and time, none of them what it computes (each
alternative gives the plain path's loss and gradients to float rounding, tests/test_lean.py):
``optim.logprob_chunk``, ``optim.logprob_impl``, ``optim.micro_batch_size`` and
``optim.sort_by_length``. Their default is ``auto``; ``prepare`` resolves it once, from the
model's shape, the longest sequence the run can see, the rows of a batch and the machine's
memory, with the pure functions below, and the run (and its saved config) uses the numbers.
A config that never went through ``prepare`` (code calling the update directly) reads ``auto``
as the plain path (``settings``).

The rules:

- ``logprob_chunk``: the plain path materialises (rows, length, vocab) float32 logits, then a
  log-softmax and its gradient of the same size; per token that is 12 V bytes against the
  activations' few x C per layer. From a vocabulary of ``LEAN_VOCAB`` tokens up, only completion
  positions go through the head, ``chunk`` tokens at a time, ``chunk`` the power of two whose
  (chunk, V) float32 block is about ``CHUNK_BYTES`` (clamped to 16-1024).
- ``logprob_impl``: ``fused`` (closed-form gradient, no recorded graph) where the policy has a
  plain linear head, else ``checkpoint``.
- ``micro_batch_size``: the largest power of two up to ``MAX_MICRO`` (the previous fixed default,
  so never more memory than before) whose estimated memory fits the budget: activations per row
  from Korthikanti et al. 2022 (docs/lean.md, eq. 1) plus the logits the plain path would keep.
- ``sort_by_length``: on when a batch has more rows than one micro-batch (with a single
  micro-batch there is no padding to trim).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

LEAN_VOCAB = 2048
"""Vocabulary size from which log-probabilities are chunked."""
CHUNK_BYTES = 64 * 2**20
"""Target size of one (chunk, vocab) float32 block of logits."""
MAX_MICRO = 64
"""Largest automatic micro-batch (graft's fixed default before ``auto``)."""
CPU_SHARE, GPU_SHARE = 0.25, 0.5
"""Share of the machine's memory (CPU) or of the GPU's the update may plan for."""


@dataclass(frozen=True)
class Shape:
    """What the rules read: the model's vocabulary, width, depth and heads; the longest prompt +
    completion a batch can hold; the most rows one batch can have; the bytes per activation."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    seq_len: int
    rows: int
    bytes_per_value: int = 4


@dataclass(frozen=True)
class LeanSettings:
    logprob_chunk: int
    logprob_impl: str
    micro_batch_size: int
    sort_by_length: bool


def pow2_floor(n: int) -> int:
    """The largest power of two <= n (n >= 1)."""
    return 1 << (max(int(n), 1).bit_length() - 1)


def chunk_for(vocab: int) -> int:
    """``logprob_chunk`` for a vocabulary: 0 below ``LEAN_VOCAB``, else the power of two (16-1024)
    whose (chunk, vocab) float32 block is at most ``CHUNK_BYTES``."""
    if vocab < LEAN_VOCAB:
        return 0
    return min(max(pow2_floor(CHUNK_BYTES // (4 * vocab)), 16), 1024)


def activation_bytes(shape: Shape) -> float:
    """Activations one row keeps for backward, over all layers: Korthikanti et al. 2022, eq. 1,
    ``s b h (34 + 5 a s / h)`` bytes per layer for 16-bit values (s = sequence length, b = 1
    row, h = hidden, a = heads), scaled by ``bytes_per_value / 2``."""
    s, h, a = shape.seq_len, shape.hidden, shape.heads
    return shape.layers * s * h * (34 + 5 * a * s / h) * shape.bytes_per_value / 2


def logits_bytes(shape: Shape, chunk: int) -> float:
    """Logits memory of one row: the plain path's (length, vocab) float32 logits, log-softmax and
    gradient (3 x 4 bytes per entry); a chunked path keeps none per row."""
    return 0.0 if chunk > 0 else 12.0 * shape.seq_len * shape.vocab


def micro_batch_for(shape: Shape, chunk: int, budget_bytes: float) -> int:
    """The largest power of two <= ``MAX_MICRO`` (and <= the rows, rounded up to a power of two)
    whose rows' estimated memory fits ``budget_bytes``; at least 1."""
    per_row = activation_bytes(shape) + logits_bytes(shape, chunk)
    m = min(MAX_MICRO, 1 << max(shape.rows - 1, 0).bit_length())
    while m > 1 and m * per_row > budget_bytes:
        m //= 2
    return m


def sort_for(rows: int, micro_batch_size: int) -> bool:
    """Group rows by length when the batch spans several micro-batches."""
    return rows > micro_batch_size


def resolve(optim, shape: Shape, budget_bytes: float, plain_head: bool) -> LeanSettings:
    """``optim``'s four keys with each ``auto`` replaced by the rule's value (explicit ones kept)."""
    chunk = chunk_for(shape.vocab) if optim.logprob_chunk == "auto" else optim.logprob_chunk
    impl = ("fused" if plain_head else "checkpoint") if optim.logprob_impl == "auto" else optim.logprob_impl
    micro = micro_batch_for(shape, chunk, budget_bytes) if optim.micro_batch_size == "auto" else optim.micro_batch_size
    sort = sort_for(shape.rows, micro) if optim.sort_by_length == "auto" else optim.sort_by_length
    return LeanSettings(chunk, impl, micro, sort)


def settings(optim) -> LeanSettings:
    """The four keys as the update uses them; an unresolved ``auto`` (a config that skipped
    ``prepare``) is the plain path: no chunking, checkpoint, 64 rows, unsorted."""
    return LeanSettings(
        0 if optim.logprob_chunk == "auto" else optim.logprob_chunk,
        "checkpoint" if optim.logprob_impl == "auto" else optim.logprob_impl,
        MAX_MICRO if optim.micro_batch_size == "auto" else optim.micro_batch_size,
        False if optim.sort_by_length == "auto" else optim.sort_by_length,
    )


def memory_budget(device) -> float:
    """Bytes the update may plan for: ``GPU_SHARE`` of the GPU's memory, else ``CPU_SHARE`` of
    the machine's (physical pages; the total, not what is free now, so a resumed run on the same
    machine resolves the same settings)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return GPU_SHARE * torch.cuda.get_device_properties(device).total_memory
    return CPU_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def model_shape(policy) -> tuple[int, int, int, int]:
    """(vocab, hidden, layers, heads) of a graft tiny policy or a Hugging Face one."""
    module = policy.module
    if hasattr(module, "get_base_model"):  # a peft (LoRA) wrapper
        module = module.get_base_model()
    c = module.config
    if hasattr(c, "d_model"):  # graft's tiny transformer
        return c.vocab_size, c.d_model, c.n_layers, c.n_heads
    text = c.get_text_config() if hasattr(c, "get_text_config") else c
    return text.vocab_size, text.hidden_size, text.num_hidden_layers, text.num_attention_heads
