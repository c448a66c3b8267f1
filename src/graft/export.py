"""``graft export RUN --out DIR [--merge]``: a run's trained model as a plain Hugging Face directory.

- A LoRA run (``model.lora.rank`` > 0) with ``--merge``: the base model with the adapters merged
  into its weights (``peft``'s ``merge_and_unload``), saved with its tokenizer, config and
  generation config: ``transformers.AutoModelForCausalLM.from_pretrained(DIR)`` loads it and
  nothing of peft or graft is needed. Without ``--merge`` it is refused (the checkpoint holds an
  adapter, not a model).
- A full fine-tuning run of a Hugging Face model: the checkpoint's model directory is already
  one; it is copied (``--merge`` changes nothing).
- The built-in tiny transformer is not a Hugging Face model: refused.

The weights keep the run's weight dtype (``bf16`` stays bf16; ``fp32`` and ``bf16_mixed``, whose
master weights are float32, are float32). The merge runs on the CPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from graft.errors import GraftError


def export(checkpoint: Path, out: Path, merge: bool) -> str:
    """Write ``checkpoint``'s model to ``out`` (see the module docstring); returns what was done."""
    from graft.config import load_config
    from graft.models.load import load_saved_policy
    from graft.models.lora import adapter_marker
    from graft.models.lora import merge as merge_adapters

    model_dir = checkpoint / "model"
    marker = model_dir / "graft_model.json"
    if marker.is_file() and json.loads(marker.read_text()).get("type") == "graft-tiny":
        raise GraftError(f"graft export: {checkpoint} holds graft's built-in tiny transformer, not a Hugging "
                         "Face model; there is nothing to export (graft eval reads the checkpoint as it is)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GraftError(f"graft export: --out {out} already exists and is not empty; choose another")
    lora = adapter_marker(model_dir)
    if lora is None:  # full fine-tuning: the checkpoint's model is a plain HF directory already
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(model_dir, out, dirs_exist_ok=True)
        return f"copied the fine-tuned model of {checkpoint}" + (" (no adapter to merge)" if merge else "")
    if not merge:
        raise GraftError(f"graft export: {checkpoint} holds a LoRA adapter over {lora['base']}, not a model; "
                         "pass --merge to write the base model with the adapter merged in")
    cfg = load_config(checkpoint / "config.yaml")
    model_cfg = cfg.model.model_copy(update={"device": "cpu"})
    try:
        policy = load_saved_policy(model_dir, model_cfg)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise GraftError(f"graft export: the base model of {checkpoint}: {exc}") from None
    merge_adapters(policy)
    policy.save(out)
    return f"merged the LoRA adapter of {checkpoint} into its base model"


def cmd_export(args) -> int:
    from rich.console import Console

    from graft.cli import _resolve_checkpoint

    checkpoint, _ = _resolve_checkpoint(Path(args.target))
    done = export(checkpoint, Path(args.out), args.merge)
    Console(stderr=True).print(f"{done}: {args.out} (loads with AutoModelForCausalLM.from_pretrained)")
    return 0
