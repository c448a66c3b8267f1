"""SFT only vs RL only vs every mixer schedule, at one compute budget per setting, several seeds.

    .venv/bin/python bench/hybrid/run.py [--settings teacher,few_demos] [--seeds 0,1,2,3,4]
                                         [--workers 2] [--report]

1. Settings (``SETTINGS``): tasks where imitation alone runs out before verification does, as in
   real post-training: ``teacher`` (every training prompt has a demonstration, from an imperfect
   teacher that forgets most carries: SFT learns the teacher's slips) and ``few_demos`` (correct
   demonstrations on 300 prompts only, RL on all 10,000). Model: a small built-in transformer
   (d=64, 2 layers), trained from its random initialisation, ``threads=1`` per process.
2. Each method (``methods``: SFT only, RL only, and one entry per ``MIX_SCHEDULES`` name, built
   from the registry so a new schedule is benchmarked too) trains until its runs have spent the
   setting's budget of compute units (``perf/compute`` summed over steps: forward-token
   equivalents, forward-only tokens x 1 + forward-and-backward tokens x 3, proportional to
   FLOPs; see ``graft.train.steps.compute_metrics``). Every SFT + RL schedule first runs the same
   SFT warm-up (``Setting.warmup_steps``, sft_then_rl's SFT phase), then its own mixed phase; the
   methods that share it (``sharing``) continue from one warm-up per seed, trained first
   (``fork``; ``--no-share``: each trains its own, with the same results).
   The budget is enforced from the progress callback, which also evaluates the live policy
   (greedy, held-out) at every ``--points``-th of it; that evaluation is not counted as compute
   nor as training wall time.
3. At the end of each run: greedy accuracy and pass@k (k = 1, 4, 8, 16 from n = 16 samples at
   T = 1) on the held-out examples; along RL steps, the policy entropy and the share of groups
   whose rewards are all equal. Results go to ``<work>/<setting>/results/<method>-s<seed>.json``
   as they come (a re-run skips the runs already there).
4. ``report.py`` turns them into bench/results/hybrid.json (``settings: {name: {table, ...}}``),
   bench/results/hybrid_curves.png and the tables of bench/hybrid/README.md (IQM and 95%
   stratified-bootstrap CIs over seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]

# every run of every setting: the model size, the step sizes and the evaluation
BASE = [
    "log.progress=false", "threads=1", "checkpoint.every=100000", "checkpoint.keep=1",
    "model.d_model=64", "model.n_layers=2", "model.n_heads=2",
    "task.num_train=10000", "task.num_test=200",
    "sft.batch_size=32", "sft.lr=0.002", "sft.warmup_steps=20",
    "rl.num_prompts=16", "rl.num_generations=8", "rl.max_new_tokens=32", "rl.lr=0.00005",
    "eval.num_examples=200", "eval.max_new_tokens=32",
    # SFT steps inside the mixed phase (interleaved, adaptive): 1e-3 until 2026-12-02, which wrecked
    # interleaved on teacher and both on countdown_teacher (bench/hybrid/README.md); rows +sftlr1e-3 keep it
    "mix.sft_lr=0.0001",
    "optim.fused_adamw=false",  # the per-tensor AdamW every recorded run used (the default before 2026-12)
    # every row in the update, as in the runs recorded before 2026-12-02 (the same update to float
    # rounding; the +skip rows turn it on)
    "optim.skip_zero_advantage=false",
]


# the schedules with SFT steps in the mixed phase at the bench's earlier mix.sft_lr, 10x BASE's
LARGE_SFT_LR = (("interleaved+sftlr1e-3", ("mix.sft_lr=0.001",)), ("adaptive+sftlr1e-3", ("mix.sft_lr=0.001",)))
# ... and at graft's default (mix.sft_lr unset: rl.lr, BASE's 5e-5)
DEFAULT_SFT_LR = (("interleaved+sftlr5e-5", ("mix.sft_lr=0.00005",)), ("adaptive+sftlr5e-5", ("mix.sft_lr=0.00005",)))


def rl_steps_after(sft_steps: int, budget: float, sft_step: float, rl_step: float) -> int:
    """RL steps for the compute a warm-up of ``sft_steps`` leaves of ``budget``: x1.25, a little past
    it (completions may grow), so that the budget, not the step count, ends the run."""
    return math.ceil(1.25 * (budget - sft_steps * sft_step) / rl_step)


def warmup_of(steps: int, budget: float, sft_step: float = 2.64e3, rl_step: float = 1.4e4) -> tuple[str, ...]:
    """sft_then_rl's overrides for a warm-up of ``steps`` SFT steps instead of the setting's: RL gets
    the rest of the budget."""
    return (f"sft.steps={steps}", f"rl.steps={rl_steps_after(steps, budget, sft_step, rl_step)}")


def skipping(steps: int, budget: float, sft_step: float = 2.64e3, rl_step: float = 1.4e4) -> tuple[str, ...]:
    """Overrides that leave zero-advantage rows out of the RL update (``optim.skip_zero_advantage``:
    the same update for less compute) after a warm-up of ``steps``: twice the RL steps, since each
    costs less, so that the budget still ends the run."""
    return ("optim.skip_zero_advantage=true", f"rl.steps={2 * rl_steps_after(steps, budget, sft_step, rl_step)}")


def raft(lr: str, steps: int, budget: float, sft_step: float = 2.64e3, rl_step: float = 1.4e4) -> tuple[str, ...]:
    """Overrides for RAFT (``algo.advantage=raft``: SFT on the verified rollouts) at ``rl.lr`` ``lr``
    after a warm-up of ``steps``, its wrong rows skipped as in ``skipping``."""
    return ("algo.advantage=raft", f"rl.lr={float(lr)}", *skipping(steps, budget, sft_step, rl_step))


# groups of 4 for twice the prompts: the same 128 rollouts a step as BASE's 16 x 8
G4 = ("rl.num_prompts=32", "rl.num_generations=4")


@dataclass(frozen=True)
class Setting:
    about: str
    task: tuple[str, ...]  # config overrides that make the setting
    budget: float  # compute units per run
    warmup_steps: int  # SFT steps every SFT + RL schedule runs first
    target: float  # held-out greedy accuracy whose compute-to-reach is reported
    # extra rows (name, overrides): "X+..." on method X's overrides when X is a method, else on sft_then_rl's
    variants: tuple[tuple[str, tuple[str, ...]], ...] = ()
    in_default: bool = True  # run when --settings is not given
    sft_step: float = 2.64e3  # compute of one SFT step (32 demonstrations), measured in pilots
    rl_step: float = 1.4e4  # compute of one RL step (16 prompts x 8 rollouts, up to 32 tokens)


SETTINGS = {
    "teacher": Setting(
        about=("two-digit addition/subtraction; a demonstration for each of the 10,000 training prompts, "
               "written by an imperfect teacher that forgets a carry or borrow with probability 0.6 "
               "(task.teacher_error=0.6: 61% of its final answers are right); the verifier checks the "
               "true answer"),
        task=("task.name=arithmetic", "task.difficulty=2", "task.teacher_error=0.6"),
        budget=5.0e6, warmup_steps=800, target=0.6,
        variants=(("sft_then_rl+dynamic", ("select.dynamic_sampling=true",)),  # DAPO dynamic sampling
                  ("sft_then_rl+pcl", ("curriculum.name=pcl",)),  # prompt curriculum (PCL)
                  ("sft_then_rl+dars", ("curriculum.dars=true", "curriculum.dars_extra=64")),  # DARS
                  ("sft_then_rl+clip0.2", ("algo.clip_high=0.2",)),  # clip-higher off: symmetric clip
                  ("sft_then_rl+lpreg", ("algo.lp_reg_coef=1.0",)),  # Lp-Reg at the reference code's settings
                  *LARGE_SFT_LR, *DEFAULT_SFT_LR,
                  ("sft_then_rl+skip", skipping(800, 5.0e6)),  # zero-advantage rows out of the update
                  # RAFT, chosen on few_demos, checked here: SFT on the verified rollouts, wrong rows skipped
                  *((f"sft_then_rl+raft{lr}", raft(lr, 800, 5.0e6))
                    for lr in ("5e-5", "1e-4")),
                  ("sft_then_rl+raft1e-4+g4", G4),
                  # the same change for GRPO, so that what the smaller groups do is seen apart from RAFT
                  ("sft_then_rl+skip+g4", G4),
                  # (session 13) few_demos' strongest SFT-only baseline, weight decay 1.0, checked here;
                  # SFT + RL with the same decayed SFT, RL without it
                  ("sft_only+wd1", ("optim.weight_decay=1.0",)),
                  ("sft_then_rl+raft1e-4+g4+wd1", ("optim.weight_decay=1.0",)),
                  ("sft_then_rl+raft1e-4+g4+wd1+rlwd0", ("rl.weight_decay=0.0",))),
    ),
    "few_demos": Setting(
        about=("two-digit addition/subtraction; correct demonstrations on a seeded 3% of the training "
               "prompts (task.demo_fraction=0.03: 300 worked solutions, reused), RL prompts on all 10,000"),
        task=("task.name=arithmetic", "task.difficulty=2", "task.demo_fraction=0.03"),
        budget=5.0e6, warmup_steps=800, target=0.6,
        variants=(("sft_then_rl+lr2e-4", ("rl.lr=0.0002",)),  # the config default rl.lr until 2026-12 (now 3e-5)
                  ("sft_then_rl+entropy", ("algo.entropy_coef=0.01",)),
                  # stop SFT earlier (400 of the 800 warm-up steps, ~43 epochs of the 300 demonstrations
                  # instead of ~85), before it sharpens the policy further; RL gets the compute saved
                  ("sft_then_rl+warm400", warmup_of(400, 5.0e6)),
                  # stop SFT later instead: at about where SFT only flattens (~3.3M compute, step ~1,250)
                  ("sft_then_rl+warm1200", warmup_of(1200, 5.0e6)), ("sft_then_rl+warm1500", warmup_of(1500, 5.0e6)),
                  # bolder RL after the 800-step warm-up: a 2x lr, a hotter sampler, two PPO passes per batch
                  ("sft_then_rl+lr1e-4", ("rl.lr=0.0001",)), ("sft_then_rl+temp1.2", ("rl.temperature=1.2",)),
                  ("sft_then_rl+iter2", ("rl.num_iterations=2",)),
                  ("sft_then_rl+dynamic", ("select.dynamic_sampling=true",)), ("sft_then_rl+pcl", ("curriculum.name=pcl",)),
                  ("sft_then_rl+dars", ("curriculum.dars=true", "curriculum.dars_extra=64")),
                  ("sft_then_rl+clip0.2", ("algo.clip_high=0.2",)),
                  ("sft_then_rl+lpreg", ("algo.lp_reg_coef=1.0",)),
                  # Lp-Reg on 20x more tokens: the lowest-probability 20% of negative-advantage tokens
                  ("sft_then_rl+lpreg20", ("algo.lp_reg_coef=1.0", "algo.lp_reg_frac=0.2")),
                  *LARGE_SFT_LR,
                  # zero-advantage rows out of the update: the same RL steps for less compute, so more of them
                  ("sft_then_rl+skip", skipping(800, 5.0e6)), ("sft_then_rl+warm1200+skip", skipping(1200, 5.0e6)),
                  # RAFT (algo.advantage=raft): SFT on the verified rollouts of all 10,000 prompts, wrong rows
                  # skipped; from GRPO's lr up to half SFT's (3e-4 and 1e-3 collapsed: bench/hybrid/README.md)
                  *((f"sft_then_rl+raft{lr}", raft(lr, 800, 5.0e6))
                    for lr in ("5e-5", "1e-4", "3e-4", "1e-3")),
                  *((f"sft_then_rl+warm1200+raft{lr}", raft(lr, 1200, 5.0e6))
                    for lr in ("5e-5", "1e-4")),
                  # RAFT needs no group baseline: the same rollouts a step over twice the prompts
                  ("sft_then_rl+warm1200+raft1e-4+g4", G4),
                  # the same change for GRPO, so that what the smaller groups do is seen apart from RAFT
                  ("sft_then_rl+warm1200+skip+g4", G4),
                  ("sft_then_rl+warm1500+raft1e-4", raft("1e-4", 1500, 5.0e6)),
                  # regularised SFT (session 12): AdamW weight decay on every step, SFT and RL; 300
                  # demonstrations are reused ~128 times in SFT only's budget
                  *((f"sft_only+wd{wd}", (f"optim.weight_decay={float(wd)}",)) for wd in ("0.1", "1", "2", "3")),
                  *((f"sft_then_rl+warm1200+{rl}+g4+wd{wd}", (f"optim.weight_decay={float(wd)}",))
                    for rl in ("raft1e-4", "skip") for wd in ("0.1", "1", "3")),
                  # ... and with the later switch that weight decay's slower SFT curve calls for
                  ("sft_then_rl+warm1500+raft1e-4+g4", G4), ("sft_then_rl+warm1500+skip", skipping(1500, 5.0e6)),
                  ("sft_then_rl+warm1500+skip+g4", G4),
                  # (3x the RL steps: with weight decay RAFT's steps train fewer rows, and at 2x four of the
                  # five +warm1200+raft1e-4+g4+wd1 runs ran out of steps at 92-99.7% of the budget)
                  *((f"sft_then_rl+warm1500+{rl}+g4+wd1",
                     ("optim.weight_decay=1.0", f"rl.steps={3 * rl_steps_after(1500, 5.0e6, 2.64e3, 1.4e4)}"))
                    for rl in ("raft1e-4", "skip")),
                  # weight decay leaves a flat sampler (entropy 0.6-0.75 nats/token, pass@1 at T = 1 ~0.2
                  # against greedy ~0.6): RL sampling nearer the greedy policy
                  *((f"sft_then_rl+warm1500+{rl}+g4+wd1+temp0.5", ("rl.temperature=0.5",)) for rl in ("raft1e-4", "skip")),
                  # (session 13) weight decay in SFT only: RL's own optimizer without it (rl.weight_decay),
                  # so that RL can sharpen what decayed SFT left broad
                  *((f"sft_then_rl+warm1500+{rl}+g4+wd1+rlwd0", ("rl.weight_decay=0.0",)) for rl in ("raft1e-4", "skip")),
                  *((f"sft_then_rl+warm1500+{rl}+g4+wd1+rlwd0+temp0.5", ("rl.temperature=0.5",))
                    for rl in ("raft1e-4", "skip"))),
    ),
    # a second task, not yet a result: at 5M compute SFT only is still climbing steeply (pilot in
    # bench/hybrid/README.md), so it is left out of the default --settings until a budget where SFT
    # plateaus fits a session (this model: 4x BASE's width and 2x its depth, ~3 min a run at 5M)
    "countdown": Setting(
        about=("countdown with 3 numbers (reach the target with + - * /, each number at most once); a "
               "shortest solution for each of the 10,000 training prompts; model d=128, 4 layers"),
        task=("task.name=countdown", "task.difficulty=3", "model.d_model=128", "model.n_layers=4",
              "model.n_heads=4"),
        budget=5.0e6, warmup_steps=800, target=0.3, in_default=False,
    ),
    # the same task from an imperfect teacher (bench/hybrid/README.md): ~12 min a run at 12M from scratch,
    # ~4 min from the shared warm-up
    "countdown_teacher": Setting(
        about=("countdown with 3 numbers; a demonstration for each of the 10,000 training prompts, written "
               "by a teacher weak at multiplication: each * step's result one too high with probability 0.6 "
               "(task.teacher_error=0.6: 29% of its solutions wrong); the verifier checks every step; "
               "model d=128, 4 layers"),
        task=("task.name=countdown", "task.difficulty=3", "task.teacher_error=0.6", "model.d_model=128",
              "model.n_layers=4", "model.n_heads=4"),
        # target: above what the warm-up reaches (~0.41), so compute to it measures the RL phase
        budget=1.2e7, warmup_steps=2700, target=0.45, sft_step=3.2e3, rl_step=1.7e4, in_default=False,
        variants=(("sft_then_rl+lr1e-4", ("rl.lr=0.0001",)), ("sft_then_rl+lr2e-4", ("rl.lr=0.0002",)),
                  # the control: the same warm-up, then SFT instead of RL (adaptive at p = 1: every step SFT,
                  # at mix.sft_lr 1e-3), enough steps for the rest of the budget
                  ("sft_then_sft", ("mix.schedule=adaptive", "rl.steps=1100", "mix.adaptive_p_min=1.0",
                                    "mix.adaptive_p_max=1.0", "mix.sft_lr=0.001")),
                  # gentler continuations: the annealed warm-up's SFT resumed at a lower constant lr
                  ("sft_then_sft+lr1e-4", ("mix.sft_lr=0.0001",)), ("sft_then_sft+lr3e-4", ("mix.sft_lr=0.0003",)),
                  # the efficiency remedies where 45% of RL groups are all-equal (15-19% on teacher)
                  ("sft_then_rl+dynamic", ("select.dynamic_sampling=true",)), ("sft_then_rl+pcl", ("curriculum.name=pcl",)),
                  ("sft_then_rl+dars", ("curriculum.dars=true", "curriculum.dars_extra=64")),
                  *LARGE_SFT_LR,
                  ("sft_then_rl+skip", skipping(2700, 1.2e7, 3.2e3, 1.7e4)),
                  # the two findings of few_demos checked on a task they were not chosen on: RAFT, and
                  # groups of 4 over twice the prompts (GRPO)
                  ("sft_then_rl+raft1e-4", raft("1e-4", 2700, 1.2e7, 3.2e3, 1.7e4)),
                  ("sft_then_rl+skip+g4", G4)),
    ),
}

# few_demos at twice the budget (SFT only still rose on one seed of five over the last quarter of 5M);
# first a pilot on seeds 3-4 (bench/results/hybrid_few_demos_10m_pilot.json: SFT only's lead over GRPO
# grew), then (session 14) seeds 0-9 with few_demos' strongest rows at 5M, each rebuilt for this
# budget: SFT only with weight decay 1.0, RAFT / GRPO in groups of 4 after the later switches, and RL
# after the decayed 1,500-step warm-up (RL without decay); RL gets 6-7M compute instead of 1-2M
SETTINGS["few_demos_10m"] = replace(
    SETTINGS["few_demos"], in_default=False, budget=1.0e7,
    variants=(("sft_only+wd1", ("optim.weight_decay=1.0",)),
              ("sft_then_rl+warm1200", warmup_of(1200, 1.0e7)),
              ("sft_then_rl+warm1200+raft1e-4", raft("1e-4", 1200, 1.0e7)),
              ("sft_then_rl+warm1200+raft1e-4+g4", G4),
              ("sft_then_rl+warm1500", warmup_of(1500, 1.0e7)),
              ("sft_then_rl+warm1500+raft1e-4", raft("1e-4", 1500, 1.0e7)),
              ("sft_then_rl+warm1500+skip", skipping(1500, 1.0e7)),
              *((f"sft_then_rl+warm1500+{rl}+g4", G4) for rl in ("raft1e-4", "skip")),
              *((f"sft_then_rl+warm1500+{rl}+g4+wd1",
                 ("optim.weight_decay=1.0", f"rl.steps={3 * rl_steps_after(1500, 1.0e7, 2.64e3, 1.4e4)}"))
                for rl in ("raft1e-4", "skip")),
              *((f"sft_then_rl+warm1500+{rl}+g4+wd1+rlwd0", ("rl.weight_decay=0.0",)) for rl in ("raft1e-4", "skip"))),
    about=("few_demos (300 correct demonstrations, RL prompts on all 10,000) at 10M compute instead of "
           "5M: the same 800-step warm-up, RL gets the rest"))


def methods(setting: Setting) -> dict[str, list[str]]:
    """Method name -> config overrides (on top of BASE, the setting's task and the seed).

    The budget ends every run (``BudgetSpent``); step counts are set a little past it (x1.02 for
    SFT, whose cost per step is fixed; x1.25 for RL, whose completions may grow) so that it does.
    """
    from graft.mix.schedules import MIX_SCHEDULES

    budget, sft_c, rl_c, warm = setting.budget, setting.sft_step, setting.rl_step, setting.warmup_steps
    after = budget - warm * sft_c  # compute left for the mixed phase after the shared warm-up
    if after <= 0:
        raise ValueError(f"warm-up of {warm} SFT steps spends the whole budget {budget:g}")
    rl_steps = rl_steps_after(warm, budget, sft_c, rl_c)
    settings = {  # each schedule's settings in this bench; anything not set is the config default
        "sft_then_rl": [f"rl.steps={rl_steps}"],
        "interleaved": ["mix.buffer_size=8", f"rl.steps={math.ceil(1.02 * after / sft_c)}"],  # + its SFT steps
        "adaptive": [f"rl.steps={math.ceil(1.02 * after / sft_c)}"],  # may pick cheap SFT steps throughout
        "hints": [f"mix.hint_steps={max(1, round(after / rl_c / 2))}"],  # the first half of the mixed phase
        "inject": [],
        "weighted": [f"rl.steps={math.ceil(1.05 * after / (rl_c + sft_c))}", "mix.sft_weight=1.0",
                     "mix.sft_weight_end=0.1"],
    }
    out = {
        "sft_only": ["mix.schedule=sft_then_rl", f"sft.steps={math.ceil(1.02 * budget / sft_c)}", "rl.steps=0"],
        "rl_only": ["mix.schedule=sft_then_rl", "sft.steps=0", f"rl.steps={math.ceil(1.25 * budget / rl_c)}"],
    }
    for name in sorted(MIX_SCHEDULES):
        sets = settings.get(name, [])
        if not any(s.startswith("rl.steps=") for s in sets):
            sets = [f"rl.steps={rl_steps}", *sets]
        out[name] = [f"mix.schedule={name}", f"sft.steps={warm}", *sets]
    for name, sets in setting.variants:  # a method's recipe (X+..., else sft_then_rl's) with settings changed
        base = name.rsplit("+", 1)[0]
        out[name] = [*out[base if "+" in name and base in out else "sft_then_rl"], *sets]
    return out


class BudgetSpent(Exception):
    """Raised from the progress callback once a run has spent its compute budget."""


class WarmupDone(Exception):
    """Raised from the progress callback of a shared warm-up once its checkpoint is written."""


# config sections the SFT warm-up does not read (the loop reads them from step sft.steps on)
RL_ONLY = ("name", "rl", "algo", "select", "curriculum", "shaping", "mix")
# ... and keys of other sections that only RL steps read
RL_ONLY_KEYS = (("optim", "skip_zero_advantage"),)


def warmup_view(cfg) -> dict:
    """What of a config the SFT warm-up reads: every section but ``RL_ONLY``, less ``RL_ONLY_KEYS``."""
    view = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in RL_ONLY}
    for section, key in RL_ONLY_KEYS:
        view[section].pop(key)
    return view


def sharing(setting: Setting, table: dict[str, list[str]]) -> list[str]:
    """The methods whose first ``warmup_steps`` steps are sft_then_rl's, step for step: the same
    config outside ``RL_ONLY`` (every schedule, and the variants that change only RL settings).
    They continue from one shared warm-up per seed instead of each training it again."""
    from graft.config import build_config

    def view(name: str) -> dict:
        return warmup_view(build_config({}, BASE + list(setting.task) + table[name]))

    warm = view("sft_then_rl")
    return [name for name in table if view(name) == warm]


def warmup_dir(work: str | Path, setting: str, seed: int) -> Path:
    return Path(work) / setting / "warmups" / f"s{seed}"


def _logged(row: dict) -> SimpleNamespace:
    """A warm-up step's ``StepStats`` as a schedule reads it on an SFT step, from its logged metrics."""
    from graft.step_stats import OptimStats

    return SimpleNamespace(optim=OptimStats(row["optim/grad_norm"], row["optim/lr"]), sft_share=row["mix/sft_share"])


def fork(setup, run_dir: Path, warm_run: Path, step: int) -> None:
    """Make ``run_dir`` a run of ``setup.cfg`` checkpointed at ``step``, the end of the warm-up that
    ``warm_run`` trained, so that ``train(setup, run_dir, resume=True)`` goes on from there exactly
    as a run of its own from step 0 would: the warm-up's weights, counters and metrics, with the
    state this config's schedule and curriculum have after the same SFT steps (the schedule sees
    the warm-up's logged steps again: adaptive's gradient-norm average). Refuses a warm-up whose
    config differs from this one outside ``RL_ONLY``."""
    import torch

    from graft.config import dump_config, load_config
    from graft.curriculum.step import Curriculum
    from graft.curriculum.uniform import UniformStream
    from graft.mix.schedules import MIX_SCHEDULES
    from graft.train.logging import read_metrics

    cfg, saved = setup.cfg, warm_run / "checkpoints" / f"step_{step}"
    mine = warmup_view(cfg)
    differs = [k for k, v in warmup_view(load_config(warm_run / "config.yaml")).items() if mine[k] != v]
    if differs:
        raise SystemExit(f"{warm_run}: its warm-up differs from {cfg.name}'s in {', '.join(differs)}")
    rows = [r for r in read_metrics(warm_run / "metrics.jsonl") if r["step"] < step]
    if [r["step"] for r in rows] != list(range(step)) or not saved.is_dir():
        raise SystemExit(f"{warm_run}: no complete warm-up of {step} steps there")
    checkpoint = run_dir / "checkpoints" / saved.name
    shutil.copytree(saved, checkpoint)
    state = torch.load(checkpoint / "trainer.pt", weights_only=False)
    schedule = MIX_SCHEDULES[cfg.mix.schedule](cfg)
    for row in rows:  # and the metrics it logs on those steps
        row.update(schedule.observe(row["step"], schedule.plan(row["step"]), _logged(row)))
    state["mix"] = schedule.state_dict()
    state["curriculum"] = Curriculum(cfg, UniformStream(setup.task.train_examples(), cfg.seed + 1)).state_dict()
    torch.save(state, checkpoint / "trainer.pt")
    for path in (checkpoint / "config.yaml", run_dir / "config.yaml"):
        path.write_text(dump_config(cfg))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


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


def run_one(setting: str, method: str, seed: int, overrides: list[str], points: int, work: str,
            budget: float | None = None, warmup: int | None = None, shared: bool = False) -> dict | None:
    """Train one (method, seed) of ``setting`` until the budget (the setting's unless given) is spent.

    ``warmup``: the shared warm-up of ``warmup`` SFT steps (``overrides``: sft_then_rl's): train it in
    ``warmup_dir``, write its curve to ``warmup.json`` there and stop after its checkpoint.
    ``shared``: start from that warm-up (``fork``) instead of step 0; the curve, compute and wall
    time include the warm-up's, as if this run had trained it."""
    from graft.config import build_config
    from graft.eval.evaluate import evaluate
    from graft.train.loop import prepare, train

    spec = SETTINGS[setting]
    budget = budget or spec.budget
    cfg = build_config({}, BASE + list(spec.task) + overrides + [f"seed={seed}", f"name={method}"])
    setup = prepare(cfg)
    policy, task = setup.policy, setup.task  # the loop trains this very object (no resume here)
    test = task.test_examples()[: cfg.eval.num_examples]

    def greedy() -> float:
        return evaluate(policy, task, test, max_new_tokens=cfg.eval.max_new_tokens,
                        batch_size=cfg.eval.batch_size)["accuracy"]

    run_dir = warmup_dir(work, setting, seed) if warmup else Path(work) / setting / "runs" / f"{method}-s{seed}"
    if run_dir.exists():  # a run killed before its result was written: this bench's own scratch, start over
        shutil.rmtree(run_dir)
    if shared:
        warm_run = warmup_dir(work, setting, seed)
        warm = json.loads((warm_run / "warmup.json").read_text())
        fork(setup, run_dir, warm_run, warm["step"])
        curve, shares, spent, wall_eval = warm["curve"], warm["shares"], warm["compute"], warm["wall_eval"]
        t0 = time.perf_counter() - warm["wall"] - wall_eval
    else:
        curve = [{"compute": 0.0, "wall": 0.0, "step": 0, "accuracy": greedy()}]
        spent, wall_eval, t0 = 0.0, 0.0, time.perf_counter()
        shares = []
    rl_trace: list[dict] = []  # per RL step: entropy, share of all-equal groups, sampled reward
    snapshot: dict = {}

    def progress(done: int, total: int, metrics: dict) -> None:
        nonlocal spent, wall_eval
        if warmup and done > warmup:  # the warm-up's checkpoint (step ``warmup``) is written by now
            (run_dir / "warmup.tmp").write_text(json.dumps(snapshot, indent=1))
            os.replace(run_dir / "warmup.tmp", run_dir / "warmup.json")
            raise WarmupDone
        spent += metrics["perf/compute"]
        shares.append(metrics["mix/sft_share"])
        if "rollout/zero_var_frac" in metrics:
            rl_trace.append({"step": done, "entropy": metrics.get("losses/entropy"),
                             "sampled_entropy": metrics.get("rollout/entropy"),
                             "zero_var": metrics["rollout/zero_var_frac"],
                             "reward": metrics.get("reward/mean")})
        if spent >= budget * len(curve) / points or spent >= budget:
            t_eval = time.perf_counter()
            acc = greedy()
            wall_eval += time.perf_counter() - t_eval
            curve.append({"compute": spent, "wall": time.perf_counter() - t0 - wall_eval, "step": done,
                          "accuracy": acc})
        if warmup and done == warmup:  # what a run that shares this warm-up starts from
            snapshot.update(overrides=overrides, points=points, budget=budget, step=done, compute=spent, wall=time.perf_counter() - t0 - wall_eval,
                            wall_eval=wall_eval, curve=list(curve), shares=list(shares))
        if spent >= budget:
            raise BudgetSpent

    try:
        train(setup, run_dir, resume=shared, progress=progress)
        reached = False  # the config's steps ran out first
    except BudgetSpent:
        reached = True
    except WarmupDone:
        return None
    return {
        "setting": setting, "method": method, "seed": seed, "budget": budget, "budget_reached": reached,
        "overrides": overrides,
        "compute": spent, "wall_seconds": curve[-1]["wall"], "steps": curve[-1]["step"],
        "final_accuracy": curve[-1]["accuracy"], "start_accuracy": curve[0]["accuracy"],
        "mean_sft_share": sum(shares) / max(1, len(shares)),
        **pass_at_ks(policy, task, cfg, n=16, ks=[1, 4, 8, 16], seed=seed),
        "curve": curve, "rl_trace": rl_trace,
    }


def _job(args: tuple) -> dict:
    setting, method, seed, overrides, points, work, budget, warmup, shared = args
    result = run_one(setting, method, seed, overrides, points, work, budget, warmup, shared)
    if result is None:  # a shared warm-up: its checkpoint and warmup.json are in warmup_dir
        return {"setting": setting, "seed": seed, "warmup": warmup}
    result["shared_warmup"] = shared
    out = Path(work) / setting / "results" / f"{method}-s{seed}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--settings", default=",".join(n for n, s in SETTINGS.items() if s.in_default),
                    help=f"comma-separated, of {', '.join(SETTINGS)} (default: all but "
                         f"{', '.join(n for n, s in SETTINGS.items() if not s.in_default)})")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--methods", default=None, help="comma-separated subset (default: all)")
    ap.add_argument("--points", type=int, default=12, help="evaluations along each run")
    ap.add_argument("--workers", type=int, default=2, help="parallel processes (threads=1 each)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-hybrid"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config override for every run (pilots)")
    ap.add_argument("--budget", type=float, default=None, help="pilots: every setting's compute budget")
    ap.add_argument("--warmup", type=int, default=None, help="pilots: every setting's SFT warm-up steps")
    ap.add_argument("--no-share", action="store_true",
                    help="every run trains its own SFT warm-up (by default the methods that share "
                         "sft_then_rl's continue from one warm-up per seed: the same results, ~70%% less time)")
    ap.add_argument("--report", action="store_true", help="then write the results files (report.py)")
    args = ap.parse_args()
    work = Path(args.work)
    chosen_settings = args.settings.split(",")
    for name in chosen_settings:
        if name not in SETTINGS:
            ap.error(f"--settings: unknown setting {name!r}; choose from {', '.join(SETTINGS)}")
        (work / name / "results").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def piloted(spec: Setting) -> Setting:
        return replace(spec, budget=args.budget or spec.budget, warmup_steps=args.warmup or spec.warmup_steps)

    tables = {name: methods(piloted(SETTINGS[name])) for name in chosen_settings}
    unknown = sorted(set(args.methods.split(",") if args.methods else []) - {m for t in tables.values() for m in t})
    if unknown:
        ap.error(f"--methods: {', '.join(unknown)} is in none of the chosen settings")
    jobs, after = [], {}  # after[(setting, seed)]: the runs waiting for that seed's shared warm-up
    for name, table in tables.items():  # a method only some settings have (a variant) runs there only
        spec = piloted(SETTINGS[name])
        share = set() if args.no_share else set(sharing(spec, table))
        chosen = [m for m in args.methods.split(",") if m in table] if args.methods else list(table)
        for seed in (int(s) for s in args.seeds.split(",")):
            for m in chosen:
                if (work / name / "results" / f"{m}-s{seed}.json").is_file():
                    continue
                job = (name, m, seed, table[m] + args.set, args.points, str(work), args.budget, None, m in share)
                (after.setdefault((name, seed), []) if m in share else jobs).append(job)
            if (name, seed) not in after:
                continue
            done = warmup_dir(work, name, seed) / "warmup.json"
            warm_job = (name, "warmup", seed, table["sft_then_rl"] + args.set, args.points, str(work),
                        args.budget, spec.warmup_steps, False)
            if done.is_file():
                saved = json.loads(done.read_text())
                now = {"overrides": warm_job[3], "points": args.points, "budget": spec.budget, "step": spec.warmup_steps}
                if {k: saved.get(k) for k in now} != now:
                    ap.error(f"{done.parent} holds a warm-up of other settings (--set, --points, --budget or "
                             f"--warmup); remove it or use another --work")
                jobs[:0] = after.pop((name, seed))
            else:
                jobs.insert(0, warm_job)
    print(f"{len(jobs) + sum(map(len, after.values()))} runs to do, "
          f"{sum(j[1] == 'warmup' for j in jobs)} shared warm-ups first", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        running = {pool.submit(_job, job) for job in jobs}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                r = fut.result()
                if "warmup" in r:  # its runs can start now
                    print(f"{r['setting']:>10} seed {r['seed']}: shared warm-up of {r['warmup']} steps done  "
                          f"[{time.perf_counter() - t0:.0f} s]", flush=True)
                    running |= {pool.submit(_job, job) for job in after.pop((r["setting"], r["seed"]))}
                    continue
                print(f"{r['setting']:>10} {r['method']:>12} seed {r['seed']}: {r['start_accuracy']:.3f} -> "
                      f"{r['final_accuracy']:.3f}  pass@16 {r['pass@16']:.3f}  {r['steps']} steps, "
                      f"{r['wall_seconds']:.0f} s{'' if r['budget_reached'] else '  (budget NOT reached)'}"
                      f"  [{time.perf_counter() - t0:.0f} s]", flush=True)
    for name in chosen_settings:
        with open(work / name / "bench_seconds.txt", "a") as fh:
            fh.write(f"{time.perf_counter() - t0:.1f}\n")
    if args.report:
        from report import write_report  # bench/hybrid/report.py, next to this file

        write_report(work)


if __name__ == "__main__":
    main()
