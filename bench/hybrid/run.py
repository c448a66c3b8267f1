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
    "sft.batch_size=32", "sft.lr=0.001", "sft.warmup_steps=20",  # SFT after the warm start (fresh Adam)
    "rl.num_prompts=8", "rl.num_generations=8", "rl.max_new_tokens=32", "rl.lr=0.00003",
    "eval.num_examples=200", "eval.max_new_tokens=32",
    "mix.sft_lr=0.001",
]
WARM = ["name=warm", "seed=0", "sft.steps=400", "sft.lr=0.003", "rl.steps=0"]
# compute of one step here, measured in pilots (perf/compute): schedules that depend on the step
# count (SFT's cosine learning rate, hint and SFT-weight schedules) are sized to end near the budget
SFT_STEP_COMPUTE = 2.65e3  # 32 demonstrations: 2.0M over 756 steps
RL_STEP_COMPUTE = 7.1e3  # 8 prompts x 8 rollouts from the warm start: 2.0M over 282 steps
SFT_THEN_RL_SFT_STEPS = 300  # ~0.8M of SFT (40% of the default budget), then RL


def methods(budget: float) -> dict[str, list[str]]:
    """Method name -> config overrides (on top of BASE, the warm start's weights and the seed).

    The budget ends every run (``BudgetSpent``); step counts are set a little past it (x1.02 for
    SFT, whose cost per step is fixed; x1.25 for RL, whose completions may grow) so that it does.
    """
    from graft.mix.schedules import MIX_SCHEDULES

    sft_steps = math.ceil(1.02 * budget / SFT_STEP_COMPUTE)
    rl_steps = math.ceil(1.25 * budget / RL_STEP_COMPUTE)
    weighted_steps = math.ceil(1.05 * budget / (RL_STEP_COMPUTE + SFT_STEP_COMPUTE))  # RL + SFT each step
    after_sft = math.ceil(1.25 * (budget - SFT_THEN_RL_SFT_STEPS * SFT_STEP_COMPUTE) / RL_STEP_COMPUTE)
    settings = {  # each schedule's settings in this bench; anything not set is the config default
        "sft_then_rl": [f"sft.steps={SFT_THEN_RL_SFT_STEPS}", f"rl.steps={max(1, after_sft)}"],
        "interleaved": ["mix.buffer_size=8"],
        "adaptive": [],
        "hints": [f"mix.hint_steps={max(1, round(budget / RL_STEP_COMPUTE / 2))}"],  # first half
        "inject": [],
        "weighted": [f"rl.steps={weighted_steps}", "mix.sft_weight=1.0", "mix.sft_weight_end=0.1"],
    }
    mixed_steps = max(sft_steps, rl_steps)  # schedules that may pick cheap SFT steps need more steps
    out = {
        "sft_only": ["mix.schedule=sft_then_rl", f"sft.steps={sft_steps}", "rl.steps=0"],
        "rl_only": ["mix.schedule=sft_then_rl", "sft.steps=0", f"rl.steps={rl_steps}"],
    }
    for name in sorted(MIX_SCHEDULES):
        sets = settings.get(name, [])
        defaults = [d for d in ("sft.steps=0", f"rl.steps={mixed_steps}")
                    if not any(s.startswith(d.split("=")[0] + "=") for s in sets)]
        out[name] = [f"mix.schedule={name}", *defaults, *sets]
    return out


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
    """Unbiased pass@k on the held-out examples from n samples per prompt at temperature 1."""
    from graft.eval.evaluate import decode
    from graft.eval.metrics import mean_pass_at_k

    examples = task.test_examples()[: cfg.eval.num_examples]
    graded = decode(policy, task, examples, repeats=n, max_new_tokens=cfg.eval.max_new_tokens,
                    batch_size=cfg.eval.batch_size, temperature=1.0,
                    seed=10_007 + seed)
    correct = [0] * len(examples)
    for g in graded:
        correct[g.index] += g.correct
    return {f"pass@{k}": mean_pass_at_k(correct, n, k) for k in ks}


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
    table = methods(args.budget)
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
