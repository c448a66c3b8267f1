"""Sampled accuracy of a hedging-teacher warm start by how many filler phrases a sample writes.

    PYTHONPATH=src .venv/bin/python bench/length_forms.py runs/bench-length-hedging/sft [--difficulty 2]

For the warm start ``bench/length.py --style hedging`` trained under ``<work>/sft``: 8 samples at
T=1 of each of the 200 held-out prompts; a sample's phrase count is read from its length in tokens
over the plain demonstration's (one token per character, + end-of-sequence), each of the hedging
teacher's three phrases adding 14 characters (``graft.tasks.arithmetic.HEDGE_*``; docs/mixing.md "A hedging
teacher"). Prints
samples and accuracy per count (counts outside 0 .. columns + 1 are other, mostly broken, forms).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _phrase_chars() -> float:
    """Mean characters a hedging phrase adds (each replaces "", "," or " " respectively)."""
    from graft.tasks.arithmetic import HEDGE_CLOSE, HEDGE_NEXT, HEDGE_OPEN

    return (len(HEDGE_OPEN) + len(HEDGE_NEXT) - 1 + len(HEDGE_CLOSE) - 1) / 3


def phrase_count(length: int, plain_chars: int) -> int:
    """Phrases in a completion of ``length`` tokens whose plain form has ``plain_chars`` characters."""
    return round((length - plain_chars - 1) / _phrase_chars())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sft_run", help="the warm start's run directory (<work>/sft of bench/length.py)")
    ap.add_argument("--difficulty", type=int, default=2)
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    import length

    from graft.config import build_config
    from graft.eval.evaluate import decode
    from graft.tasks.arithmetic import demonstration
    from graft.train.checkpoint import list_checkpoints
    from graft.train.loop import prepare

    model = list_checkpoints(Path(args.sft_run) / "checkpoints")[-1] / "model"
    cfg = build_config({}, length.style_base("hedging") + length.RL + [
        f"task.difficulty={args.difficulty}", f"model.path={model}", "rl.steps=0", "seed=0"])
    setup = prepare(cfg)
    examples = setup.task.test_examples()[: cfg.eval.num_examples]
    graded = decode(setup.policy, setup.task, examples, repeats=args.samples, max_new_tokens=cfg.eval.max_new_tokens,
                    batch_size=cfg.eval.batch_size, temperature=1.0, seed=1)
    by: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for g in graded:
        ex = examples[g.index]
        n = phrase_count(g.length, len(demonstration(ex.meta["a"], ex.meta["op"], ex.meta["b"])))
        by[n][0] += g.correct
        by[n][1] += 1
    for n in sorted(by):
        right, total = by[n]
        print(f"phrases {n}: {total} samples, sampled accuracy {right / total:.3f}")


if __name__ == "__main__":
    main()
