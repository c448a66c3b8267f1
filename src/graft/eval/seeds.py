"""Training one config over several seeds (`graft seeds`), and the next batch for AdaStop.

A seed's run directory is ``<out_root>/<name>-seed<S>``. A seed whose
directory already holds ``summary.json`` is skipped; one that holds a partial
run is resumed (same config), so an interrupted batch can simply be rerun.
"""

from __future__ import annotations

from pathlib import Path

from graft.config import build_config, load_config
from graft.errors import GraftError
from graft.eval.runs import Run


def parse_seeds(text: str) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '0,3,7' -> [0, 3, 7]; ranges and lists mix ('0-2,9')."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            if "-" in part:
                lo, hi = part.split("-", 1)
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise GraftError(f"--seeds {text!r}: expected e.g. 0-4 or 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise GraftError(f"--seeds {text!r}: expected distinct non-negative seeds, e.g. 0-4 or 0,1,2")
    return seeds


def next_seeds(members: list[Run], need: int) -> list[int]:
    """The smallest seeds not used by a group's runs, enough to bring it to ``need`` runs."""
    used = {r.seed for r in members}
    out, s = [], 0
    while len(members) + len(out) < need:
        if s not in used:
            out.append(s)
        s += 1
    return out


def _train_one(cfg, out: Path) -> Path:
    from graft.train.loop import prepare, train

    if (out / "summary.json").is_file():
        return out
    resume = (out / "config.yaml").is_file()
    train(prepare(cfg), out, resume=resume)
    return out


def train_seeds(base: Run | str | Path, seeds: list[int], out_root: Path | None = None,
                overrides: list[str] = ()) -> list[Path]:
    """Train ``base`` (a run, whose config is reused, or a YAML config file) once per seed."""
    paths = []
    for seed in seeds:
        if isinstance(base, Run):
            cfg = build_config(base.config, [*overrides, f"seed={seed}"])
            root = out_root or base.path.parent
        else:
            cfg = load_config(base, [*overrides, f"seed={seed}"])
            root = out_root or Path("runs")
        paths.append(_train_one(cfg, Path(root) / f"{cfg.name}-seed{seed}"))
    return paths


def cmd_seeds(args) -> int:
    from rich.console import Console

    seeds = parse_seeds(args.seeds)
    paths = train_seeds(args.config, seeds, Path(args.out_root), args.set or [])
    Console(stderr=True).print("runs: " + " ".join(str(p) for p in paths), soft_wrap=True)
    return 0
