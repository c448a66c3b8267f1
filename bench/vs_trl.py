"""graft vs TRL's GRPOTrainer: the same model, prompts, reward and hyperparameters, side by side.

    python bench/vs_trl.py --workload W1            # both sides, prints a table, writes bench/results/vs_trl.json
    python bench/vs_trl.py --workload W2 --steps 4
    python bench/vs_trl.py --workload W1 --only graft --hidden 512 --layers 8   # any shape, one side

Run it with graft's interpreter (``.venv/bin/python`` or ``PYTHONPATH=src``). TRL is installed
into its own environment, ``bench/.venv-trl`` (created here when missing: torch==2.13.0 first,
then ``bench/requirements.txt`` with ``bench/constraints.txt`` holding torch). Each side runs as
its own subprocess (``bench/graft_side.py`` in graft's interpreter, ``bench/trl_side.py`` in
TRL's), so its peak RSS is its own. See bench/README.md for the formulas and caveats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TRL_VENV = BENCH / ".venv-trl"
W1_CHARS = "0123456789+-=A: ,\n"
WORKLOADS = {
    # character vocabulary (special tokens + W1_CHARS), prompts "47+85=", completions <= 16 tokens
    "W1": {"hidden": 256, "layers": 4, "vocab": None, "prompt_len": None, "completion": 16, "steps": 12,
           "warmup": 2},
    # byte vocabulary padded to 32,000, prompts of ~64 tokens, completions <= 128 tokens
    "W2": {"hidden": 256, "layers": 4, "vocab": 32000, "prompt_len": 64, "completion": 128, "steps": 4,
           "warmup": 1},
}
# graft's own update settings per workload (bench/README.md, "graft settings"): the same math as
# graft's defaults (loss and gradients equal to float rounding, tests/test_lean.py), less memory and
# time with a 32k vocabulary: log-probs of completion positions only, 512 tokens at a time through
# the fused head; 4 micro-batches of 16 rows grouped by length, accumulated into one optimizer step.
# W1 (22-token vocabulary) keeps the defaults: there the logits are small and one micro-batch is fastest.
GRAFT_OPTIONS = {  # graft-only overrides per workload: none, graft runs at its defaults (the lean
    # update's keys are ``auto``: graft.train.lean picks chunked/fused log-probs, micro-batch and length
    # grouping from the model, batch and memory; the record's ``lean`` says what they resolved to).
    # Until 2026-12 W2 set them by hand: optim.logprob_chunk=512 logprob_impl=fused micro_batch_size=16
    # sort_by_length=true (README's history); --graft-set adds overrides again.
    "W1": [],
    "W2": [],
}
FILLER = "Add the two numbers below and write only their sum on the last line. "


def make_rows(n: int, prompt_len: int | None, seed: int = 0) -> list[dict]:
    """Two-digit sums; with ``prompt_len`` an instruction prefix pads each prompt to that many characters
    (= tokens: the tokenizer is one token per ASCII character)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        tail = f"{a}+{b}="
        prefix = ""
        if prompt_len:
            need = max(prompt_len - len(tail), 0)
            prefix = (FILLER * (need // len(FILLER) + 1))[:need]
        rows.append({"prompt": prefix + tail, "answer": str(a + b)})
    return rows


def matmul_flops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matmul FLOP/s: best of ``repeats`` n x n @ n x n products (2 n^3 FLOPs each)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def parse_cpuinfo(text: str) -> dict:
    """The facts of /proc/cpuinfo that decide fp32 matmul speed: model name and number, the vector
    and matrix extensions among ``ISA_FLAGS``, and the logical CPU count (first processor's lines)."""
    first, count = {}, 0
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            count += 1
        elif count == 1 and key and key not in first:
            first[key] = value
    flags = set(first.get("flags", "").split())
    return {"model_name": first.get("model name"), "model": first.get("model"), "logical_cpus": count,
            "isa": [f for f in ISA_FLAGS if f in flags]}


def machine_facts(threads: int) -> dict:
    """What differs between two machines "of one kind" and moves a step time: the CPU model and its
    extensions, cache sizes, memory, torch's threading and BLAS backends, and the environment
    variables that override them (thread counts, a preloaded allocator)."""
    facts: dict = {}
    try:
        facts.update(parse_cpuinfo(Path("/proc/cpuinfo").read_text()))
    except OSError:
        pass
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind = (index / "level").read_text().strip(), (index / "type").read_text().strip()
            caches[f"L{level}{'' if kind == 'Unified' else kind[0].lower()}"] = (index / "size").read_text().strip()
        except OSError:
            continue
    facts["caches_per_cpu0"] = caches
    try:
        facts["mem_total_kb"] = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                                         if line.startswith("MemTotal")))
    except (OSError, StopIteration):
        pass
    torch.set_num_threads(threads)
    facts["torch_threads"] = torch.get_num_threads()
    facts["torch_parallel"] = [line.strip() for line in torch.__config__.parallel_info().splitlines()
                               if line.strip().startswith(("ATen parallel backend", "MKL", "MKLDNN", "std::thread"))]
    facts["mkl"], facts["mkldnn"] = torch.backends.mkl.is_available(), torch.backends.mkldnn.is_available()
    facts["env"] = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LD_PRELOAD", "MALLOC_CONF",
                                              "GLIBC_TUNABLES", "KMP_AFFINITY", "OMP_PROC_BIND") if k in os.environ}
    return facts


def ensure_trl_venv() -> Path:
    py = TRL_VENV / "bin" / "python"
    stamp = TRL_VENV / ".installed"
    req = BENCH / "requirements.txt"
    if py.exists() and stamp.exists() and stamp.read_text() == req.read_text():
        return py
    print(f"setting up {TRL_VENV} (torch==2.13.0, then {req.name}) ...", flush=True)
    if not py.exists():
        subprocess.run(["python3", "-m", "venv", str(TRL_VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # the local CPU wheel; unpinned pulls CUDA
    subprocess.run([*pip, "-r", str(req), "-c", str(BENCH / "constraints.txt")], check=True)
    stamp.write_text(req.read_text())
    return py


def run_side(side: str, python: str, spec: dict, work: Path, job: str | None = None) -> dict:
    """Run ``bench/<side>_side.py`` on ``spec`` in ``python``; ``job`` names its files in ``work``
    (default: the side) when one side runs several jobs (time_to_target.py)."""
    job = job or side
    spec_path, out_path = work / f"{job}_spec.json", work / f"{job}_out.json"
    spec = dict(spec, run_dir=str(work / f"{job}_run"))
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]),
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=str(ROOT / "src") if side == "graft" else "")
    script = BENCH / f"{side}_side.py"
    print(f"[{job}] running {spec['steps']} steps ..." if "steps" in spec else f"[{job}] running ...", flush=True)
    t, load = time.perf_counter(), os.getloadavg()
    proc = subprocess.run([python, str(script), str(spec_path), str(out_path)], env=env, check=False,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not out_path.exists():
        tail = (proc.stderr or proc.stdout)[-3000:]
        print(f"[{job}] FAILED (exit {proc.returncode}):\n{tail}", flush=True)
        return {"side": side, "error": tail, "exit_code": proc.returncode}
    result = json.loads(out_path.read_text())
    result["process_seconds"] = time.perf_counter() - t
    result["load_avg_before"], result["load_avg_after"] = load, os.getloadavg()
    print(f"[{job}] done in {result['process_seconds']:.0f} s", flush=True)
    return result


def summarise(result: dict, warmup: int, n_matmul: int, peak: float, batch: int) -> dict:
    """Median step time after ``warmup`` steps, completion tokens/s, FLOP/s and its share of ``peak``.

    FLOPs of a step = 2 * N * T (sampling forward) + 6 * N * T (update forward + backward), where
    N = parameters that take part in matmuls (all but the input embedding table) and
    T = prompt + completion tokens of the step's sequences (padding excluded); attention's
    T^2 terms are left out (small at these lengths). The same formula is used for both sides.
    """
    if "error" in result:
        return {"error": result["error"]}
    steps = result["steps"][warmup:] or result["steps"]
    times = [s["step_time"] for s in steps]
    med = statistics.median(times)
    comp = [s["completion_tokens"] for s in steps if s["completion_tokens"] is not None]
    comp_per_step = statistics.mean(comp) if comp else float("nan")
    tokens = batch * result["mean_prompt_tokens"] + comp_per_step
    flops = 8 * n_matmul * tokens
    out = {
        "step_time_median_s": med,
        "step_times_s": [s["step_time"] for s in result["steps"]],
        "warmup_steps_excluded": warmup,
        "completion_tokens_per_step": comp_per_step,
        "completion_tokens_per_s": comp_per_step / med,
        "peak_rss_mb": result["peak_rss_mb"],
        "flops_per_step": flops,
        "achieved_flops_per_s": flops / med,
        "fraction_of_matmul_peak": flops / med / peak,
        "reward_mean": statistics.mean([s["reward_mean"] for s in steps if s.get("reward_mean") is not None] or [0]),
        "process_seconds": result.get("process_seconds"),
        "load_avg_before": result.get("load_avg_before"),  # 1, 5, 15 min: this machine is shared
        "load_avg_after": result.get("load_avg_after"),
    }
    roll = [s.get("rollout_time") for s in steps]
    if all(r is not None for r in roll):  # graft logs its sampling time: the update alone
        upd = statistics.median([s["step_time"] - s["rollout_time"] for s in steps])
        out["update_time_median_s"] = upd
        out["update_fraction_of_matmul_peak"] = 6 * n_matmul * tokens / upd / peak
    out["phase_medians_s"] = phase_medians(steps)
    for key in ("versions", "lean"):
        if key in result:
            out[key] = result[key]
    return out


PHASES = ("prefill", "decode", "verify", "frozen", "forward", "backward", "optimizer", "other")
"""The per-phase rows, in step order; with the ``rollout`` and ``update`` they add up to, the keys
of ``phase_medians_s``."""


def phase_medians(steps: list[dict]) -> dict:
    """Median seconds of each phase over ``steps`` (None: that side does not time it).

    Logged per step (graft's ``perf/*_time``, the same keys from bench/trl_side.py): rollout
    (verify and prefill within it), frozen, update (backward and optimizer within it). Derived per
    step, then the median: decode = rollout - prefill - verify (with the prefill in it where a
    side cannot split it, vLLM), forward = update - backward - optimizer and other = step -
    rollout - frozen - update. Medians of the steps' own values, so on a noisy machine the rows
    need not add up to the median step time exactly."""
    def med(values) -> float | None:
        return statistics.median(values) if values and all(v is not None for v in values) else None

    def get(key: str) -> list:
        return [s.get(f"{key}_time") for s in steps]

    out = {key: med(get(key)) for key in ("rollout", "prefill", "verify", "frozen", "update", "backward",
                                          "optimizer")}
    if out["rollout"] is not None and out["verify"] is not None:
        out["decode"] = med([s["rollout_time"] - (s.get("prefill_time") or 0.0) - s["verify_time"] for s in steps])
    else:
        out["decode"] = None
    if None not in (out["update"], out["backward"], out["optimizer"]):
        out["forward"] = med([s["update_time"] - s["backward_time"] - s["optimizer_time"] for s in steps])
    else:
        out["forward"] = None
    if out["rollout"] is not None and out["update"] is not None:
        out["other"] = med([s["step_time"] - s["rollout_time"] - (s.get("frozen_time") or 0.0) - s["update_time"]
                            for s in steps])
    else:
        out["other"] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="W1")
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--vocab", type=int, help="pad the vocabulary to this size (default: W1 chars / W2 32000)")
    ap.add_argument("--prompt-len", type=int, help="prompt length in tokens (characters)")
    ap.add_argument("--completion", type=int, help="max completion tokens")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--warmup", type=int, help="steps left out of the median")
    ap.add_argument("--only", choices=["graft", "trl"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--graft-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a graft config override on top of the workload's (repeatable); the record is then "
                         "stored under <workload>-custom")
    ap.add_argument("--out", default=str(BENCH / "results" / "vs_trl.json"))
    args = ap.parse_args()
    w = dict(WORKLOADS[args.workload])
    for key in ("hidden", "layers", "vocab", "prompt_len", "completion", "steps", "warmup"):
        if getattr(args, key) is not None:
            w[key] = getattr(args, key)
    num_prompts, num_generations = 8, 8
    batch = num_prompts * num_generations

    from graft.models.hf_testing import build_tiny_hf_model

    work = Path(tempfile.mkdtemp(prefix=f"vs_trl_{args.workload}_"))
    try:  # the model and data (about 313 MB for W2) go when the run ends, however it ends
        model_dir = work / "model"
        build_tiny_hf_model(model_dir, arch="qwen2", seed=0, vocab_chars=W1_CHARS if w["vocab"] is None else None,
                            hidden_size=w["hidden"], num_layers=w["layers"], num_heads=max(w["hidden"] // 64, 1),
                            num_kv_heads=max(w["hidden"] // 128, 1), intermediate_size=4 * w["hidden"],
                            vocab_size=w["vocab"], max_positions=max(512, 2 * ((w["prompt_len"] or 8) + w["completion"])))
        cfg = json.loads((model_dir / "config.json").read_text())
        n_total = sum(p.numel() for p in __import__("safetensors.torch", fromlist=["load_file"]).load_file(
            str(model_dir / "model.safetensors")).values())
        n_matmul = n_total - cfg["vocab_size"] * cfg["hidden_size"]  # the input embedding is a lookup
        data = work / "data.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(2000, w["prompt_len"])))
        spec = {"model_dir": str(model_dir), "data": str(data), "steps": w["steps"], "num_prompts": num_prompts,
                "num_generations": num_generations, "max_new_tokens": w["completion"], "lr": args.lr,
                "threads": args.threads, "graft_options": GRAFT_OPTIONS[args.workload] + args.graft_set}

        peak = matmul_flops(args.threads)
        load_before = os.getloadavg()
        print(f"{args.workload}: {w}; params {n_total:,} ({n_matmul:,} in matmuls); "
              f"matmul peak {peak / 1e9:.1f} GFLOP/s on {args.threads} threads; load {load_before}", flush=True)
        sides = ["graft", "trl"] if args.only is None else [args.only]
        raw, summary = {}, {}
        for side in sides:
            python = sys.executable if side == "graft" else str(ensure_trl_venv())
            raw[side] = run_side(side, python, spec, work)
            summary[side] = summarise(raw[side], w["warmup"], n_matmul, peak, batch)
        load_after = os.getloadavg()
        peak_after = matmul_flops(args.threads)
        if peak_after > peak:  # a shared machine: the less disturbed of the two measurements is nearer the truth
            for side in summary:
                summary[side] = summarise(raw[side], w["warmup"], n_matmul, peak_after, batch)
            print(f"matmul peak re-measured after the runs: {peak_after / 1e9:.1f} GFLOP/s (used)")
        peak_before, peak = peak, max(peak, peak_after)

        record = {
            "workload": args.workload, "shape": w, "num_prompts": num_prompts, "num_generations": num_generations,
            "params_total": n_total, "params_in_matmuls": n_matmul, "matmul_flops_per_s": peak,
            "matmul_flops_per_s_before_after": [peak_before, peak_after],
            "threads": args.threads, "lr": args.lr, "load_avg_before": load_before, "load_avg_after": load_after,
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "machine": machine_facts(args.threads),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "sides": summary,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        existing = json.loads(out.read_text()) if out.exists() else {}
        key = args.workload if not args.graft_set and all(
            getattr(args, k) is None for k in ("hidden", "layers", "vocab", "prompt_len", "completion")) \
            else f"{args.workload}-custom"
        prev = existing.get(key, {})
        if args.only and prev.get("sides"):  # one side re-measured: keep the other side's last numbers
            record["sides"] = {**prev["sides"], **summary}
            record["other_side_measured_at"] = prev.get("date_utc")
        record["ratios"] = ratios(record["sides"])
        print_table(record)
        existing[key] = record
        out.write_text(json.dumps(existing, indent=2) + "\n")
        print(f"wrote {out} [{key}]")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ratios(sides: dict) -> dict:
    """graft / TRL for each measure (step time < 1 and the rest > 1 favour graft, RSS < 1 too)."""
    if not all(s in sides and "error" not in sides[s] for s in ("graft", "trl")):
        return {}
    g, t = sides["graft"], sides["trl"]
    return {
        "step_time_graft_over_trl": g["step_time_median_s"] / t["step_time_median_s"],
        "speedup_trl_time_over_graft_time": t["step_time_median_s"] / g["step_time_median_s"],
        "tokens_per_s_graft_over_trl": g["completion_tokens_per_s"] / t["completion_tokens_per_s"],
        "peak_rss_graft_over_trl": g["peak_rss_mb"] / t["peak_rss_mb"],
        "flop_fraction_graft_over_trl": g["fraction_of_matmul_peak"] / t["fraction_of_matmul_peak"],
    }


def print_table(rec: dict) -> None:
    sides = rec["sides"]
    rows = [("step time, median (s)", "step_time_median_s", "{:.3f}"),
            ("completion tokens / step", "completion_tokens_per_step", "{:.0f}"),
            ("completion tokens / s", "completion_tokens_per_s", "{:.1f}"),
            ("peak RSS (MB)", "peak_rss_mb", "{:.0f}"),
            ("achieved GFLOP/s", "achieved_flops_per_s", "{:.2f}"),
            ("share of matmul peak", "fraction_of_matmul_peak", "{:.1%}")]
    names = [s for s in ("graft", "trl") if s in sides]
    print(f"\n{rec['workload']}  (matmul peak {rec['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s, "
          f"load {rec['load_avg_before'][0]:.2f} -> {rec['load_avg_after'][0]:.2f})")
    if sides.get("graft", {}).get("lean"):
        print("graft's update settings (resolved): " + ", ".join(f"{k}={v}" for k, v in sides["graft"]["lean"].items()))
    print(f"{'':28}" + "".join(f"{n:>14}" for n in names) + ("   graft/TRL" if len(names) == 2 else ""))
    for label, key, fmt in rows:
        cells, vals = [], []
        for n in names:
            v = sides[n].get(key)
            if v is not None and key == "achieved_flops_per_s":
                v = v / 1e9
            vals.append(v)
            cells.append(f"{fmt.format(v):>14}" if v is not None else f"{'error':>14}")
        ratio = f"   {vals[0] / vals[1]:.2f}" if len(vals) == 2 and None not in vals and vals[1] else ""
        print(f"{label:28}" + "".join(cells) + ratio)
    # per phase (bench/README.md, "Per-phase table"): medians over the measured steps of each
    # step's own value; "-": not timed on that side
    print("per phase, median s (each step's own value; the rows add up to a step, their medians need not):")
    labels = {"prefill": "prefill", "decode": "decode", "verify": "verify / reward", "frozen": "frozen log-probs",
              "forward": "forward (loss)", "backward": "backward", "optimizer": "optimizer", "other": "other"}
    for phase in PHASES:
        cells, vals = [], []
        for n in names:
            v = (sides[n].get("phase_medians_s") or {}).get(phase)
            vals.append(v)
            cells.append(f"{v:>14.3f}" if v is not None else f"{'-':>14}")
        ratio = f"   {vals[0] / vals[1]:.2f}" if len(vals) == 2 and None not in vals and vals[1] > 0 else ""
        print(f"  {labels[phase]:26}" + "".join(cells) + ratio)
    print()


if __name__ == "__main__":
    main()
