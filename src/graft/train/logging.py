"""One thin metrics interface: JSONL always (appended and flushed each step); TensorBoard and
Weights & Biases optionally (``log.tensorboard``, ``log.wandb``), with the same keys and values.

Keys are namespaced by what they measure: ``rollout/…``, ``losses/…``,
``optim/…``, ``perf/…``, ``eval/…``, ``mix/…``.

The optional packages are checked by ``prepare`` (``graft.validation.dependency_problems``)
before the run directory exists; here they are only imported. TensorBoard's events go to the run
directory (``tensorboard --logdir runs/``); a resumed run purges the events past its checkpoint,
as ``metrics.jsonl`` drops its rows. W&B's files go to ``<run dir>/wandb`` (see ``WandbSink``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import ClassVar

from graft.errors import GraftError
from graft.optional import need
from graft.train.checkpoint import write_atomic_text


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible as strings
    return value


def _scalars(metrics: dict) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


class WandbSink:
    """One W&B run per (re)start of training: the config, each step's metrics, the summary.

    ``mode="offline"`` touches no network and asks for no login: everything is written to
    ``<run dir>/wandb/offline-run-*`` (``wandb sync`` uploads it later); git and code capture,
    console capture, system metrics and W&B's error reporting are off. ``mode="online"`` streams to
    the server (``wandb login`` or ``WANDB_API_KEY``); environment variables the user set win.
    """

    OFFLINE_ENV: ClassVar[dict[str, str]] = {"WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false", "WANDB_DISABLE_GIT": "true",
                   "WANDB_DISABLE_CODE": "true", "WANDB_CONSOLE": "off"}

    def __init__(self, run_dir: Path, log_cfg, name: str, config: dict):
        offline = log_cfg.wandb_mode == "offline"
        if offline:
            for key, value in self.OFFLINE_ENV.items():
                os.environ.setdefault(key, value)
        wandb = need("log.wandb", "wandb", "wandb")
        flags = {"x_disable_stats": True, "x_disable_meta": True, "x_disable_machine_info": True,
                 "disable_git": True, "disable_code": True, "save_code": False, "silent": True} if offline else {}
        try:
            settings = wandb.Settings(mode=log_cfg.wandb_mode, console="off", **flags)
            self.run = wandb.init(project=log_cfg.wandb_project, entity=log_cfg.wandb_entity,
                                  name=log_cfg.wandb_name or name, dir=str(run_dir), config=config,
                                  settings=settings)
        except Exception as exc:  # noqa: BLE001 - wandb raises its own error types (login, network, settings)
            raise GraftError(f"log.wandb: wandb.init failed ({type(exc).__name__}: {exc}); for a run without "
                             "network or login set log.wandb_mode=offline") from None

    def log(self, step: int, metrics: dict) -> None:
        self.run.log(_scalars(metrics), step=step)

    def close(self, summary: dict | None = None) -> None:
        if summary:
            self.run.summary.update(_scalars(summary))
        self.run.finish()


class MetricsLogger:
    """``log(step, metrics)`` to ``metrics.jsonl`` and the configured sinks; ``close(summary)``.

    ``start_step``: the first step this process logs (a resumed run's checkpoint step).
    ``wandb``: the config's ``log`` section when ``log.wandb`` is on (``config`` is then logged too).
    """

    def __init__(self, run_dir: Path, tensorboard: bool = False, *, start_step: int = 0, wandb=None,
                 name: str = "run", config: dict | None = None):
        self.path = run_dir / "metrics.jsonl"
        self._fh = open(self.path, "a")  # noqa: SIM115 -- kept open for the run, closed in close()
        self._tb = self._wandb = None
        try:
            if tensorboard:
                writer = need("log.tensorboard", "torch.utils.tensorboard", "tensorboard").SummaryWriter
                self._tb = writer(str(run_dir), purge_step=start_step or None)
            if wandb is not None and wandb.wandb:
                self._wandb = WandbSink(run_dir, wandb, name, config or {})
        except BaseException:
            self.close()
            raise

    def log(self, step: int, metrics: dict) -> None:
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        if self._tb is not None:
            for key, value in _scalars(metrics).items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(step, metrics)

    def close(self, summary: dict | None = None) -> None:
        """Close every sink; ``summary`` (the run's summary.json) goes to W&B's run summary."""
        if self._fh.closed:
            return
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.close(summary)


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
