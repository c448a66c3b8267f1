"""Length shaping on verbose demonstrations: shorter completions at equal held-out accuracy?

    PYTHONPATH=src .venv/bin/python bench/length.py [--methods none,laser,grpo_lambda,s_grpo]
                                                    [--seeds 0,1,2,3,4] [--steps 80]
                                                    [--style verbose|hedging|recheck]

Issue 14's length claim: on a task with verbose demonstrations, length shaping (LASER,
GRPO-lambda, S-GRPO; ``graft.rewards.shaping``) cuts completion length by >= 30% while held-out
accuracy stays within the 95% CI of RL without shaping.

1. One SFT warm start (seed 0) on the arithmetic task's verbose demonstrations
   (``task.demo_style=verbose``: the problem restated and a digit/carry check after every column,
   each written with probability 3/4; 2.5x the plain form on average, and greedy decoding after
   SFT writes the fullest one), small built-in model (d_model 64, 2 layers, 2 heads), ``threads=1``.
   ``--style hedging``: the hedging teacher instead (``task.demo_style=hedging``: the same plain
   steps with content-free filler phrases, each written with probability 3/4; the same 2.5x).
   ``--style recheck``: the overthinking teacher (``task.demo_style=recheck``: the plain solution, then
   up to two verbatim repeats after its answer, each with probability 3/4; the verifier reads the
   first answer, so the repeats cannot change a reward; 3x the plain form).
2. For each method (``METHODS``: no shaping, then each length shaping) and seed: RL from that
   checkpoint (``model.path``, ``sft.steps=0``), the same RL steps, prompts, generations and
   learning rate for every method; only ``shaping.*`` differs.
3. After RL, on the first 200 held-out examples (the run's own final evaluation,
   ``eval/final.json``): greedy accuracy, mean greedy completion length (tokens = characters + the
   end-of-sequence token) and sampled accuracy (one completion each at T=1).
4. ``summarize``: IQM over seeds with a 95% stratified-bootstrap CI (``graft.eval.stats``), the
   length ratio to no shaping (IQM / IQM), and whether each method's accuracy IQM lies inside no
   shaping's accuracy CI. Prints the table, writes bench/results/length.json (paths relative to
   the repository). A re-run reuses finished runs under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REPS = 20_000  # bootstrap replicates
BOOT_SEED = 0  # bootstrap RNG
SHORTER = 0.30  # the claim: at least this much shorter ...
BASELINE = "none"  # ... than RL without shaping, at an accuracy inside its CI
TOL = 1e-9  # rounding allowance of that CI test
TRACE_EVERY = 5  # steps between the points of a run's RL trace in the results file

# every run: model size, task, evaluation
BASE = [
    "log.progress=false", "threads=1", "checkpoint.every=100000", "checkpoint.keep=1",
    "model.d_model=64", "model.n_layers=2", "model.n_heads=2",
    "task.name=arithmetic", "task.difficulty=2", "task.demo_style=verbose",  # --style replaces it
    "task.num_train=10000", "task.num_test=200",
    "eval.num_examples=200", "eval.max_new_tokens=96",
]
SFT = ["sft.steps=2000", "sft.batch_size=32", "sft.lr=0.002", "sft.warmup_steps=20", "rl.steps=0"]
RL = ["sft.steps=0", "rl.num_prompts=16", "rl.num_generations=8", "rl.max_new_tokens=96", "rl.lr=0.0001"]

# method -> its shaping settings (on top of BASE + RL); chosen from the plain-demo length and the
# pilots in bench/README.md ("Length shaping on verbose demonstrations"), never tuned on the
# no-shaping baseline
METHODS: dict[str, list[str]] = {
    "none": ["shaping.length=none"],
    "laser": ["shaping.length=laser", "shaping.target_len=44", "shaping.coef=0.5"],
    "grpo_lambda": ["shaping.length=grpo_lambda", "shaping.coef=0.5", "shaping.top_fraction=0.2"],
    "s_grpo": ["shaping.length=s_grpo", "shaping.decay=0.9"],
}


def _rel(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (what results files store)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return Path(path).name


def style_base(style: str) -> list[str]:
    """BASE with the teacher's ``task.demo_style`` (in the same place: finished runs compare their lists)."""
    return [f"task.demo_style={style}" if o.startswith("task.demo_style=") else o for o in BASE]


def warm_start(work: Path, extra: list[str], style: str = "verbose") -> Path:
    """The SFT checkpoint's model directory (trained once, reused by later runs)."""
    from graft.config import build_config
    from graft.train.checkpoint import list_checkpoints
    from graft.train.loop import prepare, train

    run = work / "sft"
    if not list_checkpoints(run / "checkpoints"):
        train(prepare(build_config({}, style_base(style) + SFT + extra + ["seed=0", "name=sft"])), run)
    return list_checkpoints(run / "checkpoints")[-1] / "model"


def run_one(method: str, seed: int, model: Path, work: Path, steps: int, extra: list[str],
            style: str = "verbose") -> dict:
    """RL from the warm start with ``method``'s shaping; its final and starting evaluations."""
    from graft.config import build_config
    from graft.train.logging import read_metrics
    from graft.train.loop import prepare, train

    out = work / f"{method}-s{seed}"
    overrides = style_base(style) + RL + METHODS[method] + extra + [
        f"model.path={model}", f"rl.steps={steps}", f"seed={seed}", f"name={method}"]
    asked = work / f"{method}-s{seed}.overrides.json"  # what the finished run was trained with
    if not (out / "summary.json").is_file():
        train(prepare(build_config({}, overrides)), out)
        asked.write_text(json.dumps(overrides))
    elif not asked.is_file() or json.loads(asked.read_text()) != overrides:
        raise SystemExit(f"{out} was trained with other settings than these; use another --work")
    final = json.loads((out / "eval" / "final.json").read_text())
    start = json.loads((out / "eval" / "after_sft.json").read_text())
    rows = read_metrics(out / "metrics.jsonl")
    return {
        "method": method, "seed": seed, "steps": len(rows),
        "accuracy": final["accuracy"], "sampled_accuracy": final["sampled_accuracy"],
        "length": final["completion_len"],
        "start_accuracy": start["accuracy"], "start_length": start["completion_len"],
        "wall_seconds": json.loads((out / "summary.json").read_text())["wall_seconds"],
        # along RL, every TRACE_EVERY-th step from the first: the sampled rollouts' mean length and
        # accuracy, the shaped reward's mean
        "trace": [{"step": i + 1, "len": round(r["rollout/completion_len"], 2), "acc": round(r["rollout/accuracy"], 3),
                   "shaped": round(r["batch/reward_mean"], 3)} for i, r in enumerate(rows) if i % TRACE_EVERY == 0],
    }


def _iqm_ci(values: list[float], rng: np.random.Generator, reps: int) -> dict:
    from graft.eval.stats import iqm_over_seeds

    point, lo, hi = iqm_over_seeds(values, rng=rng, reps=reps)
    return {"iqm": point, "ci95": [lo, hi], "values": list(values)}


def summarize(runs: dict[str, list[dict]], baseline: str = BASELINE, reps: int = REPS,
              seed: int = BOOT_SEED, shorter: float = SHORTER) -> dict:
    """Per method: accuracy, sampled accuracy and length as IQM [95% CI] over its runs; the length
    ratio IQM / baseline's IQM; whether its accuracy IQM lies in the baseline's accuracy CI
    (closed interval, widened by ``TOL`` against rounding: accuracies are multiples of 1/200, and a
    trimmed mean of equal values need not equal them exactly); and the claim: ratio <= 1 - ``shorter`` with the accuracy inside that CI.

    ``runs``: method -> list of {"accuracy", "sampled_accuracy", "length"} (one per seed)."""
    rng = np.random.default_rng(seed)
    table = {}
    for method, rs in runs.items():
        table[method] = {key: _iqm_ci([r[key] for r in rs], rng, reps)
                         for key in ("accuracy", "sampled_accuracy", "length")}
        table[method]["seeds"] = [r.get("seed") for r in rs]
    base = table[baseline]
    lo, hi = base["accuracy"]["ci95"]
    for row in table.values():
        row["length_ratio"] = row["length"]["iqm"] / base["length"]["iqm"]
        row["accuracy_in_baseline_ci"] = bool(lo - TOL <= row["accuracy"]["iqm"] <= hi + TOL)
        row["claim_holds"] = bool(row["length_ratio"] <= 1 - shorter and row["accuracy_in_baseline_ci"])
    return table


def markdown(table: dict, baseline: str = BASELINE) -> str:
    def ci(d: dict, spec: str) -> str:
        return f"{d['iqm']:{spec}} [{d['ci95'][0]:{spec}}, {d['ci95'][1]:{spec}}]"

    head = (f"| method | greedy acc. IQM [95% CI] | length IQM [95% CI] | length / {baseline} | "
            f"acc. inside {baseline}'s CI | sampled acc. IQM [95% CI] | >= {SHORTER:.0%} shorter at equal acc. |")
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    for method, r in table.items():
        lines.append(f"| {method} | {ci(r['accuracy'], '.3f')} | {ci(r['length'], '.1f')} | "
                     f"{r['length_ratio']:.2f} | {'yes' if r['accuracy_in_baseline_ci'] else 'no'} | "
                     f"{ci(r['sampled_accuracy'], '.3f')} | "
                     f"{'-' if method == baseline else ('yes' if r['claim_holds'] else 'no')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--steps", type=int, default=80, help="RL steps of every run")
    ap.add_argument("--style", default="verbose", choices=["verbose", "hedging", "recheck"],
                    help="the teacher that writes the demonstrations (task.demo_style)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-length"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config override for every RL run (pilots)")
    ap.add_argument("--sft-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config override for the SFT warm start (pilots)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "length.json"))
    args = ap.parse_args()
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or BASELINE not in methods:
        ap.error(f"--methods: unknown {unknown}, or {BASELINE!r} (the baseline) missing; choose from "
                 f"{', '.join(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(args.work)
    t0 = time.perf_counter()
    model = warm_start(work, args.sft_set, args.style)
    print(f"warm start: {_rel(model)} [{time.perf_counter() - t0:.0f} s]", flush=True)
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for method in methods:
        for seed in seeds:
            r = run_one(method, seed, model, work, args.steps, args.set, args.style)
            runs[method].append(r)
            print(f"{method:>12} seed {seed}: acc {r['start_accuracy']:.3f} -> {r['accuracy']:.3f}, "
                  f"length {r['start_length']:.1f} -> {r['length']:.1f}, sampled acc {r['sampled_accuracy']:.3f} "
                  f"({r['wall_seconds']:.0f} s) [{time.perf_counter() - t0:.0f} s]", flush=True)
    table = summarize(runs)
    print("\n" + markdown(table))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": f"bench/length.py --style {args.style} --methods {args.methods} --seeds {args.seeds} --steps {args.steps}"
                   f" --work {_rel(work)} --out {_rel(out)}"
                   + "".join(f" --set {s}" for s in args.set) + "".join(f" --sft-set {s}" for s in args.sft_set),
        "base": style_base(args.style), "sft": SFT + args.sft_set, "rl": RL + args.set, "methods": {m: METHODS[m] for m in methods},
        "warm_start": _rel(model), "bootstrap_reps": REPS, "table": table,
        "runs": [r for rs in runs.values() for r in rs],
        "wall_seconds": time.perf_counter() - t0,
    }, indent=1))
    print(f"wrote {_rel(out)} [{time.perf_counter() - t0:.0f} s]")


if __name__ == "__main__":
    main()
