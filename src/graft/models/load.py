"""Build or load the policy a config names."""

from __future__ import annotations

import json
from pathlib import Path

from graft.errors import GraftError
from graft.models.policy import Policy


def create_policy(model_cfg, seed: int) -> Policy:
    """``model.path`` set: the saved model there (a local Hugging Face directory, or a graft
    checkpoint's ``model/``). Unset: a fresh seeded tiny transformer."""
    if model_cfg.path:
        try:
            return load_saved_policy(model_cfg.path)
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
    return TinyPolicy.create(config, seed=seed)


def load_saved_policy(directory: str | Path) -> Policy:
    """Load a policy saved by ``Policy.save`` (either kind), e.g. ``checkpoints/step_N/model``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such model directory")
    marker = directory / "graft_model.json"
    if marker.is_file() and json.loads(marker.read_text()).get("type") == "graft-tiny":
        from graft.models.tiny_policy import TinyPolicy

        return TinyPolicy.load(directory)
    from graft.models.hf import HFPolicy

    return HFPolicy.load(directory)
