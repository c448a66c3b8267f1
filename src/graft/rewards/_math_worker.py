"""Worker process of ``MathGrader``: ``{"gold", "pred"} -> {"equal": bool}`` via math-verify.

Run as ``python -m graft.rewards._math_worker`` by ``workers.TimedPool``; never
imported by the trainer. math-verify's SIGALRM timeouts are off
(``parsing_timeout=None``, ``timeout_seconds=None``): the pool's deadline
bounds each call instead.
"""

from __future__ import annotations

import logging

from graft.rewards.workers import serve

MEMORY_BYTES = 4 << 30  # address-space cap of a worker: sympy on a hostile answer fails instead of swapping


def _configs():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig
    from math_verify.parser import NormalizationConfig

    latex = LatexExtractionConfig(
        boxed_match_priority=0,
        normalization_config=NormalizationConfig(
            basic_latex=True, units=True, malformed_operators=True, nits=False, boxed="all", equations=False,
        ),
    )
    return [latex, ExprExtractionConfig()]


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify warns on every call that its timeout is off
    from math_verify import parse, verify

    configs = _configs()

    def parsed(answer: str):
        return parse("\\boxed{" + answer + "}", extraction_config=configs, parsing_timeout=None)

    def handle(request: dict) -> dict:
        gold, pred = parsed(request["gold"]), parsed(request["pred"])
        if not gold or not pred:
            return {"equal": False}
        return {"equal": bool(verify(gold, pred, timeout_seconds=None))}

    serve(handle, memory_bytes=MEMORY_BYTES)


if __name__ == "__main__":
    main()
