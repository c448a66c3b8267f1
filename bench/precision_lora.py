"""Memory and step time per model.precision, and LoRA vs full fine-tuning, side by side (issue 13).

    PYTHONPATH=src python bench/precision_lora.py                  # both tables, one run each setting
    PYTHONPATH=src python bench/precision_lora.py --only lora --hidden 256 --layers 2

Builds one Qwen2-architecture model locally (random weights, nothing downloaded; default hidden
512, 4 layers, vocabulary 16,384: ~29M parameters) and trains it with graft's loop on the
arithmetic task: ``--sft`` SFT steps then ``--rl`` RL steps (GRPO, KL k3 on, so a reference
exists), on the CPU. Every setting runs in its own fresh process, so its peak resident memory
(``ru_maxrss``) is its own; the table shows that peak *above the process's RSS before the model
was loaded* (imports, the task), the exact bytes of trainable weights + AdamW state + the KL
reference's own weights, and the median SFT and RL step times (the first of each phase left out).
Ratios are against the first row of each table (fp32 / full fine-tuning).

Settings: ``precision`` = fp32, bf16_mixed, bf16 (full fine-tuning); ``lora`` = full fine-tuning
(fp32, the reference a deep copy), LoRA with the reference as a deep copy (what ``start_rl`` did
before LoRA existed; patched in here only), LoRA with the base model under disabled adapters as
the reference (graft's way). The step times share the machine with whatever else runs on it:
the load average at the start is printed with the results.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = {
    "precision": {
        "fp32": [],
        "bf16_mixed": ["model.precision=bf16_mixed"],
        "bf16": ["model.precision=bf16"],
    },
    "lora": {
        "full fine-tuning": [],
        "LoRA r=8, reference = deep copy": ["model.lora.rank=8", "+deepcopy_reference"],
        "LoRA r=8, reference = adapters off": ["model.lora.rank=8"],
    },
}


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def child(args) -> None:
    """One setting in this process: train, then print one JSON line of measurements."""
    import peft  # noqa: F401 -- heavy imports before the baseline: the table is about training memory
    import torch
    import transformers.models.qwen2.modeling_qwen2  # noqa: F401

    from graft.config import build_config
    from graft.train import loop
    from graft.train.logging import read_metrics

    overrides = [o for o in json.loads(args.child) if not o.startswith("+")]
    deepcopy_reference = "+deepcopy_reference" in json.loads(args.child)
    cfg = build_config({}, [
        "log.progress=false", f"threads={args.threads}", f"model.path={args.model}", "task.name=arithmetic",
        "task.difficulty=2", "task.num_train=512", "task.num_test=16", f"sft.steps={args.sft}",
        "sft.batch_size=16", f"rl.steps={args.rl}", "rl.num_prompts=4", "rl.num_generations=4",
        "rl.max_new_tokens=32", "algo.kl=k3", "algo.kl_coef=0.05", "eval.num_examples=8",
        "eval.max_new_tokens=16", "checkpoint.every=1000", *overrides])
    measured: dict = {}
    real_start_rl = loop.start_rl

    def start_rl(policy, cfg):
        learner = real_start_rl(policy, cfg)
        if deepcopy_reference:  # the behaviour before LoRA: a full second copy as the reference
            learner.ref = copy.deepcopy(policy)
            learner.ref.module.requires_grad_(False)
        measured["learner"] = learner
        return learner

    loop.start_rl = start_rl
    task_only = _rss()
    setup = loop.prepare(cfg)
    with tempfile.TemporaryDirectory() as run:
        loop.train(setup, Path(run))
        rows = read_metrics(Path(run) / "metrics.jsonl")
    learner = measured["learner"]
    trainable = [p for p in learner.policy.module.parameters() if p.requires_grad]
    state = [v for s in learner.optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    ref_own = 0
    if learner.ref is not None and learner.ref.module is not learner.policy.module:
        ref_own = _bytes(learner.ref.module.parameters())
    sft = [r["perf/step_time"] for r in rows if "losses/sft" in r][1:]
    rl = [r["perf/step_time"] for r in rows if "losses/policy" in r][1:]
    print(json.dumps({
        "peak_rss_above_baseline_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - task_only) / 2**20,
        "weights_mb": _bytes(learner.policy.module.parameters()) / 2**20,
        "trainable_params": sum(p.numel() for p in trainable),
        "trainable_plus_adam_mb": (_bytes(trainable) + _bytes(state)) / 2**20,
        "reference_copy_mb": ref_own / 2**20,
        "sft_step_s": statistics.median(sft), "rl_step_s": statistics.median(rl),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(SETTINGS))
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=16384)
    parser.add_argument("--sft", type=int, default=6)
    parser.add_argument("--rl", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench/results/precision_lora.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    from graft.models.hf_testing import build_tiny_hf_model

    load = os.getloadavg()[0]
    results: dict = {"load_average_at_start": load, "shape": {
        "hidden": args.hidden, "layers": args.layers, "vocab": args.vocab, "sft_steps": args.sft,
        "rl_steps": args.rl, "threads": args.threads}}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_hf_model(Path(tmp) / "m", arch="qwen2", seed=0, hidden_size=args.hidden,
                                    num_layers=args.layers, num_heads=8, num_kv_heads=4,
                                    intermediate_size=int(args.hidden * 2.75), vocab_size=args.vocab)
        for table, settings in SETTINGS.items():
            if args.only and table != args.only:
                continue
            results[table] = {}
            for name, overrides in settings.items():
                cmd = [sys.executable, __file__, "--child", json.dumps(overrides), "--model", str(model),
                       "--sft", str(args.sft), "--rl", str(args.rl), "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
                results[table][name] = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"  {table}: {name} done", file=sys.stderr)
    print(f"load average at start: {load:.2f} (2 cores, shared)")
    for table in (t for t in SETTINGS if t in results):
        rows = results[table]
        first = next(iter(rows.values()))
        print(f"\n{table}: peak RSS above baseline, exact trainable + AdamW bytes, median step times")
        print(f"{'setting':<36} {'peak MB':>8} {'ratio':>6} {'train+adam MB':>13} {'ref copy MB':>11} "
              f"{'SFT s':>7} {'ratio':>6} {'RL s':>7} {'ratio':>6}")
        for name, r in rows.items():
            print(f"{name:<36} {r['peak_rss_above_baseline_mb']:>8.0f} "
                  f"{r['peak_rss_above_baseline_mb'] / first['peak_rss_above_baseline_mb']:>6.2f} "
                  f"{r['trainable_plus_adam_mb']:>13.1f} {r['reference_copy_mb']:>11.1f} "
                  f"{r['sft_step_s']:>7.3f} {r['sft_step_s'] / first['sft_step_s']:>6.2f} "
                  f"{r['rl_step_s']:>7.3f} {r['rl_step_s'] / first['rl_step_s']:>6.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
