"""Build or load the policy a config names, on its device and in its precision."""

from __future__ import annotations

import json
from pathlib import Path

from graft.errors import GraftError
from graft.models.device import resolve_device, weight_dtype
from graft.models.policy import Policy


def create_policy(model_cfg, seed: int) -> Policy:
    """``model.path`` set: the saved model there (a local Hugging Face directory, or a graft
    checkpoint's ``model/``). Unset: a fresh seeded tiny transformer. Either way on
    ``model.device`` in ``model.precision``."""
    device = resolve_device(model_cfg.device)
    if model_cfg.path:
        try:
            return load_saved_policy(model_cfg.path, model_cfg)
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise GraftError(f"model.path: {exc}") from None
    from graft.models.tiny import TinyConfig
    from graft.models.tiny_policy import TinyPolicy
    from graft.models.tokenizer import CharTokenizer

    vocab = CharTokenizer().vocab_size
    config = TinyConfig(
        vocab_size=vocab,
        d_model=model_cfg.d_model,
        n_layers=model_cfg.n_layers,
        n_heads=model_cfg.n_heads,
        max_seq_len=model_cfg.max_seq_len,
    )
    return TinyPolicy.create(config, seed=seed).place(device, model_cfg.precision)


def load_saved_policy(directory: str | Path, model_cfg=None) -> Policy:
    """Load a policy saved by ``Policy.save`` (either kind), e.g. ``checkpoints/step_N/model``, on
    ``model_cfg``'s device and precision (None: CPU, float32)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such model directory")
    device = resolve_device(model_cfg.device) if model_cfg is not None else resolve_device("cpu")
    precision = model_cfg.precision if model_cfg is not None else "fp32"
    marker = directory / "graft_model.json"
    if marker.is_file() and json.loads(marker.read_text()).get("type") == "graft-tiny":
        from graft.models.tiny_policy import TinyPolicy

        return TinyPolicy.load(directory).place(device, precision)
    from graft.models.hf import HFPolicy

    return HFPolicy.load(directory, dtype=weight_dtype(precision)).place(device, precision)
