"""A local Hugging Face causal LM behind graft's ``Policy`` interface.

Only local directories are loaded (``local_files_only=True``): graft never
downloads weights itself. Notes on transformers 5, which this targets:

- ``from_pretrained`` defaults to ``dtype="auto"`` (the checkpoint's dtype, often
  bf16); we always pass ``dtype`` explicitly (``torch_dtype`` is deprecated).
- The cache is a ``DynamicCache`` that the model extends *in place* and also
  returns; a cache passed to ``forward`` must not be reused for another branch.
- With an explicit 2-D ``attention_mask`` transformers does not try to detect
  packed sequences from ``position_ids``, so left padding plus
  ``position_ids_from_mask`` is safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "tekken.json")


class HFTokenizer:
    """Adapts a ``transformers`` tokenizer to graft's ``Tokenizer`` protocol.

    The wrapped tokenizer stays available as ``.hf`` (e.g. for its chat template).
    ``vocab_size`` is ``len(tokenizer)``, which may be smaller than the model's
    embedding table (checkpoints often pad it); logits keep the model's size.
    """

    def __init__(self, hf: Any):
        if hf.eos_token_id is None:
            raise ValueError(f"tokenizer {hf.name_or_path!r} defines no eos token")
        self.hf = hf
        self.vocab_size: int = len(hf)
        self.eos_id: int = hf.eos_token_id
        self.pad_id: int = hf.pad_token_id if hf.pad_token_id is not None else hf.eos_token_id
        self.bos_id: int | None = hf.bos_token_id

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)


class HFPolicy:
    """Any local causal LM directory (config + weights + tokenizer) as a ``Policy``."""

    def __init__(self, module: nn.Module, tokenizer: HFTokenizer):
        self.module = module
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> HFPolicy:
        """Load model and tokenizer from ``path``; fail with one short message if it is not a model."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        _check_model_dir(path)
        try:
            module = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
        except Exception as err:  # noqa: BLE001 -- an edge: any failure becomes one line
            raise ValueError(f"could not load the model in {path}: {_first_line(err)}") from None
        try:
            hf_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as err:  # noqa: BLE001 -- an edge: any failure becomes one line
            raise ValueError(
                f"could not load the tokenizer in {path}: {_first_line(err)}"
            ) from None
        return cls(module, HFTokenizer(hf_tokenizer))

    def forward(
        self,
        ids: torch.Tensor,  # (B, T) long
        attention_mask: torch.Tensor,  # (B, T_past + T) long, 1 = real token
        position_ids: torch.Tensor,  # (B, T) long
        cache: Any = None,
        use_cache: bool = True,
    ) -> tuple[torch.Tensor, Any]:
        """Logits (B, T, V) float32 and the cache (a ``DynamicCache``, updated in place).

        ``use_cache=False`` (the loss's full forward) builds no key/value cache: during
        training it would only hold a second copy of every layer's keys and values."""
        inputs: dict[str, Any] = {}
        if cache is not None:
            inputs["past_key_values"] = cache  # None: the model makes a fresh DynamicCache
        out = self.module(
            input_ids=ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **inputs,
        )
        return out.logits.float(), out.past_key_values  # (B, T, V)

    def select_cache_rows(self, cache: Any, index: torch.Tensor) -> Any:
        """Keep batch rows ``index`` (b,) of a ``DynamicCache``, in place (``Cache.reorder_cache``
        index-selects every layer's keys and values), and return it."""
        cache.reorder_cache(index)
        return cache

    @property
    def hidden_size(self) -> int:
        return int(self.module.config.hidden_size)

    def hidden(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        """Final hidden states (B, T, C) of the decoder stack (after its final norm), no cache."""
        out = self.module.get_decoder()(
            input_ids=ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        )
        return out.last_hidden_state.float()  # (B, T, C)

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The model's output embedding on final hidden states: (..., C) -> (..., V) float32.
        Exact for heads that are a plain linear layer (Llama, Qwen2, Mistral ...); models that
        soft-cap or scale their logits (Gemma 2) would need that step here too."""
        head = self.module.get_output_embeddings()
        return head(hidden.to(head.weight.dtype)).float()  # (..., V)

    def head_weight(self) -> torch.Tensor | None:
        """The LM head's (V, C) weight when the head is a plain bias-free linear layer (what
        ``graft.train.fused_head`` needs), else None (callers fall back to ``logits_from_hidden``)."""
        head = self.module.get_output_embeddings()
        cfg = self.module.config
        rescaled = any(getattr(cfg, k, None) not in (None, 1.0)  # soft-capped or scaled logits
                       for k in ("final_logit_softcapping", "logit_scale", "logits_scaling"))
        if isinstance(head, nn.Linear) and head.bias is None and not rescaled:
            return head.weight
        return None

    def save(self, directory: Path) -> None:
        """Write config, safetensors weights and tokenizer in the standard Hugging Face layout."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.module.save_pretrained(directory)
        self.tokenizer.hf.save_pretrained(directory)


def _check_model_dir(path: Path) -> None:
    """Name the first missing piece before transformers gets a chance to print a traceback wall."""
    if not path.exists():
        raise FileNotFoundError(f"model directory {path} does not exist")
    if not path.is_dir():
        raise ValueError(f"model path {path} is not a directory")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model directory {path} has no config.json")
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise FileNotFoundError(
            f"model directory {path} has no weights (expected one of {', '.join(_WEIGHT_FILES)})"
        )
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise FileNotFoundError(
            f"model directory {path} has no tokenizer (expected one of {', '.join(_TOKENIZER_FILES)})"
        )


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
