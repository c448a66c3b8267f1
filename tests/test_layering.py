"""The import layering of graft (the import-linter contracts in pyproject.toml) holds.

Runs ``lint-imports`` from this interpreter's environment on the checkout's own ``src`` (not on
whatever copy of graft is installed), so that a new import that breaks a layer fails ``make test``
with the contract and the import chain that breaks it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = Path(sys.executable).parent / "lint-imports"
    assert exe.exists(), (
        f"{exe} not found: import-linter is in the dev extra (pip install -e '.[dev]')"
    )
    env = dict(os.environ, COLUMNS="200")  # rich wraps the contract names at 80 otherwise
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])]
    )
    # no config argument: lint-imports reads the pyproject.toml of its working directory
    proc = subprocess.run(
        [str(exe), "--no-cache"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    out = proc.stdout + proc.stderr
    # the report without the ASCII-art logo: each contract's KEPT/BROKEN line, then the chains
    start = out.find("Contracts\n")
    report = out[start:] if start >= 0 else out
    if proc.returncode != 0:
        pytest.fail(f"lint-imports exited {proc.returncode}:\n{report}", pytrace=False)
