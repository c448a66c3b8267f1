"""Runs of `graft train` in a subprocess that a test kills with SIGKILL and resumes (one harness
for every exact-resume test)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from graft.train.logging import read_metrics


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "graft.cli", *args]


class Trainer:
    """`graft train` on an empty config plus ``overrides``, in a subprocess."""

    def __init__(self, tmp_path: Path, overrides: list[str]):
        self.config = tmp_path / "empty.yaml"
        self.config.write_text("{}\n")
        self.sets = [a for o in overrides for a in ("--set", o)]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def _command(self, out: Path, resume: bool) -> list[str]:
        return cli("train", str(self.config), "--out", str(out), *self.sets, *(["--resume"] if resume else []))

    def run(self, out: Path, resume: bool = False) -> list[dict]:
        """Train to the end (resuming ``out`` when asked); return its metrics rows."""
        subprocess.run(self._command(out, resume), check=True, env=self.env, capture_output=True)
        return read_metrics(out / "metrics.jsonl")

    def kill_after(self, out: Path, rows: int, timeout: float = 120.0) -> None:
        """Start (or resume, when ``out`` exists) and SIGKILL the run once it has logged ``rows``
        metrics rows (or after ``timeout`` seconds)."""
        proc = subprocess.Popen(self._command(out, out.exists()), env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline and len(read_metrics(out / "metrics.jsonl")) < rows:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def assert_resumed_like(reference: list[dict], resumed: list[dict], keys) -> None:
    """A resumed run logged the same steps as the uninterrupted ``reference``, and every metric of
    ``keys`` that the reference has agrees to 1e-6 at each step."""
    assert [r["step"] for r in resumed] == [r["step"] for r in reference]
    for want, got in zip(reference, resumed):
        for key in keys:
            if key in want:
                assert abs(want[key] - got[key]) <= 1e-6, (want["step"], key, want[key], got[key])
