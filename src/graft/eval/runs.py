"""Reading finished run directories for `graft compare`, `graft report` and `graft fit`.

A run directory is recognised by its ``config.yaml``; a directory without one
whose subdirectories are runs (``runs/``) stands for all of them. Everything
here is at the edge: bad input raises ``GraftError`` with a message naming the
path.

Where a metric comes from (``metric_value``), in this order:
1. ``summary.json[KEY]``, e.g. ``accuracy_after_sft``;
2. ``summary.json[KEY + "_after_rl"]``: ``accuracy`` (the default) is the
   held-out greedy accuracy at the end of training, ``sampled_accuracy`` the
   sampled one;
3. the newest ``eval/*.json`` (by step, then name) holding KEY, e.g.
   ``pass@4`` or ``maj@4`` written by ``graft eval RUN --k 1,4``. The periodic
   evaluations written during training (``eval.every``; ``"kind": "periodic"``)
   are not read: an unfinished run must not be compared by its latest one.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from graft.errors import GraftError


@dataclass
class Run:
    """One finished (or running) run directory."""

    path: Path
    config: dict
    summary: dict | None
    evals: dict[str, dict] = field(default_factory=dict)  # eval file stem -> its JSON

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    def metrics(self) -> list[dict]:
        """metrics.jsonl rows (values that were NaN/inf are strings there; they come back as NaN)."""
        from graft.train.logging import read_metrics  # imports torch: only when curves are needed

        rows = read_metrics(self.path / "metrics.jsonl")
        for row in rows:
            for key, value in row.items():
                if isinstance(value, str):
                    try:
                        row[key] = float(value)
                    except ValueError:
                        pass
        return rows


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GraftError(f"{path}: not readable as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise GraftError(f"{path}: expected a JSON object")
    return data


def load_run(path: Path) -> Run:
    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise GraftError(f"{path / 'config.yaml'}: not readable ({exc})") from None
    if not isinstance(config, dict):
        raise GraftError(f"{path / 'config.yaml'}: expected a mapping")
    summary = _read_json(path / "summary.json") if (path / "summary.json").is_file() else None
    evals = {f.stem: _read_json(f) for f in sorted((path / "eval").glob("*.json"))}
    return Run(path, config, summary, evals)


def find_runs(paths: list[str | Path]) -> list[Run]:
    """Run directories named on the command line (a parent of run directories stands for them)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise GraftError(f"no such run directory: {path}")
        if (path / "config.yaml").is_file():
            found.append(path)
            continue
        children = sorted(p for p in path.iterdir() if (p / "config.yaml").is_file())
        if not children:
            raise GraftError(f"{path} is not a run directory (no config.yaml) and holds no runs")
        found.extend(children)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [load_run(p) for p in unique]


def config_value(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise GraftError(f"config key '{dotted}' not found (group-by takes a dotted config key, e.g. "
                             f"name or algo.advantage)")
        node = node[part]
    return node


def _step_order(stem: str) -> tuple[int, str]:
    m = re.fullmatch(r"step_(\d+)", stem)
    order = {"after_sft": -2, "final": 10**12}
    return (int(m[1]) if m else order.get(stem, -1), stem)


def metric_value(run: Run, key: str) -> tuple[float, str]:
    """(value, where it came from) of metric ``key`` for a run; see the module docstring."""
    summary = run.summary or {}
    for candidate in (key, f"{key}_after_rl"):
        if isinstance(summary.get(candidate), (int, float)):
            return float(summary[candidate]), f"summary.json:{candidate}"
    for stem in sorted(run.evals, key=_step_order, reverse=True):
        if run.evals[stem].get("kind") == "periodic":
            continue  # the eval curve's points (graft report), not a run's result
        value = run.evals[stem].get(key)
        if isinstance(value, (int, float)):
            return float(value), f"eval/{stem}.json:{key}"
    have = sorted(k for k, v in summary.items() if isinstance(v, (int, float)))
    where = "no summary.json (unfinished run?)" if run.summary is None else f"summary.json has {', '.join(have)}"
    raise GraftError(f"run {run.path} has no metric '{key}' ({where}; eval files: "
                     f"{', '.join(sorted(run.evals)) or 'none'}); compared runs must all report it")


def group_runs(runs: list[Run], group_by: str) -> dict[str, list[Run]]:
    """Runs grouped by a config key, each group sorted by seed; seeds must differ within a group."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(str(config_value(run.config, group_by)), []).append(run)
    for label, members in groups.items():
        members.sort(key=lambda r: r.seed)
        seeds = [r.seed for r in members]
        for a, b in itertools.pairwise(members):
            if a.seed == b.seed:
                raise GraftError(f"runs {a.path} and {b.path} are both {group_by}={label} with seed {a.seed}; "
                                 f"seeds are the repetitions, so they must differ within a group ({seeds})")
    return groups


EVAL_SET_KEYS = ("task.name", "task.path", "task.difficulty", "task.num_test", "task.split_seed",
                 "eval.num_examples")


def check_same_eval_set(runs: list[Run]) -> None:
    """Refuse to compare numbers measured on different held-out sets."""
    for key in EVAL_SET_KEYS:
        values = {}
        for run in runs:
            try:
                values.setdefault(repr(config_value(run.config, key)), run.path)
            except GraftError:
                values.setdefault("(missing)", run.path)
        if len(values) > 1:
            shown = "; ".join(f"{v} in {p}" for v, p in values.items())
            raise GraftError(f"runs were evaluated on different held-out sets ({key}: {shown}); "
                             f"compare runs of the same task and evaluation")
