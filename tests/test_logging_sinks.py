"""log.tensorboard and log.wandb: the same metrics as metrics.jsonl, read back from the files the
packages wrote; and a missing package is one `error:` line naming the key, before any run directory.

W&B runs offline in a subprocess, inside a network namespace of its own when this machine allows it
(`unshare -n`, as root), so "works with no network" is tested, not assumed.
"""

import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import graft
from graft.config import load_config
from graft.train.loop import prepare, train

SRC = str(Path(graft.__file__).resolve().parents[1])
TWO_STEPS = ["sft.steps=1", "rl.steps=1", "checkpoint.every=100"]


def _metrics(run: Path) -> dict[int, dict[str, float]]:
    """metrics.jsonl's numeric values by step."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: {k: v for k, v in r.items() if k != "step" and isinstance(v, (int, float))} for r in rows}


def test_tensorboard_events_hold_the_metrics(tmp_path, tiny_overrides):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(prepare(load_config(None, [*tiny_overrides, *TWO_STEPS, "log.tensorboard=true"])), run)
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    logged = {}
    for tag in events.Tags()["scalars"]:
        for event in events.Scalars(tag):
            logged.setdefault(event.step, {})[tag] = event.value
    want = _metrics(run)
    assert sorted(logged) == sorted(want) == [0, 1]
    for step, values in want.items():
        assert set(logged[step]) == set(values), step
        for key, value in values.items():  # TensorBoard stores float32
            assert math.isclose(logged[step][key], value, rel_tol=1e-6, abs_tol=1e-6), (step, key)


def _cli(args, *, cwd, env=None, prelude="", wrap=()):
    code = f"import sys\n{prelude}\nfrom graft.cli import main\nsys.exit(main())"
    outer = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # the test decides W&B's settings
    full = {**outer, "PYTHONPATH": SRC, **(env or {})}
    return subprocess.run([*wrap, sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd,
                          env=full, stdin=subprocess.DEVNULL, timeout=300, check=False)


@pytest.mark.parametrize("key, module", [("log.tensorboard", "tensorboard"), ("log.wandb", "wandb")])
def test_a_missing_package_is_one_error_line_and_no_run_directory(tmp_path, tiny_overrides, key, module):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    run = tmp_path / "run"
    sets = [a for o in [*tiny_overrides, f"{key}=true"] for a in ("--set", o)]
    out = _cli(["train", str(cfg), "--out", str(run), *sets], cwd=tmp_path,
               prelude=f"sys.modules[{module!r}] = None  # `import {module}` raises ImportError")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: config key '{key}': needs the optional package '{module}'"), lines[0]
    assert f"pip install 'graft[{module}]'" in lines[0]
    assert not run.exists()


# ---------------------------------------------------------------------------- W&B's offline files


def wandb_records(path: Path):
    """The protobuf records of a ``.wandb`` file: a 7-byte header (":W&B", magic, version), then
    LevelDB log framing: 32 KiB blocks of chunks, each a 7-byte header (crc32c, length, type:
    1 full, 2 first, 3 middle, 4 last) and its bytes."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            pos += left - 7 - length  # zero padding to the block's end
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def _items(update) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in update}


def _no_network() -> list[str]:
    """`unshare -n` (a network namespace with only a down loopback) where this machine allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0:
        return [unshare, "-n"]
    return []


def test_wandb_offline_logs_the_metrics_config_and_summary(tmp_path, tiny_overrides):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    run = tmp_path / "run"
    home = tmp_path / "home"  # W&B's own per-user files (settings, cache, core logs) stay in the test's folder
    env = {"HOME": str(home), "WANDB_CONFIG_DIR": str(home / "config"), "WANDB_CACHE_DIR": str(home / "cache"),
           "WANDB_DATA_DIR": str(home / "data")}  # no WANDB_MODE: log.wandb_mode's default makes it offline
    sets = [a for o in [*tiny_overrides, *TWO_STEPS, "log.wandb=true", "log.wandb_project=graft-test"]
            for a in ("--set", o)]
    out = _cli(["train", str(cfg), "--out", str(run), *sets], cwd=tmp_path, env=env, wrap=_no_network())
    assert out.returncode == 0, out.stderr
    files = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, sorted(p.name for p in (run / "wandb").iterdir())
    history, config, summary = {}, {}, {}
    for record in wandb_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = _items(record.history.item)
            history[row.pop("_step")] = {k: v for k, v in row.items() if not k.startswith("_")}
        elif kind == "run":
            config.update(_items(record.run.config.update))
            assert record.run.project == "graft-test" and record.run.display_name == "tiny"
        elif kind == "config":
            config.update(_items(record.config.update))
        elif kind == "summary":
            summary.update(_items(record.summary.update))
    assert history == _metrics(run)  # every step, every key, the same values
    assert config["rl"]["steps"] == 1 and config["model"]["d_model"] == 32 and config["log"]["wandb"] is True
    saved = json.loads((run / "summary.json").read_text())
    assert summary["accuracy_after_rl"] == saved["accuracy_after_rl"]
    assert summary["accuracy_after_sft"] == saved["accuracy_after_sft"]


def test_only_training_needs_the_packages(monkeypatch):
    """load_config (graft eval reads a finished run's config) accepts the keys without the packages;
    prepare's dependency check refuses them, naming both keys."""
    from graft.config import ConfigError
    from graft.validation import validate_dependencies

    for module in ("tensorboard", "torch.utils.tensorboard", "wandb"):
        monkeypatch.setitem(sys.modules, module, None)
    cfg = load_config(None, ["log.tensorboard=true", "log.wandb=true"])
    with pytest.raises(ConfigError) as exc:
        validate_dependencies(cfg)
    assert "config key 'log.tensorboard'" in str(exc.value) and "config key 'log.wandb'" in str(exc.value)
