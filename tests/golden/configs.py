"""The golden tier's cases: tiny configs, one per RL strategy, as ``load_config(None, overrides)``.

Recorded before issue 12 (the RL step as a pipeline of typed stages) by ``record.py``,
re-recorded whole for issue 17 (keyed sampling, docs/sampling_rng.md); ``test_golden.py`` reruns
every case and checks each stored metric to 1e-6 against the recording of the machine kind it
runs on (``recordings/<machine_kind()>.json``): float rounding differs between CPU kinds (MKL
picks its matrix-multiply kernels by vendor and model), and after a few steps the difference
changes a sampled token, so the numbers of one kind cannot be checked on another.

Every case starts from ``BASE``: the built-in tiny transformer (d_model 32, 2 layers), arithmetic
with one-digit operands, 60 cheap SFT steps (about 5 ms each) so that the policy answers some
prompts correctly, then 10 RL steps of 4 prompts x 4 completions. Fewer SFT steps leave every
rollout wrong, every group's rewards equal and every GRPO advantage 0: the RL update would then
be trivially zero and the golden values would pin down nothing of the loss. The final evaluation
is on 8 test examples; checkpoints are written only where the loop must (end of SFT, end of run).

``FIRES`` says, for each case, what in its recorded metrics shows that its feature ran (checked
on every recording by ``test_golden.py::test_case_exercises_its_feature``); ``DIFFERS`` names
metrics that a case's feature moves, beyond the tolerance, away from a baseline case's.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from graft.config import Config, load_config
from graft.step_stats import TIMING_KEYS
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

SFT_STEPS = 60
RL_STEPS = 10

BASE = [
    "seed=0", "threads=1", "log.progress=false",
    "model.d_model=32", "model.n_layers=2", "model.n_heads=2",
    "task.name=arithmetic", "task.difficulty=1", "task.num_train=128", "task.num_test=16",
    f"sft.steps={SFT_STEPS}", "sft.batch_size=32", "sft.lr=0.01", "sft.warmup_steps=1",
    f"rl.steps={RL_STEPS}", "rl.lr=0.0002", "rl.num_prompts=4", "rl.num_generations=4", "rl.max_new_tokens=16",
    "eval.num_examples=8", "eval.max_new_tokens=16", "eval.batch_size=8",
    "checkpoint.every=1000", "checkpoint.keep=1", "optim.fused_adamw=false",
]

# name -> overrides on top of BASE; the comment says what the case exercises
CASES: dict[str, list[str]] = {
    # plain GRPO, i.i.d. sampling, PPO clip, token mean, no KL: the default RL step
    "grpo": [],
    # TreePO segment trees (rollout/prefix_share > 0) with the per-token tree-segment advantage
    "tree": ["rollout.strategy=tree", "rollout.segment_len=4", "rollout.branch=2",
             "rollout.max_depth=2", "algo.advantage=tree_segment"],
    # APRIL partial rollouts, stale tokens kept (stale=correct): groups are buffered across steps
    # and resumed, so some trained tokens are off-policy
    "partial": ["rollout.strategy=partial", "rollout.over_provision=2"],
    # partial rollouts with decoupled PPO + truncated IS on stale tokens (stale_is_cap); a cap of
    # 2 never binds here (it moves the metrics by < 1e-6), 0.5 truncates most stale tokens' weights
    "partial_is_cap": ["rollout.strategy=partial", "rollout.over_provision=2",
                       "rollout.stale_is_cap=0.5"],
    # partial rollouts whose stale tokens get loss weight 0 (stale=mask)
    "partial_mask": ["rollout.strategy=partial", "rollout.over_provision=2", "rollout.stale=mask",
                     "rollout.max_staleness=1"],
    # DAPO dynamic sampling: zero-variance groups dropped and refilled from extra prompts
    "dynamic_sampling": ["select.dynamic_sampling=true", "select.max_extra_prompts=8"],
    # UFT/Guide hints: failing groups resampled with a demonstration prefix
    "hints": ["mix.schedule=hints"],
    # LUFFY: a failing group's last rollout replaced by the demonstration, policy-shaping loss
    "inject": ["mix.schedule=inject"],
    # ReLIFT: failing prompts buffered; a full buffer (4 items) turns the next step into SFT
    "interleaved": ["mix.schedule=interleaved", "mix.buffer_size=4", "mix.sft_lr=0.001"],
    # SASR-style: each mixed step is SFT with probability from the SFT grad-norm ratio
    "adaptive": ["mix.schedule=adaptive", "mix.sft_lr=0.001", "mix.adaptive_p_max=0.5"],
    # RL loss + a linearly moving weight x SFT loss on demonstrations in the same update
    "weighted": ["mix.schedule=weighted", "mix.sft_weight=0.2", "mix.sft_weight_end=0.05"],
    # PCL prompt selection from a 3x pool + DARS extra groups for hard prompts
    "pcl_dars": ["curriculum.name=pcl", "curriculum.pool_factor=3", "curriculum.dars=true",
                 "curriculum.dars_extra=8"],
    # GAE on a critic's values (critic level: value loss, value clip, whitened advantages)
    "gae": ["algo.advantage=gae", "algo.critic_lr=0.001", "algo.value_clip=0.05",
            "rl.num_iterations=2"],
    # k3 KL to the reference as a loss term
    "kl_loss": ["algo.kl=k3", "algo.kl_coef=0.1", "algo.kl_in=loss"],
    # k1 KL to the reference folded into the token rewards (rollout/kl). Sensitive to rounding:
    # at the first RL step the policy is the reference and rollout/kl is float noise (~7e-9,
    # sampler vs teacher-forced log-probs), yet GRPO's (r - mean) / (std + 1e-6) over groups whose
    # verifier rewards are all 0 turns it into advantages (optim/grad_norm 0.063 at step 60)
    "kl_reward": ["algo.kl=k1", "algo.kl_coef=0.1", "algo.kl_in=reward"],
    # batch-relative length shaping (GRPO-lambda) with dynamic sampling: today the shaping runs
    # per draw (the top-lambda groups of each refill, not of the kept batch); this case pins that
    "lambda_dynamic": ["shaping.length=grpo_lambda", "shaping.top_fraction=0.5",
                       "select.dynamic_sampling=true", "select.max_extra_prompts=8"],
    # batch-relative length shaping with hints: today hinted groups are shaped again among
    # themselves only (the top-lambda of the hinted subset); this case pins that
    "lambda_hints": ["shaping.length=grpo_lambda", "shaping.top_fraction=0.5",
                     "mix.schedule=hints"],
    # two PPO epochs per batch with CISPO and the RLOO advantage, sequence-level aggregation
    "cispo_rloo_iter2": ["rl.num_iterations=2", "algo.policy_loss=cispo", "algo.clip_low=1.0",
                         "algo.advantage=rloo", "algo.loss_agg=seq_mean_token_sum",
                         "rl.lr=0.001"],
}


RECORDINGS = Path(__file__).resolve().parent / "recordings"
"""One golden file per machine kind: ``<machine_kind()>.json``."""


def cpu_facts(cpuinfo: str | None = None) -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (or of ``cpuinfo``; empty
    where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    facts: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        facts.setdefault(key.strip(), value.strip())
    return facts


def machine_kind(cpuinfo: str | None = None, capability: str | None = None, version: str | None = None) -> str:
    """What a case's numbers depend on besides graft's code and the case: the CPU's vendor, family
    and model (``/proc/cpuinfo``; MKL chooses its kernels by them), the vector instructions torch's
    own kernels use (``torch.backends.cpu.get_cpu_capability()``) and torch's version, e.g.
    ``GenuineIntel-6-207-AVX512-torch2.13.0+cpu``. Where there is no ``/proc/cpuinfo`` (not Linux),
    ``platform.machine()`` and ``platform.processor()`` stand in for the CPU. The arguments replace
    what is read from the machine (tests)."""
    facts = cpu_facts(cpuinfo)
    wanted = ("vendor_id", "cpu family", "model")
    if all(facts.get(k) for k in wanted):
        cpu = "-".join(facts[k] for k in wanted)
    else:
        cpu = "-".join(x for x in (platform.machine(), platform.processor()) if x) or "unknown"
    capability = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    version = torch.__version__ if version is None else version
    return "-".join(x.replace(" ", "_").replace("/", "_") for x in (cpu, capability, f"torch{version}"))


def overrides(name: str) -> list[str]:
    return BASE + [f"name=golden-{name}"] + CASES[name]


def config(name: str) -> Config:
    return load_config(None, overrides(name))


TIMING = TIMING_KEYS  # wall-clock keys (graft.step_stats)
"""Wall-clock metrics (seconds, tokens per second): not recorded, never compared."""
SUMMARY_KEYS = ("accuracy_after_sft", "accuracy_after_rl", "sampled_accuracy_after_sft",
                "sampled_accuracy_after_rl", "eval_examples")
"""What is kept of summary.json (not ``wall_seconds``)."""


def run_case(name: str) -> tuple[list[dict], dict]:
    """Train case ``name`` through the public API in a fresh temporary run directory; return its
    per-step metrics (every step, SFT and RL, timing keys dropped) and its summary accuracies."""
    with tempfile.TemporaryDirectory(prefix=f"golden-{name}-") as tmp:
        run_dir = Path(tmp) / "run"
        summary = train(prepare(config(name)), run_dir)
        rows = read_metrics(run_dir / "metrics.jsonl")
    steps = [{k: v for k, v in r.items() if k not in TIMING} for r in rows]
    return steps, {k: summary[k] for k in SUMMARY_KEYS}


def _beyond_tolerance(v: float) -> bool:
    return abs(v) > 1e-6


def _some(key: str, pred: Callable[[float], bool] = _beyond_tolerance
          ) -> Callable[[list[dict]], bool]:
    """Some step logs ``key`` with a value that ``pred`` accepts (default: |v| > 1e-6)."""
    return lambda rows: any(key in r and pred(r[key]) for r in rows)


def _all(*checks: Callable[[list[dict]], bool]) -> Callable[[list[dict]], bool]:
    return lambda rows: all(check(rows) for check in checks)


def _shaped(rows: list[dict]) -> bool:
    """Length shaping changed some step's trained rewards (shaped mean != verifier mean)."""
    return any(abs(r["batch/reward_mean"] - r["batch/verifier_reward_mean"]) > 1e-9
               for r in rows if "batch/reward_mean" in r)


def _mixed_sft_step(rows: list[dict]) -> bool:
    """An SFT step after the warm-up (the schedule chose imitation)."""
    return any(r["step"] >= SFT_STEPS and r.get("mix/sft_share") == 1.0 for r in rows)


def _mixed_rl_step(rows: list[dict]) -> bool:
    return any(r["step"] >= SFT_STEPS and "rollout/reward_mean" in r for r in rows)


_INFORMATIVE = _some("rollout/zero_var_frac", lambda v: v < 1.0)  # some group had a GRPO signal

# name -> predicate on the case's rows: its feature really ran
FIRES: dict[str, Callable[[list[dict]], bool]] = {
    "grpo": _all(_INFORMATIVE, _some("optim/grad_norm")),
    "tree": _all(_INFORMATIVE, _some("rollout/prefix_share")),
    "partial": _all(_some("rollout/buffered_groups"), _some("rollout/resumed_groups"),
                    _some("rollout/off_policy_token_frac")),
    "partial_is_cap": _all(_some("rollout/resumed_groups"), _some("rollout/off_policy_token_frac")),
    "partial_mask": _all(_some("rollout/resumed_groups"), _some("rollout/off_policy_token_frac"),
                         _some("rollout/restarted_rows")),
    "dynamic_sampling": _all(_some("select/extra_prompts"), _some("select/kept_groups")),
    "hints": _all(_some("mix/hinted_groups"), _some("mix/hint_len")),
    "inject": _all(_some("mix/injected"), _some("mix/sft_share", lambda v: 0 < v < 1)),
    "interleaved": _all(_some("mix/buffered"), _mixed_sft_step),
    "adaptive": _all(_mixed_sft_step, _mixed_rl_step,
                     _some("mix/grad_norm_ratio", lambda v: v != 1.0)),
    "weighted": _all(_some("mix/sft_weight"), _some("mix/sft_share", lambda v: 0 < v < 1)),
    "pcl_dars": _all(_some("curriculum/dars_extra_rollouts"),
                     _some("curriculum/pred_pass_rate", lambda v: v != 0.5)),
    "gae": _all(_some("losses/value"), _some("losses/value_clip_frac")),
    "kl_loss": _some("losses/kl"),
    "kl_reward": _some("rollout/kl"),
    "lambda_dynamic": _all(_shaped, _some("select/extra_prompts")),
    "lambda_hints": _all(_shaped, _some("mix/hinted_groups")),
    "cispo_rloo_iter2": _all(_INFORMATIVE, _some("losses/clip_frac")),  # clip binds in epoch 2
}

# (case, baseline case, key): the case's feature moves this metric away from the baseline's at
# some step by more than the tolerance, so the golden values tell the feature's code path apart
DIFFERS: list[tuple[str, str, str]] = [
    ("partial_is_cap", "partial", "losses/policy"),
    ("partial_mask", "partial", "optim/grad_norm"),
    ("lambda_dynamic", "dynamic_sampling", "optim/grad_norm"),
    # since issue 17's draws every group grpo_lambda selects here has one correct completion: its
    # flat penalty (coef / 2) rescales that group's rewards, which GRPO's std normalisation undoes,
    # so the update moves by ~1e-6 only; the trained (shaped) rewards move
    ("lambda_hints", "hints", "batch/reward_mean"),
    # KL in the loss: the whole loss (losses/policy before issue 12's rename, RENAMED); with keyed
    # draws both cases draw the same numbers and, their weights differing by the small KL term
    # only, sample the same tokens here: their policy-gradient terms agree to 1e-6
    ("kl_loss", "grpo", "losses/total"),
    ("kl_reward", "grpo", "optim/grad_norm"),
]
