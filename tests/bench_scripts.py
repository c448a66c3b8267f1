"""Load a script of ``bench/`` as a module for its tests (the bench folder is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(relpath: str, name: str | None = None) -> ModuleType:
    """``bench/<relpath>`` executed as module ``name`` (default: ``bench_`` + its path's stem, with
    ``/`` as ``_``), registered in ``sys.modules`` so that dataclasses and pickling can find it."""
    name = name or "bench_" + relpath.removesuffix(".py").replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, BENCH / relpath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
