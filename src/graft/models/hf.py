"""A local Hugging Face causal LM behind graft's ``Policy`` interface.

Only local files are loaded (``local_files_only=True``): a directory, or a repo id found in
the local Hugging Face cache (``graft.models.load.resolve_model_path``); graft never downloads
weights itself. Notes on transformers 5, which this targets:

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

from graft.models.device import Placed, autocast

_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "tekken.json")


END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")
"""Chat models' end-of-turn tokens (Qwen/ChatML, Llama 3, Phi-3, Gemma): a stop id whenever the
tokenizer has one as an added token, whatever the generation config lists."""


def _ids(value: Any) -> list[int]:
    """An ``eos_token_id`` entry (None, an int or a list of ints) as a list."""
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


class HFTokenizer:
    """Adapts a ``transformers`` tokenizer to graft's ``Tokenizer`` protocol.

    The wrapped tokenizer stays available as ``.hf`` (e.g. for its chat template).
    ``vocab_size`` is ``len(tokenizer)``, which may be smaller than the model's
    embedding table (checkpoints often pad it); logits keep the model's size.

    ``stop_ids``: every id that ends a completion: the tokenizer's eos, the ``eos_token_id``
    entries of the model's config and ``generation_config.json`` (``extra_eos``; an int or a list),
    and the chat end-of-turn tokens of ``END_OF_TURN`` the tokenizer has. ``eos_id`` (what SFT
    appends to a demonstration) stays the tokenizer's own.
    """

    def __init__(self, hf: Any, extra_eos: Any = ()):
        if hf.eos_token_id is None:
            raise ValueError(f"tokenizer {hf.name_or_path!r} defines no eos token")
        self.hf = hf
        self.vocab_size: int = len(hf)
        self.eos_id: int = hf.eos_token_id
        self.pad_id: int = hf.pad_token_id if hf.pad_token_id is not None else hf.eos_token_id
        self.bos_id: int | None = hf.bos_token_id
        added = hf.get_added_vocab()
        turn = [added[t] for t in END_OF_TURN if t in added]
        self.stop_ids: tuple[int, ...] = tuple(sorted({self.eos_id, *_ids(extra_eos), *turn}))

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)


class HFPolicy(Placed):
    """Any local causal LM directory (config + weights + tokenizer) as a ``Policy``.

    ``amp_dtype``: bf16 autocast around every forward (``model.precision: bf16_mixed``), else None.
    With LoRA (``graft.models.lora``) ``module`` is a ``peft`` model wrapping the HF one."""

    def __init__(self, module: nn.Module, tokenizer: HFTokenizer):
        self.module = module
        self.tokenizer = tokenizer
        self.amp_dtype: torch.dtype | None = None
        self.lora_base: str | None = None  # LoRA (graft.models.lora): the base model's directory

    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> HFPolicy:
        """Load model (in ``dtype``, PyTorch SDPA attention) and tokenizer from ``path``; fail with
        one short message if it is not a model."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        _check_model_dir(path)
        try:
            module = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa",
                                                          local_files_only=True)
        except Exception as err:  # noqa: BLE001 -- an edge: any failure becomes one line
            raise ValueError(f"could not load the model in {path}: {_first_line(err)}") from None
        try:
            hf_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as err:  # noqa: BLE001 -- an edge: any failure becomes one line
            raise ValueError(
                f"could not load the tokenizer in {path}: {_first_line(err)}"
            ) from None
        generation = getattr(module, "generation_config", None)
        extra = _ids(getattr(module.config, "eos_token_id", None))
        extra += _ids(getattr(generation, "eos_token_id", None))
        return cls(module, HFTokenizer(hf_tokenizer, extra))

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
        with autocast(ids.device, self.amp_dtype):
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
        with autocast(ids.device, self.amp_dtype):
            out = self.module.get_decoder()(
                input_ids=ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
            )
        return out.last_hidden_state.float()  # (B, T, C)

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The model's output embedding on final hidden states: (..., C) -> (..., V) float32.
        Exact for heads that are a plain linear layer (Llama, Qwen2, Mistral ...); models that
        soft-cap or scale their logits (Gemma 2) would need that step here too."""
        head = self.module.get_output_embeddings()
        with autocast(hidden.device, self.amp_dtype):
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
        """Write config, safetensors weights (in the weights' dtype) and tokenizer in the standard
        Hugging Face layout; a LoRA policy writes its adapter (``graft.models.lora.save_adapter``)."""
        if self.lora_base is not None:
            from graft.models.lora import save_adapter

            save_adapter(self, directory)
            return
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
