"""Two Ray nodes on this machine (a head and a second raylet started with `ray start`), a short
Ray-backend training whose two rollout workers are placed one per node
(distributed.rollout_placement=spread), and a check that they ran on two node ids.

Clean-up: `ray stop` would stop every Ray process on the machine, other users' included, so the
test stops the processes of its own session only: those whose command line names its temp dir."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

RAY = Path(sys.executable).parent / "ray"
TRAIN = """
import logging, sys
from graft.config import build_config
from graft.train.loop import prepare, train
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
train(prepare(build_config({}, sys.argv[2:])), sys.argv[1])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(temp_dir: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if temp_dir.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _stop(temp_dir: str) -> None:
    """SIGTERM, then SIGKILL, every process of this test's Ray session (found by its temp dir)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _session_pids(temp_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while _session_pids(temp_dir) and time.time() < deadline:
            time.sleep(0.2)


@pytest.mark.slow  # about a minute each on 2 busy cores: two raylets, a driver, three actors
@pytest.mark.parametrize("sync", ["object_store", "broadcast"])  # weights between the nodes either way
def test_rollout_workers_spread_over_two_nodes(tmp_path, sync):
    temp_dir = tempfile.mkdtemp(prefix="graft-ray-", dir="/tmp")  # short: Ray's socket paths
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"  # a private cluster on 127.0.0.1; no token to hand to the second node

    def ray_cli(*args: str) -> None:
        proc = subprocess.run([str(RAY), *args, "--disable-usage-stats"], env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        assert proc.returncode == 0, f"ray {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"

    try:
        ray_cli("start", "--head", "--num-cpus=1", f"--port={port}", f"--temp-dir={temp_dir}",
                "--include-dashboard=false")
        ray_cli("start", f"--address=127.0.0.1:{port}", "--num-cpus=1")
        overrides = ["threads=1", "log.progress=false", "model.d_model=32", "model.n_layers=1", "model.n_heads=2",
                     "task.num_train=40", "task.num_test=8", "sft.steps=1", "sft.batch_size=8", "rl.steps=2",
                     "rl.num_prompts=4", "rl.num_generations=2", "rl.max_new_tokens=8", "eval.num_examples=4",
                     "eval.max_new_tokens=8", "distributed.backend=ray", "distributed.rollout_workers=2",
                     "distributed.rollout_placement=spread", "distributed.worker_cpus=0.5",
                     f"distributed.address=127.0.0.1:{port}", f"distributed.weight_sync={sync}"]
        proc = subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / "run"), *overrides],
                              env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        nodes = dict(re.findall(r"graft.distributed rollout worker (\d+): pid \d+ on node (\w+)", proc.stdout))
        assert sorted(nodes) == ["0", "1"] and nodes["0"] != nodes["1"], proc.stdout[-3000:]
        assert (tmp_path / "run" / "summary.json").is_file()
        assert "weight broadcast" not in proc.stdout + proc.stderr  # no version fell back to the object store
    finally:
        _stop(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert _session_pids(temp_dir) == []
