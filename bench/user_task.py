"""A user's own task, graft's default settings: does RL after SFT gain held-out accuracy?

Issue 14 asks that a task graft was never tuned on, run as a new user would run it, gains from RL
after SFT rather than loses. This bench writes two such tasks as a user would bring them: a JSONL
file of prompts, true answers and demonstrations from an imperfect teacher (``task.name: jsonl``,
exact match on the completion's last line; docs/tasks.md), on skills none of graft's benchmarks
trains (arithmetic and countdown are what the defaults were chosen on):

    reverse   write a 4-7 letter word backwards; the teacher swaps two neighbouring letters with
              probability 0.15 x (length - 3): more slips on longer words, 62% right overall
    sort      sort 5-8 digits; when digits repeat, the teacher drops the repeats (``set()``'s bug)
              with probability 0.5: 56% right overall

Each (task, profile, seed) is one whole ``graft train`` job in this process: SFT, held-out eval,
RL, held-out eval. Profiles: ``quickstart`` (the packaged quickstart config, only the task
replaced) and ``defaults`` (a config naming nothing but the task: graft's own defaults). The
settings were fixed before any run; none was changed after one (bench/README.md "A user's own
task"). Prints one row per run and writes a JSON with, per run, greedy and sampled held-out
accuracy after SFT and after RL, the gain, and the RL phase's first- and last-ten-step means of
``rollout/entropy``, ``rollout/zero_var_frac`` and ``rollout/accuracy``; per (task, profile) the
IQM of the gain over seeds with a 95% bootstrap CI and how many seeds gained.

    PYTHONPATH=src python bench/user_task.py                     # both tasks, both profiles, seeds 0-4
    PYTHONPATH=src python bench/user_task.py --tasks sort --profiles defaults --seeds 0

Finished runs under ``--work`` are reused (their ``summary.json``); the data files are written
there too, from a fixed seed, so every run of a task sees the same rows.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

import numpy as np

from graft.cli import packaged_config
from graft.config import load_config
from graft.eval.stats import iqm_over_seeds
from graft.train.loop import prepare, train

ROOT = Path(__file__).resolve().parent.parent
ROWS = 6000  # per task; the jsonl task holds out task.num_test (500) of them
LETTERS = "abcdefghij"


def _swap_neighbours(word: str, rng: random.Random) -> str:
    """The reverse teacher's slip: two neighbouring, different letters exchanged."""
    spots = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
    if not spots:
        return word
    i = rng.choice(spots)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def reverse_rows(rng: random.Random) -> list[dict]:
    seen, rows = set(), []
    while len(rows) < ROWS:
        word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(4, 7)))
        if word in seen:
            continue
        seen.add(word)
        answer = word[::-1]
        demo = _swap_neighbours(answer, rng) if rng.random() < 0.15 * (len(word) - 3) else answer
        rows.append({"prompt": f"reverse {word}=", "answer": answer, "demonstration": demo})
    return rows


def sort_rows(rng: random.Random) -> list[dict]:
    seen, rows = set(), []
    while len(rows) < ROWS:
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 8)))
        if digits in seen:
            continue
        seen.add(digits)
        answer = "".join(sorted(digits))
        repeats = len(set(digits)) < len(digits)
        demo = "".join(sorted(set(digits))) if repeats and rng.random() < 0.5 else answer
        rows.append({"prompt": f"sort {digits}=", "answer": answer, "demonstration": demo})
    return rows


TASKS = {"reverse": reverse_rows, "sort": sort_rows}
PROFILES = ("quickstart", "defaults")


def write_data(task: str, work: Path) -> tuple[Path, float]:
    """The task's JSONL (rows from seed 0, the same for every run) and its teacher's accuracy."""
    rows = TASKS[task](random.Random(0))
    path = work / "data" / f"{task}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path, sum(r["demonstration"] == r["answer"] for r in rows) / len(rows)


def config_for(profile: str, data: Path, seed: int, run_dir: Path, extra: list[str]):
    task_keys = [f"task.path={data}", "task.name=jsonl", f"seed={seed}", "log.progress=false"]
    if profile == "quickstart":
        return load_config(packaged_config("quickstart"), ["task.teacher_error=0", *task_keys, *extra])
    # a user's config naming only the task: everything else is graft's default
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    user_cfg = run_dir.parent / f"{run_dir.name}.yaml"
    user_cfg.write_text(f"name: user_{data.stem}\n")
    return load_config(user_cfg, [*task_keys, *extra])


def _phase_means(run_dir: Path) -> dict:
    """First and last ten RL steps' means of the exploration signals (metrics.jsonl)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rl = [r for r in rows if "rollout/zero_var_frac" in r]  # the RL steps' rows
    out = {}
    for key in ("rollout/entropy", "rollout/zero_var_frac", "rollout/accuracy"):
        vals = [r[key] for r in rl if key in r]
        if vals:
            out[key] = {"first10": round(statistics.mean(vals[:10]), 4), "last10": round(statistics.mean(vals[-10:]), 4)}
    return out


def run_one(task: str, profile: str, seed: int, data: Path, work: Path, extra: list[str]) -> dict:
    run_dir = work / task / profile / f"seed{seed}"
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        cfg = config_for(profile, data, seed, run_dir, extra)
        train(prepare(cfg), run_dir)
    s = json.loads(summary_path.read_text())
    return {
        "seed": seed,
        "accuracy_after_sft": s["accuracy_after_sft"],
        "accuracy_after_rl": s["accuracy_after_rl"],
        "gain": round(s["accuracy_after_rl"] - s["accuracy_after_sft"], 6),
        "sampled_accuracy_after_sft": s["sampled_accuracy_after_sft"],
        "sampled_accuracy_after_rl": s["sampled_accuracy_after_rl"],
        "wall_seconds": round(s["wall_seconds"], 1),
        "rl_signals": _phase_means(run_dir),
    }


def summarise(runs: list[dict]) -> dict:
    gains = [r["gain"] for r in runs]
    out = {"gained_on": sum(g > 0 for g in gains), "seeds": len(gains), "min_gain": min(gains)}
    if len(gains) > 1:
        iqm, lo, hi = iqm_over_seeds(gains, rng=np.random.default_rng(0), reps=20_000)
        out["gain_iqm"] = {"iqm": round(iqm, 4), "ci95": [round(lo, 4), round(hi, 4)]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--seeds", default="0-4", help="e.g. 0,1,2 or 0-4")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="one more override for every run (recorded; not part of the reported check)")
    parser.add_argument("--work", default="runs/bench-user-task")
    parser.add_argument("--out", default="bench/results/user_task.json")
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "bench"))
    from quickstart_seeds import _cpu, parse_seeds

    work = Path(args.work)
    tasks, profiles = args.tasks.split(","), args.profiles.split(",")
    for name in tasks:
        if name not in TASKS:
            parser.error(f"--tasks: unknown task {name!r} (known: {', '.join(TASKS)})")
    for name in profiles:
        if name not in PROFILES:
            parser.error(f"--profiles: unknown profile {name!r} (known: {', '.join(PROFILES)})")
    result = {"overrides": args.set, "cpu": _cpu(), "note": args.note, "tasks": {}}
    for task in tasks:
        data, teacher = write_data(task, work)
        entry = {"teacher_accuracy": round(teacher, 4), "rows": ROWS, "profiles": {}}
        for profile in profiles:
            runs = []
            for seed in parse_seeds(args.seeds):
                row = run_one(task, profile, seed, data, work, args.set)
                runs.append(row)
                sig = row["rl_signals"]
                print(f"{task} {profile} seed {seed}: greedy {row['accuracy_after_sft']:.3f} -> "
                      f"{row['accuracy_after_rl']:.3f} ({row['gain']:+.3f}), sampled "
                      f"{row['sampled_accuracy_after_sft']:.3f} -> {row['sampled_accuracy_after_rl']:.3f}; "
                      f"zero-var {sig['rollout/zero_var_frac']['first10']:.2f} -> "
                      f"{sig['rollout/zero_var_frac']['last10']:.2f}, entropy "
                      f"{sig['rollout/entropy']['first10']:.3f}; {row['wall_seconds']:.0f} s", flush=True)
            entry["profiles"][profile] = {"runs": runs, **summarise(runs)}
        result["tasks"][task] = entry
    for task, entry in result["tasks"].items():
        for profile, p in entry["profiles"].items():
            ci = p.get("gain_iqm")
            ci_text = f", IQM {ci['iqm']:+.3f} [{ci['ci95'][0]:+.3f}, {ci['ci95'][1]:+.3f}]" if ci else ""
            print(f"{task} {profile}: gained on {p['gained_on']}/{p['seeds']} seeds{ci_text}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
