"""One thin metrics interface: JSONL always (appended and flushed each step), TensorBoard optionally.

Keys are namespaced by what they measure: ``rollout/…``, ``losses/…``,
``optim/…``, ``perf/…``, ``eval/…``, ``mix/…``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from graft.train.checkpoint import write_atomic_text


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible as strings
    return value


class MetricsLogger:
    def __init__(self, run_dir: Path, tensorboard: bool = False):
        self.path = run_dir / "metrics.jsonl"
        self._fh = open(self.path, "a")  # noqa: SIM115 -- kept open for the run, closed in close()
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # pragma: no cover - depends on optional package
                raise RuntimeError("log.tensorboard=true needs `pip install tensorboard`") from exc
            self._tb = SummaryWriter(str(run_dir))

    def log(self, step: int, metrics: dict) -> None:
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a torn last line from a kill: everything after it is void
    return rows


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep only records of steps < last_step (resume re-runs the rest)."""
    rows = [r for r in read_metrics(path) if r.get("step", -1) < last_step]
    write_atomic_text(path, "".join(json.dumps(r) + "\n" for r in rows))
