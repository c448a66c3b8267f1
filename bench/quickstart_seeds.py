"""The quickstart's RL gain, seed by seed: runs the packaged quickstart config once per seed.

Each seed is the whole ``graft quickstart`` job (SFT, greedy + sampled eval on the 500 held-out
test prompts, GRPO, the same eval again), in this process, one seed after the other. Prints one row
per seed and writes ``bench/results/quickstart_seeds.json``: per seed ``accuracy_after_sft``,
``accuracy_after_rl``, their difference ``gain`` (greedy), the sampled (T=1) accuracies and the
wall time, plus the mean and the minimum gain. The acceptance criterion of the quickstart is a
greedy gain of at least 0.05 on every seed, with the whole job under about 300 s on 2 quiet cores.

    PYTHONPATH=src python bench/quickstart_seeds.py --seeds 0,1,2            # threads=2, as shipped
    PYTHONPATH=src python bench/quickstart_seeds.py --seeds 0 --set rl.steps=60

Results depend on the thread count (float rounding), so compare runs with the same ``threads``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from graft.cli import packaged_config
from graft.config import Config, load_config
from graft.train.loop import prepare, train


def parse_seeds(text: str) -> list[int]:
    """"0,1,2" or "0-4" -> a list of seeds."""
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def run_seed(seed: int, overrides: list[str], out_root: Path) -> tuple[dict, Config]:
    """One whole quickstart job for ``seed``; returns (the row for the JSON, the resolved config)."""
    cfg = load_config(packaged_config("quickstart"), [f"seed={seed}", "log.progress=false", *overrides])
    summary = train(prepare(cfg), out_root / f"seed{seed}")
    return {**summary_row(seed, summary), "eval_examples": summary["eval_examples"]}, cfg


def summary_row(seed: int, summary: dict) -> dict:
    """A run's ``summary.json`` as a bench row: accuracies after SFT and after RL (greedy, sampled),
    the greedy gain and the wall time."""
    return {
        "seed": seed,
        "accuracy_after_sft": summary["accuracy_after_sft"],
        "accuracy_after_rl": summary["accuracy_after_rl"],
        "gain": round(summary["accuracy_after_rl"] - summary["accuracy_after_sft"], 6),
        "sampled_accuracy_after_sft": summary["sampled_accuracy_after_sft"],
        "sampled_accuracy_after_rl": summary["sampled_accuracy_after_rl"],
        "wall_seconds": round(summary["wall_seconds"], 1),
    }


def _cpu() -> dict:
    """The CPU's model, extensions and count (``vs_trl.parse_cpuinfo``; empty without /proc/cpuinfo)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from vs_trl import parse_cpuinfo  # bench/vs_trl.py: the machine facts its records keep

    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="e.g. 0,1,2 or 0-4 (default 0,1,2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a quickstart config key (the JSON records the overrides)")
    parser.add_argument("--out", default="bench/results/quickstart_seeds.json")
    parser.add_argument("--runs", default=None, help="where the runs go (default: a temporary directory)")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    args = parser.parse_args()

    rows, cfg = [], None
    with tempfile.TemporaryDirectory() as tmp:
        out_root = Path(args.runs) if args.runs else Path(tmp)
        for seed in parse_seeds(args.seeds):
            row, cfg = run_seed(seed, args.set, out_root)
            rows.append(row)
            print(f"seed {seed}: greedy {row['accuracy_after_sft']:.3f} -> {row['accuracy_after_rl']:.3f} "
                  f"(gain {row['gain']:+.3f}), sampled {row['sampled_accuracy_after_sft']:.3f} -> "
                  f"{row['sampled_accuracy_after_rl']:.3f}, wall {row['wall_seconds']:.0f} s", flush=True)
    gains = [r["gain"] for r in rows]
    result = {
        "config": "src/graft/configs/quickstart.yaml",
        "overrides": args.set,
        "threads": cfg.threads,
        "sft_steps": cfg.sft.steps,
        "rl_steps": cfg.rl.steps,
        "rl_lr": cfg.rl.lr,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "cpu": _cpu(),  # the quickstart's numbers move with the CPU kind's float rounding (README)
        "note": args.note,
        "runs": rows,
        "mean_gain": round(statistics.mean(gains), 4),
        "min_gain": round(min(gains), 4),
    }
    print(f"mean gain {result['mean_gain']:+.3f}, min gain {result['min_gain']:+.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
