"""Atomic checkpoints.

A checkpoint is written into a hidden temporary directory next to its final
place, every file is fsynced, and only then is the directory renamed to
``step_N`` (rename is atomic on POSIX). A run killed at any moment leaves
either a complete ``step_N`` or a ``.tmp-*`` directory that resume deletes;
never a half-written ``step_N``, nor a half-deleted one (old checkpoints are renamed to
``.tmp-*`` before they are deleted).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

STEP_PREFIX = "step_"


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(root)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic_text(path: Path, text: str) -> None:
    """Replace a small text file atomically (tmp + fsync + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save_checkpoint(root: Path, step: int, write: Callable[[Path], None], keep: int) -> Path:
    """Call ``write(tmp_dir)`` to fill a checkpoint, then publish it atomically as ``step_N``."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{STEP_PREFIX}{step}"
    tmp = root / f".tmp-{STEP_PREFIX}{step}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    write(tmp)
    _fsync_tree(tmp)
    if final.exists():  # same step saved again (e.g. a resumed run): replace it
        _remove(final)
    os.rename(tmp, final)
    fsync_dir(root)
    for old in list_checkpoints(root)[:-keep]:
        _remove(old)
    return final


def _remove(checkpoint: Path) -> None:
    """Delete a published checkpoint without ever leaving a half-deleted ``step_N``: rename it out
    of the ``step_N`` namespace first (atomic), to a ``.tmp-`` name that ``list_checkpoints``
    sweeps if a kill interrupts the deletion."""
    trash = checkpoint.with_name(f".tmp-{checkpoint.name}-removed-{os.getpid()}")
    os.rename(checkpoint, trash)
    fsync_dir(checkpoint.parent)
    shutil.rmtree(trash, ignore_errors=True)


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first; removes leftovers of interrupted saves."""
    if not root.is_dir():
        return []
    for stale in root.glob(f".tmp-{STEP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)]
    found = [p for p in found if p.name[len(STEP_PREFIX) :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(STEP_PREFIX) :]))


def save_trainer_state(directory: Path, state: dict) -> None:
    torch.save(state, directory / "trainer.pt")


def load_trainer_state(directory: Path) -> dict:
    return torch.load(directory / "trainer.pt", weights_only=False)
