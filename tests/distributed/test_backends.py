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


def test_a_run_that_fails_midway_still_closes_its_backend(tmp_path, monkeypatch, tiny_overrides):
    """The workers (Ray) or an engine's memory (vLLM) are freed when a step raises, not only at the end."""
    from graft.config import build_config
    from graft.train import loop

    closed = []
    monkeypatch.setattr(LocalBackend, "close", lambda self: closed.append(self))

    def broken_rl_step(*a, **k):
        raise RuntimeError("a step that fails")

    monkeypatch.setattr(loop, "rl_step", broken_rl_step)
    cfg = build_config({}, tiny_overrides + ["sft.steps=1", "rl.steps=2"])
    with pytest.raises(RuntimeError, match="a step that fails"):
        loop.train(loop.prepare(cfg), tmp_path / "run")
    assert len(closed) == 1
    closed.clear()
    loop.train(loop.prepare(build_config({}, tiny_overrides + ["sft.steps=1", "rl.steps=0"])), tmp_path / "ok")
    assert len(closed) == 1  # the normal end closes it once too
