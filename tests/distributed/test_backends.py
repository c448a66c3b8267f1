"""The backend choice without a cluster: the local backend needs no Ray; a Ray backend without Ray
installed is refused before anything is written, naming the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from graft.config import ConfigError, load_config
from graft.distributed import build_backend
from graft.distributed.local import LocalBackend
from graft.rewards.scoring import InProcessVerifier
from graft.rollout.sources import IidSource
from graft.validation import validate_dependencies


def test_the_local_backend_is_the_in_process_source_and_verifier():
    backend = build_backend(load_config(None, []))
    assert isinstance(backend, LocalBackend)
    assert type(backend.source) is IidSource and isinstance(backend.verifier, InProcessVerifier)


def test_training_code_does_not_import_ray_for_the_local_backend():
    code = ("import sys; import graft.train.loop, graft.distributed; from graft.config import load_config; "
            "graft.distributed.build_backend(load_config(None, [])); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_a_ray_backend_without_ray_installed_is_refused_naming_the_key(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match=r"'distributed.backend'.*graft\[ray\].*distributed.backend=local"):
        validate_dependencies(load_config(None, ["distributed.backend=ray"]))
