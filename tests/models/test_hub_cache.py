"""model.path as a repo id: found in the local Hugging Face cache, offline; else one clear line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from graft.config import build_config
from graft.errors import GraftError
from graft.models.hf_testing import build_tiny_hf_model
from graft.models.load import create_policy, hub_cache_dir

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_cache(hub, repo: str):
    """The hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    entry = hub / ("models--" + repo.replace("/", "--"))
    build_tiny_hf_model(entry / "snapshots" / COMMIT, arch="llama", seed=4)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(COMMIT)
    return entry / "snapshots" / COMMIT


@pytest.mark.parametrize("variable", ["HF_HUB_CACHE", "HF_HOME"])
def test_a_repo_id_loads_from_the_local_cache(tmp_path, monkeypatch, variable):
    hub = tmp_path / "hub" if variable == "HF_HUB_CACHE" else tmp_path / "home" / "hub"
    snapshot = _fake_cache(hub, "acme/tiny-llama")
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(hub if variable == "HF_HUB_CACHE" else tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_cache_dir() == hub
    policy = create_policy(build_config({}, ["model.path=acme/tiny-llama"]).model, 0)
    direct = create_policy(build_config({}, [f"model.path={snapshot}"]).model, 0)
    for (name, a), (_, b) in zip(policy.module.state_dict().items(), direct.module.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_repo_id_not_in_the_cache_is_one_line_naming_where_it_looked(tmp_path):
    hub = tmp_path / "hub"
    _fake_cache(hub, "acme/tiny-llama")  # another repo is there
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1")
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  path: acme/absent-model\n")
    out = subprocess.run([sys.executable, "-m", "graft.cli", "train", str(config), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: model.path: 'acme/absent-model' is not a local directory")
    assert str(hub / "models--acme--absent-model") in lines[0]
    assert not (tmp_path / "run").exists()


def test_a_missing_path_that_is_not_a_repo_id_says_so(tmp_path):
    with pytest.raises(GraftError, match="model.path: model directory .* does not exist"):
        create_policy(build_config({}, [f"model.path={tmp_path / 'nowhere'}"]).model, 0)
