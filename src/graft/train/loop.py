"""The training loop: prompts -> rollouts -> rewards -> advantages -> losses -> update -> evaluation.

SFT steps on demonstrations come first (``sft.steps``), then ``rl.steps``
steps whose kind the mixer schedule decides (``mix.schedule``, see
``graft.mix.schedules``; the default makes them all RL steps). Everything
that can fail on bad input (config names, task, model files, prompts that do
not tokenize) is checked in ``prepare`` before the run directory is touched. A run killed at any moment continues with
``resume=True`` exactly as if it had not stopped: data order is a function of
the step, sampling randomness is a function of (seed, step, request) (``graft.rollout.rng``; older
checkpoints' "generator" entry is not read), the optimizer and the schedule's state (buffers, RNG)
are checkpointed, and metrics past the checkpoint are dropped and recomputed. The periodic
evaluation (``eval.every``, ``eval.sampled_every``) is a function of the weights and of
(seed, step) only, so a resumed run logs the same ``eval/*`` values at the same steps.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from graft.algos import ADVANTAGES
from graft.config import Config, dump_config
from graft.curriculum.step import Curriculum
from graft.curriculum.uniform import UniformStream
from graft.distributed import build_backend
from graft.errors import GraftError
from graft.eval.evaluate import PERIODIC_KEYS, evaluate_both, evaluate_periodic
from graft.mix.schedules import MIX_SCHEDULES
from graft.models.critic import Critic
from graft.models.load import create_policy, load_saved_policy
from graft.models.lora import BaseReference, is_lora
from graft.models.policy import Policy, device_of
from graft.tasks.base import Task
from graft.tasks.build import build_task
from graft.train import checkpoint as ckpt
from graft.train import lean
from graft.train.collect import step_seed
from graft.train.logging import MetricsLogger, truncate_metrics
from graft.train.rl import Learner, Pipeline, announce_ahead, rl_step, step_requests
from graft.train.steps import sft_step
from graft.validation import validate_config, validate_dependencies


@dataclass
class Setup:
    """What a run needs, built and validated before anything is written."""

    cfg: Config
    task: Task
    policy: Policy


def bind_tokenizer(task: Task, policy: Policy) -> None:
    """Tasks whose prompts depend on the model's tokenizer (a chat template) get it here."""
    bind = getattr(task, "bind_tokenizer", None)
    if bind is not None:
        bind(policy.tokenizer)


def prepare(cfg: Config) -> Setup:
    validate_config(cfg)  # built in code? the same pass as load_config's
    validate_dependencies(cfg)  # optional packages the config asks for (log.tensorboard, log.wandb)
    task = build_task(cfg.task)
    torch.set_num_threads(cfg.threads)
    policy = create_policy(cfg.model, cfg.seed)
    bind_tokenizer(task, policy)
    longest = {"prompt": 0, "demonstration": 0}  # tokens, over the training examples
    for split, examples in (("train", task.train_examples()), ("test", task.test_examples())):
        for i, ex in enumerate(examples):
            try:
                n_prompt = len(policy.tokenizer.encode(ex.prompt))
                n_demo = len(policy.tokenizer.encode(ex.demonstration)) if ex.demonstration is not None else 0
            except ValueError as exc:
                raise GraftError(f"task {task.name} {split} example {i}: {exc}") from None
            if split == "train":
                longest["prompt"] = max(longest["prompt"], n_prompt)
                longest["demonstration"] = max(longest["demonstration"], n_demo)
    if not any(ex.demonstration for ex in task.train_examples()):
        if cfg.sft.steps:
            raise GraftError(f"sft.steps={cfg.sft.steps} but task {task.name} has no demonstrations")
        if MIX_SCHEDULES[cfg.mix.schedule].uses_demonstrations:
            raise GraftError(f"mix.schedule={cfg.mix.schedule} needs demonstrations, task {task.name} has none")
    return Setup(resolve_lean(cfg, policy, longest["prompt"], longest["demonstration"]), task, policy)


def resolve_lean(cfg: Config, policy: Policy, longest_prompt: int, longest_demonstration: int) -> Config:
    """``cfg`` with every ``optim.* = auto`` lean setting resolved for this model and batch
    (``graft.train.lean``): the numbers the run uses and its saved config holds."""
    o = cfg.optim
    vocab, hidden, layers, heads = lean.model_shape(policy)
    shape = lean.Shape(vocab=vocab, hidden=hidden, layers=layers, heads=heads,
                       seq_len=longest_prompt + max(cfg.rl.max_new_tokens, longest_demonstration + 1),
                       rows=max(cfg.sft.batch_size, cfg.rl.num_prompts * cfg.rl.num_generations),
                       bytes_per_value=2 if cfg.model.precision != "fp32" else 4)
    head = policy.head_weight() if hasattr(policy, "head_weight") else None
    chosen = lean.resolve(o, shape, lean.memory_budget(device_of(policy)), plain_head=head is not None)
    return cfg.model_copy(update={"optim": o.model_copy(update=vars(chosen))})


def build_pipeline(cfg: Config, task: Task, rl_stream: UniformStream) -> Pipeline:
    """The RL components named by the config: the mixer schedule (SFT or RL, revisions), the
    curriculum (which prompts from ``rl_stream``, DARS), the rollout source (iid / tree / partial)
    and the verifier, in this process or on Ray workers (``distributed.backend``)."""
    backend = build_backend(cfg)
    return Pipeline(cfg, task, source=backend.source, schedule=MIX_SCHEDULES[cfg.mix.schedule](cfg),
                    curriculum=Curriculum(cfg, rl_stream), verifier=backend.verifier, backend=backend)


def _optimizer(module: torch.nn.Module, cfg: Config, lr: float, weight_decay: float | None = None
               ) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, decaying by ``weight_decay`` (unset: optim.weight_decay);
    ``optim.fused_adamw``: torch's fused kernel (its default, foreach=None, is the per-tensor loop
    on CPU)."""
    params = [p for p in module.parameters() if p.requires_grad]
    decay = cfg.optim.weight_decay if weight_decay is None else weight_decay
    return torch.optim.AdamW(
        params, lr=lr, betas=(cfg.optim.beta1, cfg.optim.beta2), weight_decay=decay,
        fused=True if cfg.optim.fused_adamw else None,
    )


def start_rl(policy: Policy, cfg: Config) -> Learner:
    """The RL phase's learner: a fresh optimizer (new objective, new moments); a frozen copy of the
    starting policy as the KL reference when KL is on; a critic when the advantage needs one."""
    learner = Learner(policy, _optimizer(policy.module, cfg, cfg.rl.lr, cfg.rl.weight_decay))
    if cfg.algo.kl != "none" and cfg.algo.kl_coef > 0:
        if is_lora(policy):  # the base model under the adapters: no second copy of the weights
            learner.ref = BaseReference(policy)
        else:
            learner.ref = copy.deepcopy(policy)  # reference = the policy RL starts from
            learner.ref.module.requires_grad_(False)
    if ADVANTAGES[cfg.algo.advantage].level == "critic":
        learner.critic = Critic(policy)
        learner.critic_optimizer = _optimizer(learner.critic, cfg, cfg.algo.critic_lr)
    return learner


def _restore(last: Path, cfg: Config, saved: dict, policy: Policy) -> Learner:
    """The learner as saved in checkpoint ``last`` (weights, optimizers, reference, critic). The
    saved weights are copied into ``policy`` (the run's ``Setup.policy``), so that the object a
    caller holds is the one trained, resumed or not."""
    policy.module.load_state_dict(load_saved_policy(last / "model", cfg.model).module.state_dict())
    learner = Learner(policy, _optimizer(policy.module, cfg, cfg.sft.lr))
    learner.optimizer.load_state_dict(saved["optimizer"])
    if saved.get("reference") == "base":  # LoRA: the base model under the adapters
        learner.ref = BaseReference(policy)
    elif (last / "reference").is_dir():
        learner.ref = load_saved_policy(last / "reference", cfg.model)
        learner.ref.module.requires_grad_(False)
    if saved.get("critic_optimizer") is not None:
        learner.critic = Critic.load(policy, last)
        learner.critic_optimizer = _optimizer(learner.critic, cfg, cfg.algo.critic_lr)
        learner.critic_optimizer.load_state_dict(saved["critic_optimizer"])
    return learner


def _open_run_dir(run_dir: Path, cfg: Config, resume: bool, write: bool = True) -> None:
    """Refuse a run directory that holds another run (or, on --resume, another config); then, with
    ``write``, create it and write the config. ``write=False`` only checks: train() checks before it
    starts workers and writes after, so a run that cannot start leaves no directory behind."""
    text = dump_config(cfg)
    saved = run_dir / "config.yaml"
    if resume and saved.is_file():
        if saved.read_text() != text:
            raise GraftError(f"--resume: the config differs from {saved}; resume with the same config")
        return
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise GraftError(f"run directory {run_dir} already exists; pass --resume or choose another --out")
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.write_atomic_text(saved, text)


def train(setup: Setup, run_dir: Path, resume: bool = False, progress=None) -> dict:
    """Run (or resume) a whole training job on ``setup.policy`` (trained in place; on resume the
    checkpoint's weights are loaded into it); returns the summary written to ``summary.json``."""
    cfg, task = setup.cfg, setup.task
    policy = setup.policy
    run_dir = Path(run_dir)
    _open_run_dir(run_dir, cfg, resume, write=False)
    with_demos = [ex for ex in task.train_examples() if ex.demonstration]
    sft_stream = UniformStream(with_demos, cfg.seed) if with_demos else None  # prepare checked the need
    rl_stream = UniformStream(task.train_examples(), cfg.seed + 1)
    extra_stream = UniformStream(task.train_examples(), cfg.seed + 2)  # dynamic-sampling refills
    learner = Learner(policy, _optimizer(policy.module, cfg, cfg.sft.lr))
    pipe = build_pipeline(cfg, task, rl_stream)  # may start workers (distributed.backend: ray)
    try:  # a run that fails or is interrupted still stops its workers and frees an engine's memory
        _open_run_dir(run_dir, cfg, resume)
        schedule, curriculum, source = pipe.schedule, pipe.curriculum, pipe.source
        state = {"step": 0, "wall_seconds": 0.0, "eval_after_sft": None, "eval_final": None}

        found = ckpt.list_checkpoints(run_dir / "checkpoints") if resume else []
        if found:  # restore weights, optimizers, RNG and counters of the newest complete checkpoint
            saved = ckpt.load_trainer_state(found[-1])
            learner = _restore(found[-1], cfg, saved, policy)
            schedule.load_state_dict(saved["mix"])
            curriculum.load_state_dict(saved.get("curriculum"))
            source.load_state_dict(saved.get("source", saved.get("partial")))  # "partial": older checkpoints
            state = saved["state"]
        truncate_metrics(run_dir / "metrics.jsonl", state["step"])
        logger = MetricsLogger(run_dir, tensorboard=cfg.log.tensorboard, start_step=state["step"], wandb=cfg.log,
                               name=cfg.name, config=cfg.model_dump(mode="json"))

        def save(step: int) -> None:
            def write(directory: Path) -> None:
                learner.policy.save(directory / "model")  # LoRA: the adapter
                base_ref = isinstance(learner.ref, BaseReference)
                if learner.ref is not None and not base_ref:
                    learner.ref.save(directory / "reference")
                if learner.critic is not None:
                    learner.critic.save(directory)
                (directory / "config.yaml").write_text(dump_config(cfg))
                ckpt.save_trainer_state(directory, {
                    "state": state, "optimizer": learner.optimizer.state_dict(),
                    "critic_optimizer": None if learner.critic is None else learner.critic_optimizer.state_dict(),
                    "reference": "base" if base_ref else None,
                    "mix": schedule.state_dict(),
                    "curriculum": curriculum.state_dict(), "source": source.state_dict(),
                })
            ckpt.save_checkpoint(run_dir / "checkpoints", step, write, keep=cfg.checkpoint.keep)

        def run_eval(name: str) -> dict:
            result = evaluate_both(learner.policy, task, cfg.eval, cfg.seed, stop=cfg.rl.stop)
            (run_dir / "eval").mkdir(exist_ok=True)
            ckpt.write_atomic_text(run_dir / "eval" / f"{name}.json", json.dumps(result, indent=2))
            return result

        def periodic_eval(done: int) -> dict:
            """``eval/*`` metrics of the periodic evaluation due after ``done`` steps ({} if none is)."""
            greedy = cfg.eval.every > 0 and done % cfg.eval.every == 0
            sampled = cfg.eval.sampled_every > 0 and done % cfg.eval.sampled_every == 0
            if not (greedy or sampled):
                return {}
            result = evaluate_periodic(learner.policy, task, cfg.eval, cfg.seed, done, greedy=greedy, sampled=sampled)
            (run_dir / "eval").mkdir(exist_ok=True)
            ckpt.write_atomic_text(run_dir / "eval" / f"step_{done}.json", json.dumps(result, indent=2))
            return {f"eval/{key}": result[key] for key in PERIODIC_KEYS if key in result}

        if state["step"] == 0 and cfg.sft.steps == 0 and state["eval_after_sft"] is None:
            state["eval_after_sft"] = run_eval("after_sft")  # no SFT: the starting point is the baseline
        t_start = time.perf_counter() - state["wall_seconds"]
        for step in range(state["step"], cfg.total_steps):
            if step == cfg.sft.steps:
                learner = start_rl(learner.policy, cfg)  # the RL phase: fresh optimizer, reference, critic
            plan = schedule.plan(step)  # ---- the mixer: SFT or RL, its lr, SFT weight
            demos = plan.demos
            if demos is None and (not plan.rl or plan.sft_weight):  # demonstrations of the next prompts
                demos = sft_stream.take(step * cfg.sft.batch_size, cfg.sft.batch_size)
            if not plan.rl:  # ---- imitation
                stats = sft_step(learner.policy, learner.optimizer, list(demos), cfg, plan.lr)
            else:  # ---- reinforcement: requests -> rollouts -> rewards -> advantages -> loss -> update
                announce_ahead(pipe, learner.policy, step, cfg.total_steps, extra_stream)  # max_staleness >= 1
                requests, refills = step_requests(pipe, learner.policy, step - cfg.sft.steps, extra_stream)
                stats = rl_step(learner, pipe, requests, refills, plan, list(demos or ()), step_seed(cfg.seed, step),
                                version=step)
                stats.counters.update(curriculum.observe())
            stats.counters.update(plan.info)
            stats.counters.update(schedule.observe(step, plan, stats))
            metrics = stats.metrics()
            state["step"] = step + 1
            state["wall_seconds"] = time.perf_counter() - t_start
            if state["step"] == cfg.sft.steps and cfg.rl.steps:
                state["eval_after_sft"] = run_eval("after_sft")
                metrics["eval/accuracy"] = state["eval_after_sft"]["accuracy"]
            metrics.update(periodic_eval(state["step"]))  # the weights after state["step"] steps
            logger.log(step, metrics)
            if progress is not None:
                progress(step + 1, cfg.total_steps, metrics)
            if state["step"] % cfg.checkpoint.every == 0 or state["step"] in (cfg.sft.steps, cfg.total_steps):
                save(state["step"])
    finally:  # the workers, an engine's memory (rollout.engine: vllm): the final evaluation's now
        pipe.backend.close()
    final = run_eval("final")
    if state["eval_after_sft"] is None:
        state["eval_after_sft"] = final  # rl.steps == 0: SFT's result is the final one
    state["wall_seconds"] = time.perf_counter() - t_start
    summary = {
        "name": cfg.name,
        "seed": cfg.seed,
        "task": cfg.task.name,
        "steps": cfg.total_steps,
        "accuracy_after_sft": state["eval_after_sft"]["accuracy"],
        "accuracy_after_rl": final["accuracy"],
        "sampled_accuracy_after_sft": state["eval_after_sft"]["sampled_accuracy"],
        "sampled_accuracy_after_rl": final["sampled_accuracy"],
        "eval_examples": final["n"],
        "wall_seconds": state["wall_seconds"],
    }
    ckpt.write_atomic_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    logger.close(summary)
    return summary
