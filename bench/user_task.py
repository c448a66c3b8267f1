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
IQM of the gain over seeds with a 95% bootstrap CI and how many seeds gained. With ``--control``
each seed also runs with RL's compute spent on more SFT instead (``CONTROL_EXTRA`` more steps, no RL), and the JSON pairs
RL's end with it seed by seed: did RL beat simply imitating longer?

    PYTHONPATH=src python bench/user_task.py                     # both tasks, both profiles, seeds 0-4
    PYTHONPATH=src python bench/user_task.py --control           # + RL's compute spent on SFT instead
    PYTHONPATH=src python bench/user_task.py --tasks sort --profiles defaults --seeds 0
    PYTHONPATH=src python bench/user_task.py --control --pass-k 16   # + pass@1/4/16 after SFT and at the end
    PYTHONPATH=src python bench/user_task.py --replot RESULT.json --plot curves.png   # draw only

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
if str(ROOT / "bench") not in sys.path:  # the sibling bench script, when run as a file
    sys.path.insert(0, str(ROOT / "bench"))
from quickstart_seeds import _cpu, parse_seeds, summary_row

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
SFT_STEPS = 300  # both profiles' SFT length (sft.steps); --sft-steps sets another for every run
# --control: the same job with RL's compute spent on SFT instead: CONTROL_EXTRA more SFT steps (the
# schedule stretched over them, as a user would lengthen SFT) and no RL. 300 SFT steps cost 1.0-1.5x
# what RL cost in these runs (perf/compute, fwd + 3 x train tokens: RL's 60 / 100 steps = 199-262 SFT
# steps' worth on seed 0), so the control gets at least RL's budget.
CONTROL_EXTRA = 300


def control_overrides(sft_steps: int) -> list[str]:
    return [f"sft.steps={sft_steps + CONTROL_EXTRA}", "rl.steps=0"]


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


def run_dir_of(work: Path, task: str, profile: str, seed: int, sft_steps: int, control: bool) -> Path:
    """work/TASK/PROFILE[+sftN]/seedS: ``+sftN`` names a run's SFT length when it is not the default
    (the control's always: N = sft_steps + CONTROL_EXTRA)."""
    steps = sft_steps + CONTROL_EXTRA if control else sft_steps
    name = f"{profile}+sft{steps}" if control or steps != SFT_STEPS else profile
    return work / task / name / f"seed{seed}"


def pass_ks(k: int) -> list[int]:
    """The k of ``--pass-k K``: 1, 4, 16 up to K, and K."""
    return sorted({*(v for v in (1, 4, 16) if v < k), k})


def _pass_at_k(run_dir: Path, sft_steps: int, control: bool, k: int) -> dict:
    """``graft eval --k`` (the CLI, as a user runs it) on the checkpoint at the end of SFT and the
    last one (``--pass-k`` keeps only those two): held-out pass@k, maj@k and sampled accuracy at
    ``eval.temperature``. Reuses an evaluation already written for these k."""
    from graft.cli import main as graft_main
    from graft.train.checkpoint import list_checkpoints

    ks = pass_ks(k)
    found = {int(c.name.removeprefix("step_")): c for c in list_checkpoints(run_dir / "checkpoints")}
    wanted = {"end": max(found)} if control else {"after_sft": sft_steps, "after_rl": max(found)}
    out = {}
    for label, step in wanted.items():
        if step not in found:
            raise SystemExit(f"{run_dir}: no checkpoint of step {step} for pass@k (was it run without --pass-k?)")
        path = run_dir / "eval" / f"step_{step}.json"
        result = json.loads(path.read_text()) if path.exists() else {}
        if result.get("k") != ks:
            if graft_main(["eval", str(found[step]), "--k", ",".join(map(str, ks))]) != 0:
                raise SystemExit(f"{run_dir}: graft eval failed on {found[step]}")
            result = json.loads(path.read_text())
        out[label] = {key: round(result[key], 4) for key in
                      ["accuracy", "sampled_accuracy", *(f"pass@{v}" for v in ks), *(f"maj@{v}" for v in ks)]}
    return out


def run_one(task: str, profile: str, seed: int, data: Path, work: Path, extra: list[str],
            sft_steps: int = SFT_STEPS, control: bool = False, curve_every: int = 0, pass_k: int = 0) -> dict:
    run_dir = run_dir_of(work, task, profile, seed, sft_steps, control)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        sets = control_overrides(sft_steps) if control else [f"sft.steps={sft_steps}"]
        if control and curve_every:
            sets.append(f"eval.every={curve_every}")  # SFT only's held-out curve: has it plateaued?
        if pass_k:
            sets.append("checkpoint.every=1000000")  # checkpoints at the end of SFT and at the end only
        cfg = config_for(profile, data, seed, run_dir, [*extra, *sets])
        train(prepare(cfg), run_dir)
    return {
        **summary_row(seed, json.loads(summary_path.read_text())),
        "rl_signals": {} if control else _phase_means(run_dir),
        **({"curve": _curve(run_dir)} if control and curve_every else {}),
        **({"pass_at_k": _pass_at_k(run_dir, sft_steps, control, pass_k)} if pass_k else {}),
    }


def _curve(run_dir: Path) -> list[list[float]]:
    """[step, held-out greedy accuracy] from the run's periodic evaluations (``eval.every``)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [[r["step"], r["eval/accuracy"]] for r in rows if "eval/accuracy" in r]


def _iqm(values: list[float]) -> dict:
    iqm, lo, hi = iqm_over_seeds(values, rng=np.random.default_rng(0), reps=20_000)
    return {"iqm": round(iqm, 4), "ci95": [round(lo, 4), round(hi, 4)]}


def summarise(runs: list[dict], control: list[dict] | None = None, sft_steps: int = SFT_STEPS) -> dict:
    """Gain over the SFT checkpoint per seed; with the control, RL's end against more SFT's, paired."""
    gains = [r["gain"] for r in runs]
    out = {"gained_on": sum(g > 0 for g in gains), "seeds": len(gains), "min_gain": min(gains)}
    if len(gains) > 1:
        out["gain_iqm"] = _iqm(gains)
        out["accuracy_after_rl_iqm"] = _iqm([r["accuracy_after_rl"] for r in runs])
    if control:
        by_seed = {c["seed"]: c["accuracy_after_rl"] for c in control}
        diffs = [round(r["accuracy_after_rl"] - by_seed[r["seed"]], 6) for r in runs]
        out["control"] = {"overrides": control_overrides(sft_steps), "runs": control, "rl_minus_control": diffs,
                          "rl_ahead_on": sum(d > 0 for d in diffs)}
        if len(diffs) > 1:
            out["control"]["accuracy_iqm"] = _iqm([c["accuracy_after_rl"] for c in control])
            out["control"]["rl_minus_control_iqm"] = _iqm(diffs)
    if len(runs) > 1 and "pass_at_k" in runs[0]:  # IQM over seeds of each pass@k / maj@k, per point
        points = {label: [r["pass_at_k"][label] for r in runs] for label in ("after_sft", "after_rl")}
        if control and "pass_at_k" in control[0]:
            points["control"] = [c["pass_at_k"]["end"] for c in control]
        out["pass_at_k_iqm"] = {label: {key: _iqm([row[key] for row in rows]) for key in rows[0]}
                                for label, rows in points.items()}
    return out


def plot(result: dict, path: Path) -> None:
    """One panel per task: each SFT-only control's held-out curve (needs ``--curve-every``), and per
    seed the RL run's accuracy after SFT (at its SFT length) and after RL (at the control's length:
    RL's compute is at most that of the extra SFT steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = result["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    n_sft = result["sft_steps"]
    for ax, (task, entry) in zip(axes[0], tasks.items()):
        for (profile, p), colour in zip(entry["profiles"].items(), ("C0", "C1")):
            for i, c in enumerate(p.get("control", {}).get("runs", [])):
                if c.get("curve"):
                    x, y = zip(*c["curve"])
                    ax.plot([v + 1 for v in x], y, color=colour, alpha=0.5, lw=1,
                            label=f"{profile}: SFT only" if i == 0 else None)
            for i, r in enumerate(p["runs"]):
                ax.plot([n_sft, n_sft + CONTROL_EXTRA], [r["accuracy_after_sft"], r["accuracy_after_rl"]],
                        color=colour, marker="o", ms=3, ls="--", lw=0.8,
                        label=f"{profile}: SFT {n_sft} then RL" if i == 0 else None)
        ax.set_title(f"{task} (teacher right on {entry['teacher_accuracy']:.0%})")
        ax.set_xlabel("SFT steps (RL: drawn at its compute in SFT steps, at most)", fontsize=8)
        ax.set_ylabel("held-out greedy accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--seeds", default="0-4", help="e.g. 0,1,2 or 0-4")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="one more override for every run (recorded; not part of the reported check)")
    parser.add_argument("--work", default="runs/bench-user-task")
    parser.add_argument("--out", default="bench/results/user_task.json")
    parser.add_argument("--control", action="store_true",
                        help="also run each seed with RL's compute spent on SFT instead (CONTROL_EXTRA)")
    parser.add_argument("--sft-steps", type=int, default=SFT_STEPS,
                        help=f"SFT steps before RL, every profile (default {SFT_STEPS}, both profiles' own)")
    parser.add_argument("--curve-every", type=int, default=0,
                        help="with --control: evaluate the SFT-only runs every N steps (their curve)")
    parser.add_argument("--plot", default=None, help="also draw the curves and RL end points to this PNG")
    parser.add_argument("--pass-k", type=int, default=0, metavar="K",
                        help="also evaluate held-out pass@k / maj@k (k = 1, 4, 16 up to K) at the end of SFT "
                             "and at the end of each run, with graft eval")
    parser.add_argument("--replot", default=None, metavar="JSON",
                        help="with --plot: draw a finished result's curves from its JSON; runs nothing")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    if args.pass_k < 0:
        parser.error(f"--pass-k: must be at least 1 (0: off), got {args.pass_k}")
    if args.replot:
        if not args.plot:
            parser.error("--replot needs --plot PNG")
        try:
            result = json.loads(Path(args.replot).read_text())
            plot(result, Path(args.plot))
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"--replot {args.replot}: not a result of this bench ({type(exc).__name__}: {exc})")
        print(f"wrote {args.plot}")
        return

    work = Path(args.work)
    tasks, profiles = args.tasks.split(","), args.profiles.split(",")
    for name in tasks:
        if name not in TASKS:
            parser.error(f"--tasks: unknown task {name!r} (known: {', '.join(TASKS)})")
    for name in profiles:
        if name not in PROFILES:
            parser.error(f"--profiles: unknown profile {name!r} (known: {', '.join(PROFILES)})")
    result = {"overrides": args.set, "sft_steps": args.sft_steps, "cpu": _cpu(), "note": args.note, "tasks": {}}
    for task in tasks:
        data, teacher = write_data(task, work)
        entry = {"teacher_accuracy": round(teacher, 4), "rows": ROWS, "profiles": {}}
        for profile in profiles:
            runs = []
            for seed in parse_seeds(args.seeds):
                row = run_one(task, profile, seed, data, work, args.set, args.sft_steps, pass_k=args.pass_k)
                runs.append(row)
                sig = row["rl_signals"]
                print(f"{task} {profile} seed {seed}: greedy {row['accuracy_after_sft']:.3f} -> "
                      f"{row['accuracy_after_rl']:.3f} ({row['gain']:+.3f}), sampled "
                      f"{row['sampled_accuracy_after_sft']:.3f} -> {row['sampled_accuracy_after_rl']:.3f}; "
                      f"zero-var {sig['rollout/zero_var_frac']['first10']:.2f} -> "
                      f"{sig['rollout/zero_var_frac']['last10']:.2f}, entropy "
                      f"{sig['rollout/entropy']['first10']:.3f}; {row['wall_seconds']:.0f} s", flush=True)
                if args.pass_k:
                    pk = row["pass_at_k"]
                    print(f"  pass@{args.pass_k} {pk['after_sft'][f'pass@{args.pass_k}']:.3f} -> "
                          f"{pk['after_rl'][f'pass@{args.pass_k}']:.3f}", flush=True)
            control = None
            if args.control:
                control = [run_one(task, profile, seed, data, work, args.set, args.sft_steps, control=True,
                                   curve_every=args.curve_every, pass_k=args.pass_k)
                           for seed in parse_seeds(args.seeds)]
                for c in control:
                    print(f"{task} {profile} SFT only ({args.sft_steps + CONTROL_EXTRA} steps) seed {c['seed']}: greedy {c['accuracy_after_rl']:.3f}, "
                          f"sampled {c['sampled_accuracy_after_rl']:.3f}; {c['wall_seconds']:.0f} s", flush=True)
            entry["profiles"][profile] = {"runs": runs, **summarise(runs, control, args.sft_steps)}
        result["tasks"][task] = entry
    for task, entry in result["tasks"].items():
        for profile, p in entry["profiles"].items():
            ci = p.get("gain_iqm")
            ci_text = f", IQM {ci['iqm']:+.3f} [{ci['ci95'][0]:+.3f}, {ci['ci95'][1]:+.3f}]" if ci else ""
            print(f"{task} {profile}: gained on {p['gained_on']}/{p['seeds']} seeds{ci_text}")
            if "control" in p:
                c = p["control"]
                d = c.get("rl_minus_control_iqm")
                d_text = f", IQM {d['iqm']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d else ""
                print(f"  against {args.sft_steps + CONTROL_EXTRA} SFT steps: RL ahead on {c['rl_ahead_on']}/{p['seeds']} seeds{d_text}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    if args.plot:
        plot(result, Path(args.plot))
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
