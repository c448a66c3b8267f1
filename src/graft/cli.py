"""graft command line: train | eval | quickstart | compare | seeds | fit | contamination | report | export |
verify | list.

Errors in user input are printed as one line (``error: ...``) with exit code 2;
nothing else is caught, so a bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from graft.errors import GraftError
from graft.rewards import verify_cli

console = Console(stderr=True)


@contextmanager
def _progress_bar(enabled: bool, description: str):
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False,
    ) as bar:
        task_id = bar.add_task(description, total=None, info="")

        def update(done: int, total: int, metrics: dict) -> None:
            if "rollout/accuracy" in metrics:
                info = f"rl  acc {metrics['rollout/accuracy']:.2f}  reward {metrics['rollout/reward_mean']:.2f}"
            else:
                info = f"sft loss {metrics.get('losses/sft', float('nan')):.3f}"
            bar.update(task_id, completed=done, total=total, info=info)

        yield update


def packaged_config(name: str) -> Path:
    path = resources.files("graft") / "configs" / f"{name}.yaml"
    return Path(str(path))


def cmd_train(args) -> int:
    from graft.config import load_config
    from graft.train.loop import prepare, train

    cfg = load_config(args.config, args.set or [])
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    setup = prepare(cfg)
    with _progress_bar(cfg.log.progress, f"train {cfg.name}") as progress:
        summary = train(setup, out, resume=args.resume, progress=progress)
    _print_summary(summary)
    console.print(f"run directory: {out}")
    return 0


def _print_summary(summary: dict) -> None:
    table = Table(title=f"{summary['name']}: held-out accuracy ({summary['eval_examples']} test examples)")
    table.add_column("decoding")
    table.add_column("after SFT", justify="right")
    table.add_column("after RL", justify="right")
    table.add_column("change", justify="right")
    for label, key in (("greedy", "accuracy"), ("sampled", "sampled_accuracy")):
        before, after = summary[f"{key}_after_sft"], summary[f"{key}_after_rl"]
        table.add_row(label, f"{before:.3f}", f"{after:.3f}", f"{after - before:+.3f}")
    Console().print(table)
    console.print(f"wall time: {summary['wall_seconds']:.0f} s")


def cmd_quickstart(args) -> int:
    from graft.config import load_config
    from graft.train.loop import prepare, train

    cfg = load_config(packaged_config("quickstart"), args.set or [])
    out = Path(args.out)
    setup = prepare(cfg)
    if out.exists():
        console.print(f"replacing the previous quickstart run in {out}")
        shutil.rmtree(out)
    with _progress_bar(cfg.log.progress, "quickstart: SFT then GRPO") as progress:
        summary = train(setup, out, progress=progress)
    _print_summary(summary)
    demos = [ex for ex in setup.task.train_examples() if ex.demonstration is not None]
    if demos:  # how good the teacher is: its demonstrations graded by the same verifier as the student
        right = sum(setup.task.score(ex, ex.demonstration).correct for ex in demos)
        console.print(f"the teacher's demonstrations: {right / len(demos):.3f} of {len(demos)} right "
                      f"(task.teacher_error={cfg.task.teacher_error}); SFT imitates them, RL is graded on the truth",
                      soft_wrap=True)
    console.print(f"summary: {out / 'summary.json'}")
    return 0


def _resolve_checkpoint(target: Path) -> tuple[Path, Path | None]:
    """A run directory (newest checkpoint) or a checkpoint directory -> (checkpoint, run_dir)."""
    from graft.train.checkpoint import list_checkpoints

    if not target.exists():
        raise GraftError(f"no such run or checkpoint: {target}")
    if (target / "model").is_dir() and (target / "config.yaml").is_file():
        run_dir = target.parent.parent if target.parent.name == "checkpoints" else None
        return target, run_dir
    found = list_checkpoints(target / "checkpoints")
    if not found:
        raise GraftError(f"{target} holds no checkpoint (expected checkpoints/step_N/ or a step_N directory)")
    return found[-1], target


def _load_checkpoint_policy(checkpoint: Path, cfg):
    """The checkpoint's policy on the run's device and precision (a LoRA run: base + adapter)."""
    from graft.models.load import load_saved_policy

    try:
        return load_saved_policy(checkpoint / "model", cfg.model)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise GraftError(f"{checkpoint / 'model'}: {exc}") from None


def cmd_eval(args) -> int:
    import torch

    from graft.config import load_config
    from graft.eval.evaluate import evaluate_full
    from graft.eval.tables import eval_table, parse_ks
    from graft.train.checkpoint import write_atomic_text
    from graft.train.loop import bind_tokenizer, build_task

    ks = parse_ks(args.k)
    samples = args.samples if args.samples is not None else max(ks)
    if samples < max(ks):
        raise GraftError(f"--samples {samples} is fewer than the largest k ({max(ks)}); pass@k needs n >= k")
    checkpoint, run_dir = _resolve_checkpoint(Path(args.target))
    overrides = [f"eval.num_examples={args.num_examples}"] if args.num_examples else []
    cfg = load_config(checkpoint / "config.yaml", overrides)
    torch.set_num_threads(cfg.threads)
    task = build_task(cfg.task)
    policy = _load_checkpoint_policy(checkpoint, cfg)
    bind_tokenizer(task, policy)
    result = {"checkpoint": str(checkpoint),
              **evaluate_full(policy, task, cfg.eval, cfg.seed, ks, samples, stop=cfg.rl.stop)}
    if run_dir is not None:
        (run_dir / "eval").mkdir(exist_ok=True)
        write_atomic_text(run_dir / "eval" / f"{checkpoint.name}.json", json.dumps(result, indent=2))
    Console().print(eval_table(result, title=f"{checkpoint}: {result['n']} held-out examples, "
                                              f"{samples} samples each at T={cfg.eval.temperature}"))
    return 0


def cmd_list(args) -> int:
    from graft.validation import PLUGIN_KEYS, registries

    table = Table(title="registered names")
    table.add_column("config key")
    table.add_column("names")
    for key, names in registries().items():
        table.add_row(key, ", ".join(names))
    Console().print(table)
    plugins = Table(title="plug-ins by import path (your own code; looked up on sys.path, then in the "
                          "current directory)")
    plugins.add_column("config key")
    plugins.add_column("takes")
    for key, what in PLUGIN_KEYS.items():
        plugins.add_row(key, what)
    Console().print(plugins)
    return 0


def _lazy(module: str, name: str):
    """A command handler imported only when its command runs (keeps `graft --help` fast)."""
    def run(args) -> int:
        from importlib import import_module

        return getattr(import_module(module), name)(args)
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graft", description="SFT and RL with verifiable rewards.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train from a YAML config")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--out", help="run directory (default runs/<name>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. rl.steps=10")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="held-out accuracy, pass@k, maj@k of a run or checkpoint")
    p.add_argument("target", help="run directory or checkpoint directory")
    p.add_argument("--num-examples", type=int, help="evaluate the first N test examples")
    p.add_argument("--k", default="1", help="comma-separated k for pass@k and maj@k (default 1)")
    p.add_argument("--samples", type=int, help="sampled completions per prompt (default: the largest k)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("quickstart", help="SFT then GRPO on the built-in task, from scratch, on CPU")
    p.add_argument("--out", default="runs/quickstart", help="run directory (replaced if present)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("compare", help="runs grouped by config: IQM, 95%% CIs, P(improvement); --adastop")
    p.add_argument("runs", nargs="+", help="run directories (or directories holding runs)")
    p.add_argument("--metric", default="accuracy", help="accuracy (summary.json accuracy_after_rl), a "
                   "summary.json key, or an eval/*.json key such as pass@4 (default accuracy)")
    p.add_argument("--group-by", default="name", help="config key whose value groups runs (default name)")
    p.add_argument("--plot", default="compare.png", help="where to save the plot ('' for none)")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap / AdaStop permutations")
    p.add_argument("--adastop", action="store_true", help="AdaStop sequential test instead of intervals")
    p.add_argument("--n", type=int, default=5, help="AdaStop: seeds per group per interim (default 5)")
    p.add_argument("--K", type=int, default=4, help="AdaStop: most interims (default 4)")
    p.add_argument("--alpha", type=float, default=0.05, help="AdaStop: family-wise error (default 0.05)")
    p.add_argument("--B", type=int, default=10_000, help="AdaStop: permutations (default 10000)")
    p.add_argument("--run-next", action="store_true", help="AdaStop: train the seeds still needed, retest")
    p.set_defaults(func=_lazy("graft.eval.compare", "cmd_compare"))

    p = sub.add_parser("seeds", help="train one config once per seed into OUT_ROOT/<name>-seed<S>")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--seeds", required=True, help="e.g. 0-4 or 0,1,2")
    p.add_argument("--out-root", default="runs", help="parent directory of the runs (default runs)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.set_defaults(func=_lazy("graft.eval.seeds", "cmd_seeds"))

    p = sub.add_parser("fit", help="fit the ScaleRL sigmoid to accuracy vs training compute")
    p.add_argument("runs", nargs="+", help="run directories (or directories holding runs)")
    p.add_argument("--metric", default="rollout/accuracy", help="metrics.jsonl key (default rollout/accuracy)")
    p.add_argument("--compute", default="rollout_tokens", choices=["rollout_tokens", "steps"],
                   help="x axis: cumulative sampled tokens of RL steps, or RL steps")
    p.add_argument("--fit-fraction", type=float, default=0.5, help="also fit on this first share of each "
                   "run and compare its predicted asymptote with the full fit (default 0.5)")
    p.add_argument("--reps", type=int, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--plot", default="fit.png", help="where to save the plot ('' for none)")
    p.set_defaults(func=_lazy("graft.eval.scaling", "cmd_fit"))

    p = sub.add_parser("contamination", help="exact and n-gram overlap between training and test data")
    p.add_argument("--train", required=True, help="JSONL file (prompt, answer) or a task name")
    p.add_argument("--test", required=True, help="JSONL file (prompt, answer) or a task name")
    p.add_argument("--n", type=int, default=8, help="n-gram length in words (default 8)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="task options for task names, "
                   "e.g. task.difficulty=3")
    p.set_defaults(func=_lazy("graft.eval.contamination", "cmd_contamination"))

    p = sub.add_parser("report", help="one self-contained HTML page: eval curves, compare's tables, learning "
                       "curves, evaluation, configs")
    p.add_argument("runs", nargs="+", help="run directories (or directories holding runs)")
    p.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    p.add_argument("--group-by", default="name", help="config key whose value groups runs (default name)")
    p.add_argument("--metric", default="accuracy", help="the comparison table's metric, as graft compare's "
                   "(default accuracy)")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples of the table and the eval "
                   "curve bands (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.set_defaults(func=_lazy("graft.eval.report", "cmd_report"))

    p = sub.add_parser("export", help="a run's model as a plain Hugging Face directory (LoRA: --merge)")
    p.add_argument("target", help="run directory (its newest checkpoint) or checkpoint directory")
    p.add_argument("--out", required=True, help="directory to write (must not exist or be empty)")
    p.add_argument("--merge", action="store_true", help="LoRA run: merge the adapter into the base weights")
    p.set_defaults(func=_lazy("graft.export", "cmd_export"))

    p = sub.add_parser("list", help="registered tasks and algorithm names, and the plug-in keys")
    p.set_defaults(func=cmd_list)

    verify_cli.add_parser(sub)  # graft verify --task {math,code,sql,exact,regex} FILE.jsonl
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GraftError as exc:
        console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
