"""Time to target: from one SFT-warmed checkpoint, wall time until held-out accuracy reaches a target,
graft's recipe vs TRL's GRPOTrainer.

    python bench/time_to_target.py                        # the measurement (make bench-ttt)
    python bench/time_to_target.py --threads 1 --rl-steps 4 --save-every 2 --eval-examples 50   # smoke

Run it with graft's interpreter (``.venv/bin/python`` or ``PYTHONPATH=src``); TRL runs in its own
environment (``--trl-python``, default ``bench/.venv-trl/bin/python``, made by vs_trl.py when
missing). Four jobs, each its own process (see bench/README.md, "Time to target"):

1. the start (cached under ``bench/.cache/ttt/<key>``, the key a hash of the model shape and the
   resolved SFT config): a Qwen2 model with W1's character vocabulary
   (``build_tiny_hf_model``), SFT-ed by graft on the task's demonstrations for ``--sft-steps``
   steps, saved in HF format (weights + tokenizer), which both sides load;
2. graft RL from it with its recipe (``--graft-config``, default the quickstart's GRPO recipe);
3. TRL GRPOTrainer from it, same prompts (the task's training split), the same reward rule and
   the same core hyperparameters (prompts x generations per step, temperature, max tokens, lr,
   clip, no KL);
4. one evaluator (graft's greedy held-out evaluation, ``--eval-examples`` test examples) scores
   the start and every checkpoint both sides saved (every ``--save-every`` steps, with the
   training wall time at that point, saving excluded).

Time to target = the training wall time at the first checkpoint whose accuracy >= ``--target``.
Writes ``bench/results/time_to_target.json`` (``--out``) and prints the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache" / "ttt"
QUICKSTART = ROOT / "src" / "graft" / "configs" / "quickstart.yaml"
W1_CHARS = "0123456789+-=A: ,\n"  # the arithmetic task's whole alphabet (prompts and demonstrations)


# ---------------------------------------------------------------- pure functions (tests/test_bench_ttt.py)


def repo_relative(path) -> str | None:
    """``path`` as results record it: relative to the repo root (POSIX), or, outside the repo, only
    its name under ``<outside the repo>/``; never an absolute path of the machine that ran it
    (``tests/test_committed_paths.py`` scans the committed results)."""
    if path is None:
        return None
    absolute = Path(os.path.abspath(path))  # not resolve(): a venv's python is a symlink out of the repo
    for root in (ROOT, ROOT.resolve()):
        if absolute.is_relative_to(root):
            return absolute.relative_to(root).as_posix()
    return f"<outside the repo>/{absolute.name}"


PATH_OPTIONS = ("config", "graft_config", "trl_python", "out")


def recorded_options(args) -> dict:
    """The command-line options as the result records them: the path-valued ones repo-relative."""
    return {k: repo_relative(v) if k in PATH_OPTIONS else v for k, v in vars(args).items()}


def accuracy_curve(points: list[dict], scores: dict[str, dict], start: str) -> list[dict]:
    """``[{"step", "wall_s", "accuracy", "sampled_accuracy"}]``: the start (step 0, wall 0, scored as
    ``scores[start]``) and each saved checkpoint (``points``: ``{"step", "wall_s", "path"}``, scored
    as ``scores[path]``), in step order."""
    rows = [{"step": 0, "wall_s": 0.0, "path": start}, *sorted(points, key=lambda p: p["step"])]
    return [{"step": p["step"], "wall_s": p["wall_s"], "accuracy": scores[p["path"]]["accuracy"],
             "sampled_accuracy": scores[p["path"]]["sampled_accuracy"]} for p in rows]


def time_to_target(curve: list[dict], target: float, metric: str = "accuracy") -> dict:
    """The first point of ``curve`` (in step order) whose ``metric`` >= ``target``.

    Returns ``{"reached": True, "wall_s", "step"}``, or ``{"reached": False, "wall_s": None,
    "budget_wall_s": the last point's wall}`` when no point reaches it (time to target > budget).
    Accuracy is only known at checkpoints, so the time is an upper bound of the true crossing,
    by at most one checkpoint interval."""
    for point in sorted(curve, key=lambda p: p["step"]):
        if point[metric] >= target:
            return {"reached": True, "wall_s": point["wall_s"], "step": point["step"]}
    last = max(curve, key=lambda p: p["step"])
    return {"reached": False, "wall_s": None, "step": None, "budget_wall_s": last["wall_s"]}


def speedup(graft: dict, trl: dict) -> dict:
    """TRL's time to target / graft's (> 1: graft faster), from two ``time_to_target`` results.

    A side that did not reach the target contributes its budget as a bound: graft reached and TRL
    not -> the ratio is a lower bound (``"bound": ">"``); TRL reached and graft not -> an upper
    bound (``"<"``); neither -> unknown (``ratio`` None). A side that starts at the target
    (time 0) gives no finite ratio either."""
    if graft["reached"] and trl["reached"]:
        if graft["wall_s"] == 0 or trl["wall_s"] == 0:
            return {"ratio": None, "bound": "start already at target"}
        return {"ratio": trl["wall_s"] / graft["wall_s"], "bound": "="}
    if graft["reached"] and graft["wall_s"] > 0:
        return {"ratio": trl["budget_wall_s"] / graft["wall_s"], "bound": ">"}
    if trl["reached"] and trl["wall_s"] > 0:
        return {"ratio": trl["wall_s"] / graft["budget_wall_s"], "bound": "<"}
    return {"ratio": None, "bound": "neither reached the target"}


def summarise_speedups(speedups: list[dict]) -> dict:
    """The median and spread over seeds of ``speedup`` results.

    Each seed's true ratio is its ``ratio`` ("="), at least it (">") or at most it ("<"). The median
    of the listed ratios is then exact when every seed is exact, a lower bound of the true median
    when the seeds mix only "=" and ">" (raising any listed value cannot lower the median), an upper
    bound for "=" and "<"; with both kinds of bound, or a seed without a ratio, it is unknown."""
    ratios = [s["ratio"] for s in speedups]
    bounds = {s["bound"] for s in speedups}
    out = {"ratios": ratios, "bounds": [s["bound"] for s in speedups], "median": None, "bound": None,
           "min": None, "max": None}
    if not ratios or any(r is None for r in ratios):
        out["bound"] = "a seed has no ratio"
        return out
    if bounds <= {"="}:
        out["bound"] = "="
    elif bounds <= {"=", ">"}:
        out["bound"] = ">"
    elif bounds <= {"=", "<"}:
        out["bound"] = "<"
    else:
        out["bound"] = "seeds bound it from both sides"
        return out
    out.update(median=statistics.median(ratios), min=min(ratios), max=max(ratios))
    return out


# ---------------------------------------------------------------- the jobs


def parse_args(argv=None) -> argparse.Namespace:
    class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        pass

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=Formatter)
    ap.add_argument("--target", type=float, default=0.85, help="held-out greedy accuracy to reach")
    ap.add_argument("--sampled-target", type=float, default=0.70,
                    help="also: held-out sampled accuracy (temperature eval.temperature=1) to reach")
    ap.add_argument("--hidden", type=int, default=128, help="Qwen2 hidden size (heads of width 32, half as many KV heads, MLP 4x)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--sft-steps", type=int, default=300,
                    help="graft SFT steps that make the start (300 on the quickstart's imperfect teacher: "
                         "0.46-0.49 greedy, seeds 0-2)")
    ap.add_argument("--sft-lr", type=float, help="SFT peak lr (default: the task config's sft.lr)")
    ap.add_argument("--config", default=str(QUICKSTART),
                    help="the task (and SFT settings) come from this graft config (default: quickstart)")
    ap.add_argument("--graft-config", default=str(QUICKSTART),
                    help="graft's RL recipe (a graft YAML; its task/eval sections are overridden by --config's)")
    ap.add_argument("--graft-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra --set overrides for graft's RL run (repeatable)")
    ap.add_argument("--rl-steps", type=int, default=40, help="RL steps (the budget) of each side")
    ap.add_argument("--num-prompts", type=int, default=32)
    ap.add_argument("--num-generations", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=3e-5,
                    help="RL learning rate, constant, both sides (graft's default rl.lr; 1e-4 climbs with dips)")
    ap.add_argument("--clip-low", type=float, default=0.2)
    ap.add_argument("--clip-high", type=float, default=0.28)
    ap.add_argument("--save-every", type=int, default=2, help="checkpoint (and score) every N RL steps")
    ap.add_argument("--eval-examples", type=int, default=500, help="held-out examples scored per checkpoint")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", help="comma list of seeds, each a whole measurement (its own start, both "
                                    "sides); the median and spread of the ratio over them (default: --seed)")
    ap.add_argument("--only", choices=["graft", "trl"], help="run one side (the other's curve is left out)")
    ap.add_argument("--trl-python", default=os.environ.get("GRAFT_TRL_PYTHON"),
                    help="TRL's interpreter (default: $GRAFT_TRL_PYTHON, else bench/.venv-trl, made when missing)")
    ap.add_argument("--keep", action="store_true", help="keep the RL checkpoints (default: deleted after scoring)")
    ap.add_argument("--out", default=str(BENCH / "results" / "time_to_target.json"))
    args = ap.parse_args(argv)
    try:
        args.seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    except ValueError:
        ap.error(f"--seeds must be a comma list of integers, got {args.seeds!r}")
    for name in ("rl_steps", "save_every", "eval_examples", "sft_steps", "threads", "num_prompts",
                 "num_generations", "max_new_tokens", "hidden", "layers"):
        if getattr(args, name) < (0 if name == "sft_steps" else 1):
            ap.error(f"--{name.replace('_', '-')} must be >= {0 if name == 'sft_steps' else 1}")
    for name in ("target", "sampled_target"):
        if not 0 < getattr(args, name) <= 1:
            ap.error(f"--{name.replace('_', '-')} must be in (0, 1]")
    return args


def task_overrides(args) -> list[str]:
    """Settings every job shares: threads, seed, no progress bar, the evaluator's example count."""
    return [f"threads={args.threads}", f"seed={args.seed}", "log.progress=false",
            f"eval.num_examples={args.eval_examples}"]


def sft_overrides(args, base_model: Path) -> list[str]:
    """The start's SFT run (its own end-of-run evaluation uses one example: the start is scored by
    the common evaluator, and the cache key must not depend on ``--eval-examples``)."""
    out = [f"threads={args.threads}", f"seed={args.seed}", "log.progress=false", "eval.num_examples=1",
           f"model.path={base_model}", f"sft.steps={args.sft_steps}", "rl.steps=0",
           f"checkpoint.every={max(args.sft_steps, 1)}", "checkpoint.keep=1"]
    return out + ([f"sft.lr={args.sft_lr}"] if args.sft_lr is not None else [])


def rl_overrides(args, start: Path) -> list[str]:
    """graft's RL run: the core hyperparameters shared with TRL on top of the recipe's own settings.
    The loop's own evaluations (before the first and after the last step, outside the timed wall)
    use one example: the curve comes from the common evaluator."""
    return [*task_overrides(args), f"model.path={start}", "sft.steps=0", f"rl.steps={args.rl_steps}",
            f"rl.num_prompts={args.num_prompts}", f"rl.num_generations={args.num_generations}",
            f"rl.max_new_tokens={args.max_new_tokens}", f"rl.temperature={args.temperature}",
            f"rl.lr={args.lr}", "rl.warmup_steps=0", f"algo.clip_low={args.clip_low}",
            f"algo.clip_high={args.clip_high}", "algo.kl=none", "algo.kl_coef=0.0",
            "eval.num_examples=1", f"checkpoint.every={args.rl_steps + 1}", "checkpoint.keep=1",
            *args.graft_set]


def model_shape(args) -> dict:
    heads = max(args.hidden // 32, 1)
    return {"arch": "qwen2", "hidden_size": args.hidden, "num_layers": args.layers, "num_heads": heads,
            "num_kv_heads": max(heads // 2, 1), "intermediate_size": 4 * args.hidden, "seed": args.seed,
            "vocab_chars": W1_CHARS}


def make_start(args, python: str) -> tuple[Path, dict]:
    """The shared SFT-warmed HF checkpoint, built once per (model shape, resolved SFT config)."""
    from graft.config import dump_config, load_config
    from graft.models.hf_testing import build_tiny_hf_model

    shape = model_shape(args)
    resolved = load_config(args.config, sft_overrides(args, Path("BASE")))
    key_text = json.dumps({"shape": shape, "sft_config": dump_config(resolved)}, sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    home = CACHE / key
    start, info_path = home / "start", home / "start.json"
    if info_path.is_file() and (start / "config.json").is_file():
        print(f"[start] cached: {start}", flush=True)
        return start, json.loads(info_path.read_text())
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    base = build_tiny_hf_model(home / "base", **shape)
    from vs_trl import run_side

    t = time.perf_counter()
    spec = {"mode": "sft", "config": args.config, "overrides": sft_overrides(args, base),
            "out_model": str(start), "threads": args.threads}
    result = run_side("graft", python, spec, home, job="sft")
    if "error" in result:
        raise SystemExit("SFT of the start failed (see above)")
    info = {"key": key, "shape": shape, "sft_steps": args.sft_steps, "sft_seconds": time.perf_counter() - t,
            "sft_summary": result["summary"], "sft_config": dump_config(resolved)}
    info_path.write_text(json.dumps(info, indent=2))
    shutil.rmtree(home / "sft_run", ignore_errors=True)  # the SFT run's own checkpoints
    return start, info


def write_train_prompts(args, path: Path) -> int:
    """The task's training split as JSONL rows {"prompt", "answer"}: TRL's dataset."""
    from graft.config import load_config
    from graft.train.loop import build_task

    task = build_task(load_config(args.config, task_overrides(args)).task)
    rows = [{"prompt": ex.prompt, "answer": ex.answer} for ex in task.train_examples()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def trl_python(args) -> str:
    if args.trl_python:
        return args.trl_python
    from vs_trl import ensure_trl_venv

    return str(ensure_trl_venv())


def main(argv=None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(BENCH))
    per_seed = {}
    for seed in args.seeds:
        print(f"==== seed {seed} ====", flush=True)
        per_seed[str(seed)] = measure(argparse.Namespace(**{**vars(args), "seed": seed}))
    record = {"seeds": args.seeds, "options": recorded_options(args), "per_seed": per_seed}
    if all("speedup_trl_over_graft" in r for r in per_seed.values()):
        record["summary"] = {
            "greedy": summarise_speedups([r["speedup_trl_over_graft"] for r in per_seed.values()]),
            "sampled": summarise_speedups([r["speedup_trl_over_graft_sampled"] for r in per_seed.values()])}
        print_summary(record)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {repo_relative(out)}")


def print_summary(record: dict) -> None:
    print(f"over seeds {record['seeds']}: TRL time to target / graft's")
    for kind, sm in record["summary"].items():
        listed = ", ".join(f"{b}{r:.2f}" if r is not None else "none" for r, b in zip(sm["ratios"], sm["bounds"]))
        middle = (f"median {sm['bound']} {sm['median']:.2f}x (min {sm['min']:.2f}, max {sm['max']:.2f})"
                  if sm["median"] is not None else sm["bound"])
        print(f"  {kind:8} {middle}; per seed {listed}")


def measure(args) -> dict:
    """One seed's measurement: its start, both sides' RL, the common evaluator; returns the record."""
    from vs_trl import run_side

    python = sys.executable
    load_before = os.getloadavg()
    start, start_info = make_start(args, python)
    work = Path(tempfile.mkdtemp(prefix="ttt_", dir=CACHE))
    data = work / "train.jsonl"
    n_train = write_train_prompts(args, data)
    core = {"steps": args.rl_steps, "num_prompts": args.num_prompts, "num_generations": args.num_generations,
            "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "lr": args.lr,
            "clip_low": args.clip_low, "clip_high": args.clip_high, "save_every": args.save_every,
            "threads": args.threads, "seed": args.seed}
    sides = ["graft", "trl"] if args.only is None else [args.only]
    runs = {}
    for side in sides:
        spec = dict(core, mode="rl_checkpoints", model_dir=str(start), data=str(data),
                    checkpoint_dir=str(work / f"{side}_checkpoints"))
        if side == "graft":
            spec.update(config=args.graft_config, overrides=[*rl_overrides(args, start)])
            spec["overrides"] += _task_section(args)
        runs[side] = run_side(side, python if side == "graft" else trl_python(args), spec, work, job=f"{side}_rl")
        runs[side]["load_avg_after"] = os.getloadavg()
    checkpoints = [str(start)] + [p["path"] for r in runs.values() if "error" not in r for p in r["checkpoints"]]
    print(f"[score] {len(checkpoints)} checkpoints x {args.eval_examples} held-out examples ...", flush=True)
    t = time.perf_counter()
    scored = run_side("graft", python, {"mode": "score", "config": args.config, "overrides": task_overrides(args),
                                        "num_examples": args.eval_examples, "checkpoints": checkpoints,
                                        "threads": args.threads}, work, job="score")
    if "error" in scored:
        raise SystemExit("scoring failed (see above)")
    score_seconds = time.perf_counter() - t
    scores = scored["scores"]
    record = {
        "seed": args.seed, "target": args.target, "sampled_target": args.sampled_target, "model": start_info["shape"],
        "start": {"cache_key": start_info["key"], "sft_steps": args.sft_steps,
                  "accuracy": scores[str(start)]["accuracy"],
                  "sampled_accuracy": scores[str(start)]["sampled_accuracy"], "sft_seconds": start_info["sft_seconds"]},
        "train_prompts": n_train, "eval_examples": args.eval_examples, "score_seconds": score_seconds,
        "load_avg_before": load_before, "load_avg_after": os.getloadavg(), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "sides": {},
    }
    for side, run in runs.items():
        if "error" in run:
            record["sides"][side] = {"error": run["error"]}
            continue
        curve = accuracy_curve(run["checkpoints"], scores, str(start))
        record["sides"][side] = {
            "time_to_target": time_to_target(curve, args.target),
            "time_to_sampled_target": time_to_target(curve, args.sampled_target, "sampled_accuracy"),
            "curve": curve,
            "train_wall_s": run["steps"][-1]["wall_s"] if run["steps"] else 0.0,
            "process_seconds": run["process_seconds"], "peak_rss_mb": run["peak_rss_mb"],
            "load_avg_before": run["load_avg_before"], "load_avg_after": run["load_avg_after"],
            "steps": run["steps"], **({"versions": run["versions"]} if "versions" in run else {}),
        }
    if "time_to_target" in record["sides"].get("graft", {}):
        cfg_path = Path(args.graft_config)
        record["sides"]["graft"]["recipe"] = {
            "config": repo_relative(cfg_path),
            "extra_overrides": args.graft_set}
    g, r = record["sides"].get("graft", {}), record["sides"].get("trl", {})
    if "time_to_target" in g and "time_to_target" in r:
        record["speedup_trl_over_graft"] = speedup(g["time_to_target"], r["time_to_target"])
        record["speedup_trl_over_graft_sampled"] = speedup(g["time_to_sampled_target"], r["time_to_sampled_target"])
    print_table(record)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"checkpoints kept in {work}")
    return record


def _task_section(args) -> list[str]:
    """graft's RL run takes the task from ``--config`` (the recipe file may name another task)."""
    from graft.config import load_config

    task = load_config(args.config, []).task
    return [f"task.{k}={json.dumps(v)}" for k, v in task.model_dump(mode="json").items()
            if not isinstance(v, dict) or v]


def print_table(rec: dict) -> None:
    sides = rec["sides"]
    print(f"\nstart: greedy {rec['start']['accuracy']:.3f}, sampled {rec['start']['sampled_accuracy']:.3f} "
          f"after {rec['start']['sft_steps']} SFT steps ({rec['eval_examples']} held-out examples)")
    for label, key, metric, target, ratio in (
            ("greedy", "time_to_target", "accuracy", rec["target"], "speedup_trl_over_graft"),
            ("sampled", "time_to_sampled_target", "sampled_accuracy", rec["sampled_target"],
             "speedup_trl_over_graft_sampled")):
        print(f"time to held-out {label} accuracy >= {target}")
        for name, s in sides.items():
            if "error" in s:
                print(f"  {name}: FAILED")
                continue
            ttt = s[key]
            when = (f"{ttt['wall_s']:.1f} s (step {ttt['step']})" if ttt["reached"]
                    else f"> {ttt['budget_wall_s']:.1f} s (not reached in {s['curve'][-1]['step']} steps)")
            print(f"  {name:6} {when}; train wall {s['train_wall_s']:.1f} s; peak RSS {s['peak_rss_mb']:.0f} MB")
            print("         " + ", ".join(f"{p['step']}:{p[metric]:.3f}@{p['wall_s']:.0f}s" for p in s["curve"]))
        sp = rec.get(ratio)
        if sp:
            print("  TRL time / graft time: "
                  + (f"{sp['bound']} {sp['ratio']:.2f}x" if sp["ratio"] is not None else sp["bound"]))
    print()


if __name__ == "__main__":
    main()
