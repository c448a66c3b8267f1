"""LoRA adapters on a Hugging Face policy, through ``peft`` (``model.lora``).

- ``add_adapters``: wrap the policy's model in a ``peft`` LoRA model; only the adapters train
  (``requires_grad``), the base weights are frozen. The adapters' random init (A; B starts at 0)
  is drawn from a private seeded RNG, so a seed gives the same adapters every time.
- ``BaseReference``: the KL reference of a LoRA run, the same model with its adapters disabled
  (``peft``'s ``disable_adapter()`` context around each forward): no second copy of the weights.
  It is the *base* model, so with SFT before RL the reference is the model before SFT (as in
  TRL with peft), not the policy RL starts from as with full fine-tuning.
- A LoRA checkpoint's ``model/`` holds the adapter (``adapter_config.json``,
  ``adapter_model.safetensors``), the tokenizer and ``graft_model.json`` naming the base model;
  ``load_adapter`` rebuilds the policy from the base model and that adapter, exactly.
- ``merge``: the adapters folded into the base weights (``merge_and_unload``), a plain HF model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from graft.errors import GraftError

MARKER_FILE = "graft_model.json"
MODEL_TYPE = "hf-lora"


def _peft_config(lora_cfg):
    from peft import LoraConfig

    return LoraConfig(r=lora_cfg.rank, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout,
                      target_modules=list(lora_cfg.target_modules), bias="none", task_type="CAUSAL_LM")


def add_adapters(policy, lora_cfg, seed: int, base: str | Path):
    """Give ``policy`` (an ``HFPolicy``, already placed) fresh LoRA adapters; returns it.
    ``base``: the base model's directory, recorded in checkpoints."""
    from peft import get_peft_model

    devices = [policy.device.index or 0] if policy.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the global RNG is left as it was
        torch.manual_seed(seed)
        try:
            policy.module = get_peft_model(policy.module, _peft_config(lora_cfg))
        except ValueError as exc:  # e.g. no module matches target_modules
            raise GraftError(f"model.lora.target_modules: {str(exc).splitlines()[0]}") from None
    policy.lora_base = str(base)
    return policy


def is_lora(policy) -> bool:
    return getattr(policy, "lora_base", None) is not None


def save_adapter(policy, directory: Path) -> None:
    """The adapter, the tokenizer and the marker naming the base model."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    policy.module.save_pretrained(directory)  # a peft model writes its adapter only
    policy.tokenizer.hf.save_pretrained(directory)
    marker = {"type": MODEL_TYPE, "base": policy.lora_base}
    (directory / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")


def adapter_marker(directory: Path) -> dict | None:
    """The marker of a LoRA checkpoint directory, or None when it is not one."""
    marker = Path(directory) / MARKER_FILE
    if not marker.is_file():
        return None
    data = json.loads(marker.read_text())
    return data if data.get("type") == MODEL_TYPE else None


def load_adapter(policy, directory: Path, base: str | Path):
    """Put the adapter saved in ``directory`` on ``policy`` (the base model, placed), trainable."""
    from peft import PeftModel

    policy.module = PeftModel.from_pretrained(policy.module, str(directory), is_trainable=True)
    policy.lora_base = str(base)
    return policy


def merge(policy):
    """The policy with its adapters merged into the base weights: a plain HF model (in place)."""
    policy.module = policy.module.merge_and_unload()
    policy.lora_base = None
    return policy


class BaseReference:
    """A LoRA policy's base model (adapters disabled) behind the ``Policy`` interface: the KL
    reference. Shares every weight with the policy; nothing of it is trainable or saved."""

    def __init__(self, policy):
        self.policy = policy
        self.tokenizer = policy.tokenizer

    @property
    def module(self):
        return self.policy.module

    @property
    def device(self) -> torch.device:
        return self.policy.device

    @property
    def hidden_size(self) -> int:
        return self.policy.hidden_size

    def forward(self, *args: Any, **kwargs: Any):
        with self.policy.module.disable_adapter():
            return self.policy.forward(*args, **kwargs)

    def hidden(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        with self.policy.module.disable_adapter():
            return self.policy.hidden(*args, **kwargs)

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        with self.policy.module.disable_adapter():
            return self.policy.logits_from_hidden(hidden)

    def head_weight(self) -> torch.Tensor | None:
        return self.policy.head_weight()  # None when the head has an adapter: the plain path then

    def select_cache_rows(self, cache: Any, index: torch.Tensor) -> Any:
        return self.policy.select_cache_rows(cache, index)


def merged_state_dict(policy) -> dict[str, torch.Tensor]:
    """The weights ``merge`` would give, under the base model's Hugging Face names, computed
    without changing the policy: base weight + each active adapter's ``get_delta_weight``
    (its scaled B A). For handing a LoRA policy's weights to an inference engine."""
    from peft.tuners.lora import LoraLayer

    base = policy.module.get_base_model()
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for key, tensor in base.state_dict().items():
            if ".lora_" in key:
                continue
            out[key.replace(".base_layer.", ".")] = tensor.detach()
        for name, module in base.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            weight = module.get_base_layer().weight
            merged = weight.detach().clone()
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    merged += module.get_delta_weight(adapter).to(merged.dtype)
            out[f"{name}.weight"] = merged
    return out
