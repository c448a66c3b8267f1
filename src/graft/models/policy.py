"""The policy interface shared by the built-in tiny transformer and Hugging Face models.

The sampler and the loss code only see this interface: token ids in, logits
out, with an optional key/value cache for incremental decoding. Padding is on
the left for prompts; ``attention_mask`` marks real tokens and
``position_ids`` gives each token's position within its own sequence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn


class Tokenizer(Protocol):
    vocab_size: int
    pad_id: int
    eos_id: int  # appended to SFT demonstrations
    bos_id: int | None
    stop_ids: tuple[int, ...]  # every id that ends a completion (eos_id among them)

    def encode(self, text: str) -> list[int]:
        """Text to ids, without special tokens."""
        ...

    def decode(self, ids: list[int]) -> str:
        """Ids to text, dropping special tokens."""
        ...


class Policy(Protocol):
    tokenizer: Tokenizer
    module: nn.Module  # holds every trainable parameter
    device: torch.device  # where the module's parameters live; every input goes there

    def forward(
        self,
        ids: torch.Tensor,  # (B, T) long
        attention_mask: torch.Tensor,  # (B, T_past + T) long, 1 = real token
        position_ids: torch.Tensor,  # (B, T) long
        cache: Any = None,
        use_cache: bool = True,
    ) -> tuple[torch.Tensor, Any]:
        """Return logits (B, T, V) float32 and the updated cache (None-able when ``use_cache`` is False)."""
        ...

    def select_cache_rows(self, cache: Any, index: torch.Tensor) -> Any:
        """The cache with only batch rows ``index`` (b,) long, in that order (repeats allowed):
        drops finished rows, or copies one prompt's rows for each of its completions."""
        ...

    @property
    def hidden_size(self) -> int:
        """Width of the final hidden states (what a value head reads)."""
        ...

    def hidden(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        """Final hidden states (B, T, C) of a full forward pass without cache."""
        ...

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on final hidden states: (..., C) -> (..., V) float32, so that
        ``logits_from_hidden(hidden(x))`` equals ``forward(x)``'s logits."""
        ...

    def save(self, directory: Path) -> None:
        """Write weights, config and tokenizer so that ``load_policy`` restores it."""
        ...


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)


def left_pad(seqs: list[list[int]], pad_id: int, device: torch.device | str = "cpu"
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad to a (B, T) id tensor and its (B, T) attention mask, on ``device`` (built on the
    CPU row by row, then moved in one copy each)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long, device="cpu")
    mask = torch.zeros((len(seqs), width), dtype=torch.long, device="cpu")
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long, device="cpu")
            mask[i, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


def device_of(policy) -> torch.device:
    """Where ``policy`` computes: its ``device``, else its module's first parameter's, else the CPU
    (a stand-in policy in a test may have neither)."""
    device = getattr(policy, "device", None)
    if device is not None:
        return torch.device(device)
    module = getattr(policy, "module", None)
    first = next(module.parameters(), None) if module is not None else None
    return first.device if first is not None else torch.device("cpu")


def stop_ids(tokenizer) -> tuple[int, ...]:
    """The ids that end a completion (``Tokenizer.stop_ids``; just ``eos_id`` for a tokenizer
    that does not name any)."""
    return tuple(getattr(tokenizer, "stop_ids", None) or (tokenizer.eos_id,))
