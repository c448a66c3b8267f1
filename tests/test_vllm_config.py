"""rollout.engine=vllm where vLLM is not installed (graft's own venv): one line naming the key and
how to get vLLM, before a run directory exists. The engine itself: tests/test_vllm_engine.py."""

import sys

import pytest

from graft.config import ConfigError, load_config
from graft.validation import validate_dependencies


def test_missing_vllm_names_the_key_and_the_way_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    cfg = load_config(None, ["rollout.engine=vllm", "model.path=some/model"])  # the config alone is fine
    with pytest.raises(ConfigError) as exc:
        validate_dependencies(cfg)
    message = str(exc.value)
    assert message.startswith("config key 'rollout.engine': needs the optional package 'vllm'")
    assert "make vllm-venv" in message and "pip install vllm" in message
    assert message.endswith("or set rollout.engine=graft")


def test_graft_engine_needs_no_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    validate_dependencies(load_config(None, []))  # nothing raised: vLLM is only imported when named
