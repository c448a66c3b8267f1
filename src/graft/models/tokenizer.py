"""Character tokenizer of the built-in model: specials, newline and printable ASCII."""

from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ("<pad>", "<bos>", "<eos>")
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))


class CharTokenizer:
    pad_id, bos_id, eos_id = 0, 1, 2
    stop_ids = (eos_id,)  # the ids that end a completion

    def __init__(self) -> None:
        self._to_id = {ch: i + len(SPECIALS) for i, ch in enumerate(ALPHABET)}
        self.vocab_size = len(SPECIALS) + len(ALPHABET)  # 99

    def encode(self, text: str) -> list[int]:
        try:
            return [self._to_id[ch] for ch in text]
        except KeyError:
            pos = next(i for i, ch in enumerate(text) if ch not in self._to_id)
            raise ValueError(
                f"character {text[pos]!r} at position {pos} is outside the built-in tokenizer's "
                "alphabet (newline and printable ASCII)"
            ) from None

    def decode(self, ids: list[int]) -> str:
        n = len(SPECIALS)
        return "".join(ALPHABET[i - n] for i in ids if n <= i < self.vocab_size)

    def save(self, directory: Path) -> None:
        (Path(directory) / "tokenizer.json").write_text(
            json.dumps({"type": "graft-char", "specials": SPECIALS, "alphabet": ALPHABET})
        )

    @classmethod
    def load(cls, directory: Path) -> CharTokenizer:
        data = json.loads((Path(directory) / "tokenizer.json").read_text())
        if data.get("type") != "graft-char" or data.get("alphabet") != ALPHABET:
            raise ValueError(f"{directory}/tokenizer.json is not a graft character tokenizer")
        return cls()
