"""SFT only vs RL only vs every mixer schedule, at one compute budget, several seeds.

    .venv/bin/python bench/hybrid/run.py [--seeds 0,1,2,3,4] [--workers 2] [--budget 2.0e6]

1. Task: two-digit arithmetic with demonstrations on a seeded 10% of the training prompts
   (``task.demo_fraction``): imitation alone runs out of data, reinforcement alone has to find
   its own way. Model: a small built-in transformer (d=64, 2 layers), ``threads=1`` per process.
2. Warm start (shared by every run): a short SFT on the demonstrations (seed 0).
3. Each method (``METHODS``: SFT only, RL only, and one entry per ``MIX_SCHEDULES`` name, built
   from the registry so a new schedule is benchmarked too) trains from the warm start until its
   runs have spent ``--budget`` compute units (``perf/compute`` summed over steps: forward-token
   equivalents, forward-only tokens x 1 + forward-and-backward tokens x 3, proportional to
   FLOPs; see ``graft.train.steps.compute_metrics``). The budget is enforced from the progress
   callback, which also evaluates the live policy (greedy, held-out) at every eighth of it; that
   evaluation is not counted as compute nor as training wall time.
4. At the end of each run: greedy accuracy and pass@k (k = 1, 4, 8 from n = 8 samples at T = 1)
   on the held-out examples. Results go to ``<work>/results/<method>-s<seed>.json`` as they come
   (a re-run skips the runs already there).
5. ``report.py`` turns them into bench/results/hybrid.json, bench/results/hybrid_curves.png and
   the table of bench/hybrid/README.md (IQM and 95% stratified-bootstrap CIs over seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# every run: the task, the model size and the evaluation (overrides of the default config)
BASE = [
    "log.progress=false", "threads=1", "checkpoint.every=100000", "checkpoint.keep=1",
    "model.d_model=64", "model.n_layers=2", "model.n_heads=2",
    "task.name=arithmetic", "task.difficulty=2", "task.num_train=10000", "task.num_test=200",
    "task.demo_fraction=0.1",
    "sft.batch_size=32", "sft.lr=0.003", "sft.warmup_steps=0",
    "rl.num_prompts=8", "rl.num_generations=8", "rl.max_new_tokens=32", "rl.lr=0.00003",
    "eval.num_examples=200", "eval.max_new_tokens=32",
    "mix.sft_lr=0.001",
]
WARM = ["name=warm", "seed=0", "sft.steps=400", "sft.warmup_steps=20", "rl.steps=0"]
LONG = 100_000  # step counts that the budget, not the config, ends

# the schedules' settings in this bench; anything not set here is the config default
SCHEDULE_SETTINGS = {
    "sft_then_rl": ["sft.steps=300"],  # ~0.8M of SFT (where SFT alone levels off in pilots), then RL
    "interleaved": ["mix.buffer_size=8"],
    "adaptive": [],
    "hints": ["mix.hint_steps=150"],  # hints fade out over about the first half of the RL steps
    "inject": [],
    "weighted": ["mix.sft_weight=1.0", "mix.sft_weight_end=0.1"],
}


def methods() -> dict[str, list[str]]:
    """Method name -> config overrides (on top of BASE, the warm start's weights and the seed)."""
    from graft.mix.schedules import MIX_SCHEDULES

    out = {
        "sft_only": ["mix.schedule=sft_then_rl", f"sft.steps={LONG}", "rl.steps=0"],
        "rl_only": ["mix.schedule=sft_then_rl", "sft.steps=0", f"rl.steps={LONG}"],
    }
    for name in sorted(MIX_SCHEDULES):
        sets = SCHEDULE_SETTINGS.get(name, [])
        steps = [] if any(s.startswith("sft.steps=") for s in sets) else ["sft.steps=0"]
        out[name] = [f"mix.schedule={name}", *steps, f"rl.steps={LONG}", *sets]
    return out


try:
    from graft.eval.metrics import pass_at_k
except ImportError:  # FALLBACK until issue 6 (graft.eval.metrics) is merged: same name and formula

    def pass_at_k(n: int, c: int, k: int) -> float:
        """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i)."""
        if n - c < k:
            return 1.0
        return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


class BudgetSpent(Exception):
    """Raised from the progress callback once a run has spent its compute budget."""


def warm_start(work: Path) -> Path:
    from graft.config import build_config
    from graft.train.checkpoint import list_checkpoints
    from graft.train.loop import prepare, train

    run = work / "warm"
    if not list_checkpoints(run / "checkpoints"):
        train(prepare(build_config({}, BASE + WARM)), run)
    return list_checkpoints(run / "checkpoints")[-1] / "model"


def pass_at_ks(policy, task, cfg, n: int, ks: list[int], seed: int) -> dict:
    """pass@k on the held-out examples from n samples per prompt at temperature 1 (Chen et al. 2021)."""
    import torch

    from graft.rollout.sampler import sample

    examples = task.test_examples()[: cfg.eval.num_examples]
    gen = torch.Generator().manual_seed(10_007 + seed)
    policy.module.eval()
    counts = []
    for start in range(0, len(examples), 50):
        chunk = examples[start : start + 50]
        prompts = [policy.tokenizer.encode(ex.prompt) for ex in chunk for _ in range(n)]
        flat = sample(policy, prompts, max_new_tokens=cfg.eval.max_new_tokens, temperature=1.0,
                      generator=gen)
        for i, ex in enumerate(chunk):
            counts.append(sum(task.score(ex, ro.text).correct for ro in flat[i * n : (i + 1) * n]))
    policy.module.train()
    return {f"pass@{k}": sum(pass_at_k(n, c, k) for c in counts) / len(counts) for k in ks}


def run_one(method: str, seed: int, overrides: list[str], warm: str, budget: float, points: int,
            work: str) -> dict:
    """Train one (method, seed) from the warm start until ``budget`` compute units are spent."""
    from graft.config import build_config
    from graft.eval.evaluate import evaluate
    from graft.train.loop import prepare, train

    cfg = build_config({}, BASE + overrides + [f"model.path={warm}", f"seed={seed}", f"name={method}"])
    setup = prepare(cfg)
    policy, task = setup.policy, setup.task  # the loop trains this very object (no resume here)
    test = task.test_examples()[: cfg.eval.num_examples]

    def greedy() -> float:
        return evaluate(policy, task, test, max_new_tokens=cfg.eval.max_new_tokens,
                        batch_size=cfg.eval.batch_size)["accuracy"]

    curve = [{"compute": 0.0, "wall": 0.0, "step": 0, "accuracy": greedy()}]
    spent, wall_eval, t0 = 0.0, 0.0, time.perf_counter()
    shares: list[float] = []

    def progress(done: int, total: int, metrics: dict) -> None:
        nonlocal spent, wall_eval
        spent += metrics["perf/compute"]
        shares.append(metrics["mix/sft_share"])
        if spent >= budget * len(curve) / points or spent >= budget:
            t_eval = time.perf_counter()
            acc = greedy()
            wall_eval += time.perf_counter() - t_eval
            curve.append({"compute": spent, "wall": time.perf_counter() - t0 - wall_eval, "step": done,
                          "accuracy": acc})
        if spent >= budget:
            raise BudgetSpent

    run_dir = Path(work) / "runs" / f"{method}-s{seed}"
    try:
        train(setup, run_dir, progress=progress)
        reached = False  # the config's steps ran out first
    except BudgetSpent:
        reached = True
    return {
        "method": method, "seed": seed, "budget": budget, "budget_reached": reached,
        "compute": spent, "wall_seconds": curve[-1]["wall"], "steps": curve[-1]["step"],
        "final_accuracy": curve[-1]["accuracy"], "start_accuracy": curve[0]["accuracy"],
        "mean_sft_share": sum(shares) / max(1, len(shares)),
        **pass_at_ks(policy, task, cfg, n=8, ks=[1, 4, 8], seed=seed),
        "curve": curve,
    }


def _job(args: tuple) -> dict:
    method, seed, overrides, warm, budget, points, work = args
    out = Path(work) / "results" / f"{method}-s{seed}.json"
    result = run_one(method, seed, overrides, warm, budget, points, work)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--methods", default=None, help="comma-separated subset (default: all)")
    ap.add_argument("--budget", type=float, default=2.0e6, help="compute units per run")
    ap.add_argument("--points", type=int, default=8, help="evaluations along each run")
    ap.add_argument("--workers", type=int, default=2, help="parallel processes (threads=1 each)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-hybrid"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config override for every run but the warm start (pilots)")
    ap.add_argument("--report", action="store_true", help="then write the results files (report.py)")
    args = ap.parse_args()
    work = Path(args.work)
    (work / "results").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    warm = str(warm_start(work))
    table = methods()
    chosen = args.methods.split(",") if args.methods else list(table)
    jobs = [(m, int(s), table[m] + args.set, warm, args.budget, args.points, str(work))
            for s in args.seeds.split(",") for m in chosen
            if not (work / "results" / f"{m}-s{int(s)}.json").is_file()]
    print(f"warm start ready after {time.perf_counter() - t0:.0f} s; {len(jobs)} runs to do", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(_job, job) for job in jobs]
        for fut in as_completed(futures):
            r = fut.result()
            print(f"{r['method']:>12} seed {r['seed']}: {r['start_accuracy']:.3f} -> {r['final_accuracy']:.3f}"
                  f"  pass@8 {r['pass@8']:.3f}  {r['steps']} steps, {r['wall_seconds']:.0f} s"
                  f"{'' if r['budget_reached'] else '  (budget NOT reached)'}  [{time.perf_counter() - t0:.0f} s]",
                  flush=True)
    (work / "bench_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    if args.report:
        from report import write_report  # bench/hybrid/report.py, next to this file

        write_report(work)


if __name__ == "__main__":
    main()
