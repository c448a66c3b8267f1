"""The GPU check (issue 13): one command, under 10 minutes on one H200, for a session that has a GPU.

    bash bench/gpu_check.sh                    # on the GPU machine: installs .whl/ if present, runs this
    python bench/gpu_bench.py --device cuda    # the same without the install (graft on PYTHONPATH)
    PYTHONPATH=src python bench/gpu_bench.py --device cpu --smoke   # every path that needs no GPU

Phases, one after another, each in its own subprocess with its own time limit (and all inside
``--budget``: a phase never gets more than the time left, so one slow phase cannot eat the rest):

1. ``tests``: ``pytest -m gpu`` on the test files that hold a ``gpu`` mark (counts from JUnit XML).
2. ``quickstart``: ``graft quickstart --set model.device=cuda`` (the packaged config; ``--quick`` and
   ``--smoke`` shorten it and say so); held-out accuracy after SFT and after RL, and wall time.
3. ``bench``: GRPO steps on a Qwen2.5-0.5B-shaped model built here with random weights
   (``graft.models.hf_testing``: hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864,
   vocabulary 151,936, tied embeddings, rope theta 1e6; nothing is downloaded), bf16 weights,
   LoRA (rank 16) and full fine-tuning, graft (``bench/graft_side.py``) and TRL's GRPOTrainer
   (``bench/trl_side.py``) on the same prompts, group size, completion length and reward as
   ``bench/vs_trl.py``; rows with vLLM (graft ``rollout.engine=vllm``, TRL ``use_vllm=True,
   vllm_mode="colocate"``) run only when vLLM imports and, for graft, the key exists; otherwise
   they are recorded as skipped with the reason. Each row is its own process, so its peak GPU
   memory (``torch.cuda.max_memory_allocated`` / ``_reserved``) is its own.

Writes ``--out`` (default ``bench/results/gpu_check.json`` on CUDA, ``runs/gpu_check/gpu_check_cpu.json``
on the CPU) after every phase, and a Markdown table beside it (same name, ``.md``). A row or phase
that did not run is ``"status": "skipped"`` with its ``reason``; nothing is estimated.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from time_to_target import repo_relative
from vs_trl import make_rows

# Qwen2.5-0.5B's shape (its config.json), random weights
QWEN05 = {"hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate": 4864, "vocab": 151936,
          "tie_embeddings": True, "rope_theta": 1e6, "max_positions": 32768}
TINY = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128, "vocab": 1024,
        "tie_embeddings": True, "rope_theta": 1e6, "max_positions": 512}
LORA = {"rank": 16, "alpha": 32.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
# the packaged quickstart, shortened where the mode says so (recorded with the results)
QUICKSTART_SHORT = {
    "full": [],
    "quick": ["sft.steps=100", "rl.steps=10", "eval.num_examples=100"],
    "smoke": ["sft.steps=4", "rl.steps=2", "rl.num_prompts=4", "rl.num_generations=4", "rl.max_new_tokens=16",
              "model.d_model=32", "model.n_layers=2", "model.n_heads=2", "task.num_train=300",
              "task.num_test=16", "eval.num_examples=16", "eval.max_new_tokens=16", "checkpoint.every=100"],
}
MODES = {
    # prompts x generations per step, prompt tokens, max completion tokens, steps (warm-up left out)
    "full": {"shape": QWEN05, "num_prompts": 8, "num_generations": 8, "prompt_len": 64, "completion": 128,
             "steps": 5, "warmup": 2},
    "quick": {"shape": QWEN05, "num_prompts": 4, "num_generations": 8, "prompt_len": 64, "completion": 64,
              "steps": 3, "warmup": 1},
    "smoke": {"shape": TINY, "num_prompts": 2, "num_generations": 4, "prompt_len": 16, "completion": 8,
              "steps": 2, "warmup": 1},
}
# seconds: each phase's own limit (a row's is per row); the run as a whole stops at --budget
LIMITS = {
    "full": {"probe": 90, "tests": 120, "quickstart": 180, "build": 90, "row": 100},
    "quick": {"probe": 90, "tests": 120, "quickstart": 90, "build": 90, "row": 70},
    "smoke": {"probe": 90, "tests": 120, "quickstart": 120, "build": 60, "row": 120},
}
BUDGET = {"full": 540, "quick": 300, "smoke": 900}
# graft's update: log-probs of completion positions only, 2048 tokens at a time through the fused
# head (no (rows, tokens, 151,936) logits tensor); the same loss and gradients (tests/test_lean.py)
GRAFT_OPTIONS = ["optim.logprob_chunk=2048", "optim.logprob_impl=fused"]
SHAPES = {"qwen2.5-0.5b": QWEN05, "tiny": TINY}
ROWS = [  # in this order: the rows that always run first, the vLLM ones last
    ("graft", "lora", "graft"), ("trl", "lora", "generate"), ("graft", "full", "graft"), ("trl", "full", "generate"),
    ("graft", "lora", "vllm"), ("trl", "lora", "vllm"), ("graft", "full", "vllm"), ("trl", "full", "vllm"),
]
ENGINE_NAMES = {"graft": "graft's sampler", "generate": "model.generate", "vllm": "vLLM"}


class Clock:
    """Elapsed time since the start, and the time a phase may take: its own limit or what is left of
    the budget (less a few seconds to write the results), whichever is smaller."""

    def __init__(self, budget: float):
        self.t0, self.budget = time.perf_counter(), budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def allow(self, limit: float) -> float:
        return max(0.0, min(limit, self.budget - self.elapsed() - 5))

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {text}", flush=True)


MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|tmp|root|home)/[^\s'\"():,]*")


def scrub(text: str) -> str:
    """Output as results record it: paths in the repo relative to it, other paths of this machine
    (/work, /tmp, /root, /home) as ``<outside the repo>/NAME`` (tests/test_committed_paths.py)."""
    text = text.replace(str(ROOT) + "/", "").replace(str(ROOT.resolve()) + "/", "")
    return MACHINE_PATH.sub(lambda m: f"<outside the repo>/{Path(m.group(0)).name}", text)


def run(cmd: list[str], limit: float, env: dict | None = None, log: Path | None = None) -> dict:
    """Run ``cmd`` in the repo root for at most ``limit`` seconds; its output goes to ``log``."""
    t = time.perf_counter()
    if limit < 1:
        return {"rc": None, "timed_out": True, "wall_s": 0.0, "tail": "no time left in the budget"}
    with open(log or os.devnull, "w") as out:
        # its own process group: a timeout ends its children too (an inference engine's workers,
        # which would otherwise keep GPU memory for the next row)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc, timed_out = proc.wait(timeout=limit), False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group, on success too
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    tail = scrub(log.read_text(errors="replace")[-2500:]) if log and log.exists() else ""
    return {"rc": rc, "timed_out": timed_out, "wall_s": time.perf_counter() - t, "tail": tail}


def graft_env(threads: int) -> dict:
    """This environment with graft's source first on PYTHONPATH (any installed graft is not used)."""
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                PYTHONUNBUFFERED="1")


# is each package installed (found, not imported: an import takes seconds; a package that is there
# but fails to import fails its row, with the traceback in the results)? Prints the first's version.
FIND = ("import importlib.metadata as m, importlib.util as u, sys; names = {names!r}; "
        "missing = [n for n in names if u.find_spec(n) is None]; "
        "sys.exit('missing: ' + ', '.join(missing)) if missing else print(m.version(names[0]))")


def probe(python: str, code: str, limit: float, env: dict) -> tuple[str | None, str | None]:
    """(stdout, None) when ``code`` runs in ``python``, else (None, why not)."""
    try:
        proc = subprocess.run([python, "-c", code], check=False, capture_output=True, text=True, timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {limit:.0f} s"
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return None, scrub(last[:300])
    return proc.stdout.strip(), None


# ---------------------------------------------------------------- the machine


def machine(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "cuda_runtime": torch.version.cuda}
    for name in ("transformers", "peft", "accelerate"):  # installed versions, without the imports' seconds
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = None
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                    gpu_memory_mb=props.total_memory / 2**20, compute_capability=f"{props.major}.{props.minor}")
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20, check=False)
            info["driver"] = smi.stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            info["driver"] = None
    else:
        info["gpu"] = None
    try:
        info["graft_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                              text=True, timeout=10, check=False).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        info["graft_commit"] = None
    return info


# ---------------------------------------------------------------- phase 1: pytest -m gpu


def gpu_test_files() -> list[str]:
    files = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if re.search(r"pytest\.mark\.gpu\b|\bmark\.gpu\b", path.read_text(errors="replace")):
            files.append(path.relative_to(ROOT).as_posix())
    return files


def phase_tests(args, clock: Clock, work: Path) -> dict:
    files = gpu_test_files()
    if not files:
        return {"status": "skipped", "reason": "no test file under tests/ has a gpu mark"}
    junit = work / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", f"--junitxml={junit}",
           *files]
    limit = clock.allow(args.limits["tests"])
    res = run(cmd, limit, graft_env(args.threads), work / "tests.log")
    out = {"command": "python -m pytest -q -m gpu " + " ".join(files), "limit_s": limit, "wall_s": res["wall_s"]}
    if res["timed_out"]:
        return {**out, "status": "timeout", "reason": f"stopped after {limit:.0f} s", "log_tail": res["tail"]}
    if not junit.exists():
        return {**out, "status": "error", "reason": f"pytest exit status {res['rc']}, no JUnit XML",
                "log_tail": res["tail"]}
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failed = []
    for case in suite.iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            failed.append({"test": f"{case.get('classname')}::{case.get('name')}",
                           "message": (bad.get("message") or "")[:500]})
    skip_reasons = sorted({(c.find("skipped").get("message") or "") for c in suite.iter("testcase")
                           if c.find("skipped") is not None})
    ok = res["rc"] == 0 and not failed
    out.update(status="ok" if ok else "failed", counts=counts, failed=failed, skip_reasons=skip_reasons)
    if not ok:
        out["log_tail"] = res["tail"]
    if counts["tests"] and counts["skipped"] == counts["tests"]:
        out["note"] = "every gpu test skipped (no CUDA in this process)"
    return out


# ---------------------------------------------------------------- phase 2: the quickstart on the device


def phase_quickstart(args, clock: Clock, work: Path) -> dict:
    out_dir = ROOT / "runs" / "gpu_check" / "quickstart"
    sets = [f"model.device={args.device}", "log.progress=false", *QUICKSTART_SHORT[args.mode]]
    cmd = [sys.executable, "-m", "graft.cli", "quickstart", "--out", str(out_dir)]
    for s in sets:
        cmd += ["--set", s]
    limit = clock.allow(args.limits["quickstart"])
    res = run(cmd, limit, graft_env(args.threads), work / "quickstart.log")
    out = {"command": "graft quickstart --out runs/gpu_check/quickstart " + " ".join(f"--set {s}" for s in sets),
           "shortened": bool(QUICKSTART_SHORT[args.mode]), "limit_s": limit, "process_wall_s": res["wall_s"],
           "run_dir": repo_relative(out_dir)}
    summary = out_dir / "summary.json"
    if res["timed_out"]:
        return {**out, "status": "timeout", "reason": f"stopped after {limit:.0f} s", "log_tail": res["tail"]}
    if res["rc"] != 0 or not summary.exists():
        return {**out, "status": "failed", "reason": f"exit status {res['rc']}", "log_tail": res["tail"]}
    s = json.loads(summary.read_text())
    out.update(status="ok", eval_examples=s.get("eval_examples"),
               greedy_after_sft=s.get("accuracy_after_sft"), greedy_after_rl=s.get("accuracy_after_rl"),
               sampled_after_sft=s.get("sampled_accuracy_after_sft"),
               sampled_after_rl=s.get("sampled_accuracy_after_rl"), train_wall_s=s.get("wall_seconds"))
    return out


# ---------------------------------------------------------------- phase 3: the RL step benchmark


def build_model(shape: dict, directory: Path) -> dict:
    from safetensors import safe_open

    from graft.models.hf_testing import build_tiny_hf_model

    build_tiny_hf_model(directory, arch="qwen2", seed=0, hidden_size=shape["hidden"], num_layers=shape["layers"],
                        num_heads=shape["heads"], num_kv_heads=shape["kv_heads"],
                        intermediate_size=shape["intermediate"], vocab_size=shape["vocab"],
                        max_positions=shape["max_positions"], tie_embeddings=shape["tie_embeddings"],
                        rope_theta=shape["rope_theta"])
    n_total = 0  # from the stored shapes, without reading the weights; a tied matrix is stored once
    with safe_open(str(directory / "model.safetensors"), "pt") as f:
        for key in f.keys():  # noqa: SIM118 -- not a dict
            n_total += math.prod(f.get_slice(key).get_shape())
    # in matmuls: everything but the input lookup, plus the LM head, which is that matrix again when tied
    n_matmul = n_total - (0 if shape["tie_embeddings"] else shape["vocab"] * shape["hidden"])
    return {"params": n_total, "params_in_matmuls": n_matmul}


def engine_problem(side: str, tuning: str, engine: str, args, graft_vllm: dict, trl: dict) -> str | None:
    """Why the row (side, tuning, engine) cannot run here, or None."""
    if side == "trl" and trl["problem"]:
        return trl["problem"]
    if side not in args.sides:
        return f"--sides {','.join(args.sides)}"
    if tuning not in args.tuning:
        return f"--tuning {','.join(args.tuning)}"
    if engine != "vllm":
        return None
    if args.device != "cuda":
        return "vLLM needs CUDA (--device cpu)"
    if side == "graft":
        return graft_vllm["problem"]
    return trl["vllm_problem"]


def probe_vllm(args, clock: Clock, trl_python: str | None) -> tuple[dict, dict]:
    """Can graft's vLLM engine run (vllm imports, and graft's config has ``rollout.engine``), and can
    TRL's vLLM mode (vllm imports in TRL's Python)? Each as {"problem": reason or None, ...}."""
    graft = {"problem": None, "vllm": None}
    trl_vllm = {"problem": None, "vllm": None}
    if args.device != "cuda":
        why = "vLLM needs CUDA (--device cpu)"
        return {"problem": why}, {"problem": why}
    from graft.config import build_config

    try:
        build_config({}, ["rollout.engine=vllm", "model.path=probe"])  # the engine serves HF models only
    except Exception as err:  # noqa: BLE001 -- any refusal is the reason the row is skipped
        graft["problem"] = f"graft has no rollout.engine=vllm on this commit: {str(err).splitlines()[0][:200]}"
    env = graft_env(args.threads)
    for who, python in (("graft", sys.executable), ("trl", trl_python)):
        rec = graft if who == "graft" else trl_vllm
        if python is None or (who == "graft" and rec["problem"]):
            continue
        if who == "trl" and python == sys.executable and graft["vllm"] is not None:
            rec["vllm"] = graft["vllm"]
            continue
        version, why = probe(python, FIND.format(names=("vllm",)), clock.allow(args.limits["probe"]), env)
        rec["vllm"] = version
        if why:
            rec["problem"] = f"vllm is not installed in {who}'s Python ({why})"
    return graft, trl_vllm


def resolve_trl(args, clock: Clock) -> dict:
    """TRL's interpreter: --trl-python / $GRAFT_TRL_PYTHON, else this one if trl imports here (the GPU
    machine, with the carried wheels), else bench/.venv-trl (bench/vs_trl.py makes it)."""
    if "trl" not in args.sides:
        return {"python": None, "problem": f"--sides {','.join(args.sides)}", "vllm_problem": None}
    given = args.trl_python or os.environ.get("GRAFT_TRL_PYTHON")
    venv = BENCH / ".venv-trl" / "bin" / "python"
    if given:
        candidates = [given]
    elif importlib.util.find_spec("trl") is not None:
        candidates = [sys.executable]
    else:
        candidates = [str(venv)] if venv.exists() else []
    if not candidates:
        return {"python": None, "problem": "trl is not importable here and bench/.venv-trl does not exist "
                "(bench/gpu_wheels.sh carries it to the GPU machine; python bench/vs_trl.py --only trl makes the venv)",
                "vllm_problem": None}
    python = candidates[0]
    env = trl_env(python, args.threads)
    version, why = probe(python, FIND.format(names=("trl", "peft")), clock.allow(args.limits["probe"]), env)
    return {"python": python, "trl": version, "vllm_problem": None,
            "problem": None if version else f"trl or peft is not installed in {repo_relative(python)}: {why}"}


def trl_env(python: str, threads: int) -> dict:
    env = graft_env(threads)
    if python != sys.executable:  # its own venv: nothing of this environment's path
        env["PYTHONPATH"] = ""
    return env


def row_spec(side: str, tuning: str, engine: str, args, model_dir: Path, data: Path, run_dir: Path) -> dict:
    m = MODES[args.mode]
    spec = {"model_dir": str(model_dir), "data": str(data), "steps": m["steps"], "num_prompts": m["num_prompts"],
            "num_generations": m["num_generations"], "max_new_tokens": m["completion"], "lr": args.lr,
            "threads": args.threads, "run_dir": str(run_dir)}
    if side == "graft":
        opts = [f"model.device={args.device}", f"model.precision={args.precision}", *GRAFT_OPTIONS,
                f"optim.micro_batch_size={m['num_prompts'] * m['num_generations']}"]
        if tuning == "lora":
            # LORA["target_modules"] is graft's default (model.lora.target_modules)
            opts += [f"model.lora.rank={LORA['rank']}", f"model.lora.alpha={LORA['alpha']}"]
        if engine == "vllm":
            opts.append("rollout.engine=vllm")
        spec["graft_options"] = opts
    else:
        spec.update(device=args.device, precision=args.precision, gradient_checkpointing=False,
                    lora=LORA if tuning == "lora" else None, use_vllm=engine == "vllm",
                    vllm_gpu_memory_utilization=0.3)
    return spec


def summarise(raw: dict, warmup: int, n_matmul: int, batch: int) -> dict:
    """Median step time over the steps after ``warmup``, completion tokens per step and per second of
    the step and of the rollout alone, achieved TFLOP/s of 8·N·T (as bench/vs_trl.py), GPU memory."""
    steps = raw["steps"][warmup:] or raw["steps"]
    med = statistics.median(s["step_time"] for s in steps)
    comp = [s["completion_tokens"] for s in steps if s.get("completion_tokens") is not None]
    per_step = statistics.mean(comp) if comp else None
    roll = [s.get("rollout_time") for s in steps]
    roll_med = statistics.median(roll) if roll and all(r is not None and r > 0 for r in roll) else None
    tokens = batch * raw["mean_prompt_tokens"] + (per_step or 0)
    out = {
        "steps_run": len(raw["steps"]), "warmup_steps_excluded": warmup,
        "step_times_s": [s["step_time"] for s in raw["steps"]],
        "step_time_median_s": med,
        "completion_tokens_per_step": per_step,
        "completion_tokens_per_s": per_step / med if per_step else None,
        "rollout_time_median_s": roll_med,
        "rollout_tokens_per_s": per_step / roll_med if per_step and roll_med else None,
        "update_time_median_s": statistics.median(s["step_time"] - s["rollout_time"] for s in steps)
        if roll_med else None,
        "achieved_tflops_per_s": 8 * n_matmul * tokens / med / 1e12,
        "reward_mean": statistics.mean([s["reward_mean"] for s in steps if s.get("reward_mean") is not None] or [0]),
        "peak_rss_mb": raw.get("peak_rss_mb"),
        "trainable_params": raw.get("trainable_params"),
    }
    cuda = raw.get("cuda_memory")
    if cuda:
        out.update(cuda_max_allocated_mb=cuda["max_allocated_mb"], cuda_max_reserved_mb=cuda["max_reserved_mb"],
                   cuda_device_used_at_end_mb=cuda["device_used_at_end_mb"])
    if roll_med is None:
        out["rollout_note"] = "sampling was not timed apart from the step"
    if "versions" in raw:
        out["versions"] = raw["versions"]
    return out


def phase_bench(args, clock: Clock, work: Path, record: dict, save) -> dict:
    m = MODES[args.mode]
    shape, batch = SHAPES[args.shape] if args.shape else m["shape"], m["num_prompts"] * m["num_generations"]
    bench = {"status": "running", "model": {"arch": "qwen2", "weights": "random (seed 0), built here",
                                            **shape},
             "settings": {"precision": args.precision, "num_prompts": m["num_prompts"],
                          "num_generations": m["num_generations"], "prompt_tokens": m["prompt_len"],
                          "max_completion_tokens": m["completion"], "steps": m["steps"], "warmup": m["warmup"],
                          "lr": args.lr, "lora": LORA, "graft_options": GRAFT_OPTIONS,
                          "trl": "GRPOTrainer: beta=0, loss_type=dapo, scale_rewards=group, one micro-batch, "
                                 "gradient_checkpointing=False, bf16 weights when precision=bf16 (bench/trl_side.py)",
                          "reward": "last non-empty line equals the sum (bench/vs_trl.py's data)"},
             "rows": []}
    record["phases"]["bench"] = bench
    model_dir = work / "model"
    clock.say(f"bench: building the model {shape}")
    t = time.perf_counter()
    try:
        counts = build_model(shape, model_dir)
    except Exception as err:  # noqa: BLE001 -- recorded, the phase ends
        bench.update(status="error", reason=f"building the model failed: {err!r}"[:500])
        return bench
    bench["model"].update(counts, build_s=time.perf_counter() - t)
    clock.say(f"bench: model built, {counts['params']:,} parameters ({time.perf_counter() - t:.0f} s)")
    data = work / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(2000, m["prompt_len"])))
    trl = resolve_trl(args, clock)
    graft_vllm, trl_vllm = probe_vllm(args, clock, trl["python"] if not trl["problem"] else None)
    trl["vllm_problem"] = trl_vllm["problem"]
    bench["versions"] = {"trl": trl.get("trl"), "vllm_graft_side": graft_vllm.get("vllm"),
                         "vllm_trl_side": trl_vllm.get("vllm"),
                         "trl_python": repo_relative(trl["python"]) if trl["python"] else None}
    for side, tuning, engine in ROWS:
        name = f"{'graft' if side == 'graft' else 'TRL'} {tuning} ({ENGINE_NAMES[engine]})"
        row = {"name": name, "side": side, "tuning": tuning, "engine": engine}
        bench["rows"].append(row)
        problem = engine_problem(side, tuning, engine, args, graft_vllm, trl)
        if problem:
            row.update(status="skipped", reason=problem)
            clock.say(f"bench: {name}: skipped ({problem})")
            continue
        limit = clock.allow(args.limits["row"])
        if limit < 10:
            row.update(status="skipped", reason=f"no time left in the {args.budget:.0f} s budget")
            clock.say(f"bench: {name}: skipped (no time left)")
            continue
        job = f"{side}_{tuning}_{engine}"
        spec = row_spec(side, tuning, engine, args, model_dir, data, work / f"{job}_run")
        row["settings"] = {k: v for k, v in spec.items() if k not in ("model_dir", "data", "run_dir")}
        spec_path, out_path = work / f"{job}_spec.json", work / f"{job}_out.json"
        spec_path.write_text(json.dumps(spec))
        python = sys.executable if side == "graft" else trl["python"]
        env = graft_env(args.threads) if side == "graft" else trl_env(python, args.threads)
        clock.say(f"bench: {name}: running {spec['steps']} steps (limit {limit:.0f} s)")
        res = run([python, str(BENCH / f"{side}_side.py"), str(spec_path), str(out_path)], limit, env,
                  work / f"{job}.log")
        row["process_s"] = res["wall_s"]
        if res["timed_out"]:
            row.update(status="timeout", reason=f"stopped after {limit:.0f} s", log_tail=res["tail"])
        elif res["rc"] != 0 or not out_path.exists():
            row.update(status="failed", reason=f"exit status {res['rc']}", log_tail=res["tail"])
        else:
            row.update(status="ok", **summarise(json.loads(out_path.read_text()), m["warmup"],
                                                counts["params_in_matmuls"], batch))
            clock.say(f"bench: {name}: median step {row['step_time_median_s']:.3f} s, "
                      f"{row['completion_tokens_per_s'] or 0:.0f} completion tokens/s, "
                      + (f"GPU peak {row['cuda_max_allocated_mb']:,.0f} MB allocated"
                         if "cuda_max_allocated_mb" in row else "no GPU memory used"))
        if row["status"] != "ok":
            clock.say(f"bench: {name}: {row['status']} ({row['reason']})")
        save()
    bench["status"] = "ok" if all(r["status"] in ("ok", "skipped") for r in bench["rows"]) else "failed"
    return bench


# ---------------------------------------------------------------- the record


def write(record: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(record))


def _f(v, fmt: str) -> str:
    return "" if v is None else fmt.format(v)


def markdown(rec: dict) -> str:
    mach = rec["machine"]
    lines = [f"# GPU check ({rec['mode']}, --device {rec['device']}), {rec['date_utc']} UTC", "",
             (f"Machine: {mach.get('gpu') or 'no GPU'}; torch {mach['torch']} (CUDA {mach['cuda_runtime']}), "
             f"transformers {mach.get('transformers')}, peft {mach.get('peft')}; Python {mach['python']}; "
             f"{mach['cpu_count']} CPUs. Elapsed {rec['elapsed_s']:.0f} s of a {rec['budget_s']:.0f} s budget."), ""]
    phases = rec["phases"]
    if "tests" in phases:
        t = phases["tests"]
        c = t.get("counts", {})
        lines += [f"**pytest -m gpu**: {t['status']}" + (f" ({t['reason']})" if t.get("reason") else "")
                  + (f": {c['passed']} passed, {c['failures'] + c['errors']} failed, {c['skipped']} skipped"
                     if c else "") + (f", {t['wall_s']:.0f} s" if "wall_s" in t else ""), ""]
    if "quickstart" in phases:
        q = phases["quickstart"]
        line = f"**quickstart** ({q.get('command', '')}): {q['status']}"
        if q["status"] == "ok":
            line += (f": greedy {q['greedy_after_sft']:.3f} -> {q['greedy_after_rl']:.3f}, sampled "
                     f"{q['sampled_after_sft']:.3f} -> {q['sampled_after_rl']:.3f} on {q['eval_examples']} held-out "
                     f"examples; train wall {q['train_wall_s']:.0f} s (process {q['process_wall_s']:.0f} s)")
        elif q.get("reason"):
            line += f" ({q['reason']})"
        lines += [line, ""]
    if "bench" in phases:
        b = phases["bench"]
        s, mo = b.get("settings", {}), b.get("model", {})
        lines += [(f"**RL steps** on a Qwen2-architecture model with random weights (hidden {mo.get('hidden')}, "
                  f"{mo.get('layers')} layers, vocabulary {mo.get('vocab')}, {mo.get('params', 0):,} parameters), "
                  f"{s.get('precision')}, {s.get('num_prompts')} prompts x {s.get('num_generations')} completions of "
                  f"up to {s.get('max_completion_tokens')} tokens, median of steps {s.get('warmup', 0) + 1}-"
                  f"{s.get('steps')}:"), "",
                  ("| row | status | step (s) | completion tok/s (step) | rollout tok/s | update (s) | "
                  "GPU max allocated (MB) | GPU max reserved (MB) | trainable params |"),
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in b.get("rows", []):
            if r["status"] != "ok":
                lines.append(f"| {r['name']} | {r['status']}: {r.get('reason', '')} | | | | | | | |")
                continue
            lines.append(f"| {r['name']} | ok | {r['step_time_median_s']:.3f} | "
                         f"{_f(r['completion_tokens_per_s'], '{:,.0f}')} | {_f(r['rollout_tokens_per_s'], '{:,.0f}')} | "
                         f"{_f(r['update_time_median_s'], '{:.3f}')} | {_f(r.get('cuda_max_allocated_mb'), '{:,.0f}')} | "
                         f"{_f(r.get('cuda_max_reserved_mb'), '{:,.0f}')} | {_f(r.get('trainable_params'), '{:,}')} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer steps and tokens, a shortened quickstart")
    size.add_argument("--smoke", action="store_true", help="a tiny model and a few-step quickstart (CPU checks)")
    ap.add_argument("--phases", default="tests,quickstart,bench", help="comma-separated subset, in this order")
    ap.add_argument("--sides", default="graft,trl", help="bench sides to run (graft, trl)")
    ap.add_argument("--shape", choices=sorted(SHAPES), help="the bench model (default: qwen2.5-0.5b; --smoke: tiny)")
    ap.add_argument("--tuning", default="lora,full", help="bench rows to run (lora, full)")
    ap.add_argument("--precision", choices=["bf16", "bf16_mixed", "fp32"], default="bf16",
                    help="graft's model.precision; TRL: bf16 = bf16 weights and bf16=True, bf16_mixed = fp32 "
                         "weights and bf16=True (autocast), fp32 = fp32 weights")
    ap.add_argument("--budget", type=float, help="seconds for the whole run (default: 540 full, 300 quick)")
    ap.add_argument("--threads", type=int, help="torch CPU threads per process (default: 4 on CUDA, 1 on CPU)")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--trl-python", help="TRL's interpreter (default: this one if trl imports, else bench/.venv-trl)")
    ap.add_argument("--out", help="JSON path (default bench/results/gpu_check.json; on --device cpu "
                                  "runs/gpu_check/gpu_check_cpu.json)")
    args = ap.parse_args()
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.limits = LIMITS[args.mode]
    args.budget = args.budget or BUDGET[args.mode]
    args.threads = args.threads or (4 if args.device == "cuda" else 1)
    args.sides = [s for s in args.sides.split(",") if s]
    args.tuning = [t for t in args.tuning.split(",") if t]
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - {"tests", "quickstart", "bench"}
    if unknown:
        ap.error(f"unknown phases: {sorted(unknown)}")
    default_out = "bench/results/gpu_check.json" if args.device == "cuda" else "runs/gpu_check/gpu_check_cpu.json"
    out = Path(args.out or ROOT / default_out)
    clock = Clock(args.budget)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch.cuda.is_available() is False (use --device cpu --smoke here)")
    record = {"mode": args.mode, "device": args.device, "budget_s": args.budget,
              "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
              "command": "python bench/gpu_bench.py " + " ".join(
                  repo_relative(a) if os.path.isabs(a) else a for a in sys.argv[1:]),
              "machine": machine(args.device), "phases": {}, "elapsed_s": 0.0}
    clock.say(f"GPU check, mode {args.mode}, device {args.device} ({record['machine'].get('gpu')}), "
              f"budget {args.budget:.0f} s; writing {repo_relative(out)}")

    def save() -> None:
        record["elapsed_s"] = clock.elapsed()
        write(record, out)

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        for phase in ("tests", "quickstart", "bench"):
            if phase not in phases:
                record["phases"][phase] = {"status": "skipped", "reason": f"--phases {args.phases}"}
                continue
            t = time.perf_counter()
            clock.say(f"{phase}: start")
            if phase == "tests":
                record["phases"]["tests"] = phase_tests(args, clock, work)
            elif phase == "quickstart":
                record["phases"]["quickstart"] = phase_quickstart(args, clock, work)
            else:
                phase_bench(args, clock, work, record, save)
            result = record["phases"][phase]
            result["phase_s"] = time.perf_counter() - t
            clock.say(f"{phase}: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else "")
                      + f" in {result['phase_s']:.0f} s")
            save()
    save()
    print(markdown(record))
    clock.say(f"done; wrote {repo_relative(out)} and {repo_relative(out.with_suffix('.md'))}")


if __name__ == "__main__":
    main()
