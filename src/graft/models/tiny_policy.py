"""The built-in tiny transformer behind the Policy interface, with save/load."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from graft.models.tiny import TinyConfig, TinyTransformer
from graft.models.tokenizer import CharTokenizer


class TinyPolicy:
    def __init__(self, module: TinyTransformer, tokenizer: CharTokenizer):
        self.module = module
        self.tokenizer = tokenizer
        self.config = module.cfg

    @classmethod
    def create(cls, config: TinyConfig, seed: int) -> TinyPolicy:
        return cls(TinyTransformer(config, seed=seed), CharTokenizer())

    def forward(self, ids, attention_mask, position_ids, cache=None):
        return self.module(ids, attention_mask, position_ids, cache)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "graft_model.json").write_text(
            json.dumps({"type": "graft-tiny", "config": self.config.to_dict()}, indent=2)
        )
        state = {k: v.contiguous() for k, v in self.module.state_dict().items()}
        if self.config.tie_embeddings:
            state.pop("head.weight")  # the same tensor as embed.weight
        save_file(state, str(directory / "model.safetensors"))
        self.tokenizer.save(directory)

    @classmethod
    def load(cls, directory: Path) -> TinyPolicy:
        directory = Path(directory)
        meta = json.loads((directory / "graft_model.json").read_text())
        config = TinyConfig(**meta["config"])
        module = TinyTransformer(config, seed=0)
        state = load_file(str(directory / "model.safetensors"))
        if config.tie_embeddings:
            state["head.weight"] = state["embed.weight"]
        module.load_state_dict(state)
        return cls(module, CharTokenizer.load(directory))
