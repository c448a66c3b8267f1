"""The built-in tiny transformer behind the Policy interface, with save/load.

A saved directory holds three files:
  graft_model.json   {"type": "graft-tiny", "config": {...TinyConfig fields...}}
  model.safetensors  the module's state dict (tied weights are one tensor, stored once)
  tokenizer.json     the character tokenizer
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from graft.models.device import Placed, autocast
from graft.models.tiny import KVCache, TinyConfig, TinyTransformer
from graft.models.tokenizer import CharTokenizer

MARKER_FILE = "graft_model.json"
WEIGHTS_FILE = "model.safetensors"
MODEL_TYPE = "graft-tiny"


class TinyPolicy(Placed):
    """Implements ``graft.models.policy.Policy`` with a ``TinyTransformer`` and a ``CharTokenizer``."""

    def __init__(self, module: TinyTransformer, tokenizer: CharTokenizer) -> None:
        if module.config.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"model vocab_size {module.config.vocab_size} != tokenizer vocab_size {tokenizer.vocab_size}"
            )
        self.module = module
        self.tokenizer = tokenizer
        self.config = module.config
        self.amp_dtype: torch.dtype | None = None  # bf16 autocast of every forward (bf16_mixed)

    @classmethod
    def create(cls, config: TinyConfig, seed: int) -> TinyPolicy:
        """A freshly initialised model; the same seed gives bitwise-identical weights."""
        return cls(TinyTransformer(config, seed=seed), CharTokenizer())

    def forward(
        self,
        ids: torch.Tensor,  # (B, T) long
        attention_mask: torch.Tensor,  # (B, T_past + T) long, 1 = real token
        position_ids: torch.Tensor,  # (B, T) long
        cache: KVCache | None = None,
        use_cache: bool = True,
    ) -> tuple[torch.Tensor, KVCache]:
        # the tiny model's cache is the attention's own k/v tensors (kept for backward anyway),
        # so use_cache=False saves nothing here and is accepted for the interface's sake
        with autocast(ids.device, self.amp_dtype):
            return self.module(ids, attention_mask, position_ids, cache)

    def select_cache_rows(self, cache: KVCache, index: torch.Tensor) -> KVCache:
        """A new cache holding batch rows ``index`` (b,) of every layer's (k, v)."""
        return [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache]  # (b, nh, T, hs)

    @property
    def hidden_size(self) -> int:
        return self.config.d_model

    def hidden(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        """Final hidden states (B, T, C) of a full forward pass, no cache (for a value head)."""
        with autocast(ids.device, self.amp_dtype):
            x, _ = self.module(ids, attention_mask, position_ids, None, return_hidden=True)
        return x  # (B, T, C)

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The (tied or own) LM head: (..., C) -> (..., V) float32."""
        with autocast(hidden.device, self.amp_dtype):
            return torch.nn.functional.linear(hidden.to(self.head_weight().dtype), self.head_weight()).float()

    def head_weight(self) -> torch.Tensor:
        """The LM head's (V, C) weight (the token embedding when tied), for ``graft.train.fused_head``."""
        m = self.module
        return m.tok_emb.weight if m.lm_head is None else m.lm_head.weight

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        marker = {"type": MODEL_TYPE, "config": self.config.to_dict()}
        (directory / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
        # The tied LM head reuses tok_emb.weight instead of owning a parameter, so the state
        # dict has no duplicate tensor (safetensors refuses shared storage).
        state = {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        self.tokenizer.save(directory)

    @classmethod
    def load(cls, directory: str | Path) -> TinyPolicy:
        directory = Path(directory)
        marker = json.loads((directory / MARKER_FILE).read_text())
        if marker.get("type") != MODEL_TYPE:
            raise ValueError(f"{directory / MARKER_FILE}: expected type {MODEL_TYPE!r}, found {marker.get('type')!r}")
        module = TinyTransformer(TinyConfig(**marker["config"]), seed=0)  # weights replaced below
        module.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)
        return cls(module, CharTokenizer.load(directory))
