"""The built-in tiny decoder-only transformer, in one file.

Pre-norm LLaMA-style blocks: RMSNorm -> causal self-attention with rotary
position embeddings (RoPE, Su et al. 2021) -> residual, RMSNorm -> SwiGLU MLP
(Shazeer 2020) -> residual; a final RMSNorm and an LM head, tied to the token
embedding by default. No biases, no dropout (RL fine-tuning wants a
deterministic forward).

Batches are left-padded: ``attention_mask`` marks real tokens over past +
current keys, and ``position_ids`` count real tokens only, so a padded row
computes the same thing as the unpadded row. The key/value cache is a plain
per-layer list of (k, v) tensors that grows by concatenation: clarity over
speed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

KVCache = list[tuple[torch.Tensor, torch.Tensor]]
"""One (k, v) pair per layer, each (B, nh, T_total, hs), keys already rotated."""


@dataclass
class TinyConfig:
    vocab_size: int
    """Number of token ids (the tokenizer's ``vocab_size``)."""
    d_model: int = 128
    """Residual stream width."""
    n_layers: int = 4
    """Number of transformer blocks."""
    n_heads: int = 4
    """Attention heads; d_model / n_heads is the head size and must be even (RoPE rotates pairs)."""
    d_ff: int | None = None
    """SwiGLU hidden width; None = 8/3 * d_model rounded up to a multiple of 32 (keeps the MLP's
    parameter count near a 4x GELU MLP's, as in LLaMA)."""
    max_seq_len: int = 256
    """Largest position id + 1 the model accepts (prompt + completion)."""
    rope_theta: float = 10000.0
    """RoPE base: frequency of pair i is theta^(-2i / head_size)."""
    tie_embeddings: bool = True
    """Use the token embedding matrix as the LM head (fewer parameters for a small model)."""

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 32 * math.ceil(8 * self.d_model / 3 / 32)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(f"head size d_model / n_heads = {self.d_model // self.n_heads} must be even")

    def to_dict(self) -> dict:
        return asdict(self)


def rope_tables(head_size: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every (position, frequency) pair, each (max_seq_len, hs/2)."""
    inv_freq = theta ** (-torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)  # (hs/2,)
    angles = torch.arange(max_seq_len, dtype=torch.float64)[:, None] * inv_freq  # (L, hs/2)
    # float64 then cast: the tables are exact to float32 precision even at large positions
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (x[i], x[i + hs/2]) pair by its position's angle ("rotate half" layout)."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, nh, T, hs/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, nh, T, hs)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, C)
        cos: torch.Tensor,  # (B, 1, T, hs/2)
        sin: torch.Tensor,  # (B, 1, T, hs/2)
        allowed: torch.Tensor,  # (B, 1, T, T_past + T) bool, True = may attend
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)  # (B, T, C) each
        q = q.view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, nh, T, hs)
        # rotate before caching, so cached keys never need their positions again
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, nh, T_past + T, hs)
            v = torch.cat([past[1], v], dim=2)  # (B, nh, T_past + T, hs)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(y), (k, v)


class SwiGLU(nn.Module):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.up = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(config.d_model, eps=1e-6)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = nn.RMSNorm(config.d_model, eps=1e-6)
        self.mlp = SwiGLU(config)

    def forward(self, x, cos, sin, allowed, past):
        a, kv = self.attn(self.attn_norm(x), cos, sin, allowed, past)
        x = x + a  # (B, T, C)
        x = x + self.mlp(self.mlp_norm(x))  # (B, T, C)
        return x, kv


def attention_allowed(attention_mask: torch.Tensor, t_new: int) -> torch.Tensor:
    """Which keys each new query may attend to: (B, 1, T, T_past + T) bool.

    A key is visible if it is a real token and not in the query's future (causality is by
    index in the concatenated past + current sequence, which is the order tokens were fed).
    Each query may also always see its own key: for a real token that changes nothing (it
    already sees itself), while a pad query in an all-pad prefix would otherwise attend to no
    key at all and softmax would return NaN. Pad queries' outputs are never used.
    """
    S = attention_mask.shape[1]
    t_past = S - t_new
    q_idx = torch.arange(t_past, S, device=attention_mask.device)[:, None]  # (T, 1)
    k_idx = torch.arange(S, device=attention_mask.device)[None, :]  # (1, S)
    causal = k_idx <= q_idx  # (T, S)
    real_key = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
    return (causal & real_key) | (k_idx == q_idx)  # (B, 1, T, S)


class TinyTransformer(nn.Module):
    def __init__(self, config: TinyConfig, seed: int) -> None:
        super().__init__()
        self.config = config
        # Build on the meta device: nn.Linear would otherwise draw its default init from the
        # global RNG. Every weight is then drawn from a private generator seeded with `seed`.
        with torch.device("meta"):
            self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
            self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
            self.final_norm = nn.RMSNorm(config.d_model, eps=1e-6)
            self.lm_head = (
                None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
            )
        self.to_empty(device="cpu")
        self._init_weights(torch.Generator().manual_seed(seed))
        cos, sin = rope_tables(config.d_model // config.n_heads, config.max_seq_len, config.rope_theta)
        # derived from the config, so not saved with the weights
        self.register_buffer("rope_cos", cos, persistent=False)  # (L, hs/2)
        self.register_buffer("rope_sin", sin, persistent=False)  # (L, hs/2)
        self.checkpoint_blocks = False  # recompute blocks in backward (optim.activation_checkpointing)

    @torch.no_grad()
    def _init_weights(self, gen: torch.Generator) -> None:
        """N(0, 0.02) everywhere, norms at 1; the projections that write into the residual stream
        are scaled by 1/sqrt(2 * n_layers) so its variance does not grow with depth (GPT-2)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        for name, p in self.named_parameters():  # fixed order -> same seed, same weights
            if "norm" in name:
                p.fill_(1.0)
            elif name.endswith(("attn.proj.weight", "mlp.down.weight")):
                p.normal_(0.0, residual_std, generator=gen)
            else:
                p.normal_(0.0, 0.02, generator=gen)

    def forward(
        self,
        ids: torch.Tensor,  # (B, T) long
        attention_mask: torch.Tensor,  # (B, T_past + T) long, 1 = real token
        position_ids: torch.Tensor,  # (B, T) long
        cache: KVCache | None = None,
        return_hidden: bool = False,
    ) -> tuple[torch.Tensor, KVCache]:
        """Logits (B, T, V) float32, or the final normed hidden states (B, T, C) when
        ``return_hidden``; and the new cache."""
        B, T = ids.shape
        t_past = 0 if cache is None else cache[0][0].shape[2]
        if attention_mask.shape != (B, t_past + T):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                f"(batch, past + new) = ({B}, {t_past + T})"
            )
        if position_ids.shape != (B, T):
            raise ValueError(f"position_ids has shape {tuple(position_ids.shape)}, expected ({B}, {T})")
        if int(position_ids.max()) >= self.config.max_seq_len:
            raise ValueError(
                f"position {int(position_ids.max())} is past max_seq_len={self.config.max_seq_len}"
            )

        cos = self.rope_cos[position_ids][:, None]  # (B, 1, T, hs/2)
        sin = self.rope_sin[position_ids][:, None]  # (B, 1, T, hs/2)
        allowed = attention_allowed(attention_mask, T)  # (B, 1, T, T_past + T)

        x = self.tok_emb(ids)  # (B, T, C)
        new_cache: KVCache = []  # a new list: the caller's cache is never mutated
        recompute = self.checkpoint_blocks and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            past = None if cache is None else cache[i]
            if recompute:  # keep only the block's input; its activations are recomputed in backward
                x, kv = checkpoint(block, x, cos, sin, allowed, past, use_reentrant=False)
            else:
                x, kv = block(x, cos, sin, allowed, past)
            new_cache.append(kv)
        x = self.final_norm(x)  # (B, T, C)
        if return_hidden:
            return x, new_cache  # (B, T, C) final hidden states, for a value head
        head = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight  # (V, C)
        logits = F.linear(x, head)  # (B, T, V)
        return logits.float(), new_cache

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
