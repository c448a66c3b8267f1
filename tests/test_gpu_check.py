"""bench/gpu_bench.py (the GPU check, bench/gpu_check.sh) on the CPU: its smoke mode's graft LoRA row
really runs, through bench/graft_side.py, and the JSON and Markdown it writes have the structure a
GPU run's have; every row not run is skipped with its reason, and no machine path is recorded."""

import json
import os
import subprocess
import sys
from pathlib import Path

from test_committed_paths import absolute_paths

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_writes_the_record(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--device", "cpu", "--smoke", "--phases", "bench",
         "--sides", "graft", "--tuning", "lora", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rec = json.loads(out.read_text())
    assert (rec["mode"], rec["device"]) == ("smoke", "cpu")
    assert rec["machine"]["torch"] and rec["machine"]["gpu"] is None
    assert rec["elapsed_s"] > 0 and rec["budget_s"] > 0
    for phase in ("tests", "quickstart"):
        assert rec["phases"][phase] == {"status": "skipped", "reason": "--phases bench"}

    bench = rec["phases"]["bench"]
    assert bench["status"] == "ok"
    assert bench["model"]["tie_embeddings"] is True and bench["model"]["params"] > 0
    rows = {(r["side"], r["tuning"], r["engine"]): r for r in bench["rows"]}
    assert len(rows) == 8  # graft / TRL x LoRA / full x own sampler / vLLM
    ran = rows[("graft", "lora", "graft")]
    assert ran["status"] == "ok", ran
    assert ran["steps_run"] == 2 and len(ran["step_times_s"]) == 2
    for key in ("step_time_median_s", "completion_tokens_per_step", "completion_tokens_per_s",
                "rollout_time_median_s", "rollout_tokens_per_s", "achieved_tflops_per_s", "peak_rss_mb"):
        assert ran[key] > 0, key
    assert 0 < ran["trainable_params"] < bench["model"]["params"]  # LoRA: the adapters only
    assert "cuda_max_allocated_mb" not in ran  # the CPU: no GPU numbers, rather than zeros
    assert "model.lora.rank=16" in ran["settings"]["graft_options"]
    reasons = {key: r.get("reason") for key, r in rows.items() if key != ("graft", "lora", "graft")}
    assert all(rows[key]["status"] == "skipped" and why for key, why in reasons.items()), reasons
    assert reasons[("graft", "lora", "vllm")] == "vLLM needs CUDA (--device cpu)"
    assert reasons[("graft", "full", "graft")] == "--tuning lora"
    assert reasons[("trl", "lora", "generate")] == "--sides graft"
    assert absolute_paths(rec) == []
    table = out.with_suffix(".md").read_text()
    assert "| graft lora (graft's sampler) | ok |" in table
    assert "skipped: vLLM needs CUDA" in table
