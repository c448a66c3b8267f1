"""TRL's side of bench/vs_trl.py and bench/time_to_target.py: GRPOTrainer on the same model,
prompts, reward and hyperparameters as graft.

Run in TRL's own environment (bench/.venv-trl):
    python bench/trl_side.py SPEC.json OUT.json
SPEC["mode"] picks the job:
- "step_time" (default; vs_trl.py): same SPEC as bench/graft_side.py. Per-step time is measured by
  a TrainerCallback (on_step_begin -> on_step_end: generation, reward, loss and optimizer step of
  one step); completion lengths come from TRL's logs (``completions/mean_length``, logging_steps=1).
  Optional keys (bench/gpu_bench.py; absent, the vs_trl.py setup is unchanged: CPU, fp32, full
  fine-tuning, TRL's default generation and gradient checkpointing): ``device`` ("cpu" | "cuda"),
  ``precision`` ("fp32" | "bf16": weights loaded in bfloat16 and ``bf16=True`` |
  "bf16_mixed": float32 weights and ``bf16=True``, i.e. autocast), ``lora``
  ({"rank", "alpha", "target_modules"}: a peft LoraConfig, dropout 0), ``use_vllm`` (vLLM in
  ``colocate`` mode, ``vllm_gpu_memory_utilization``), ``gradient_checkpointing`` (bool).
  Each step's phases are timed from outside (``PhaseClock``; TRL's code is left as it is), with
  graft's meanings (``perf/*_time``): ``rollout_time`` (the trainer's ``_generate``: sampling, and
  vLLM's weight sync; plus the reward), ``prefill_time`` (of rollout), ``verify_time`` (the reward,
  of rollout), ``frozen_time`` (no-grad log-prob forwards), ``update_time`` (forward + backward +
  optimizer), ``backward_time`` and ``optimizer_time`` (of update).
- "rl_checkpoints" (time_to_target.py): GRPO from ``model_dir`` on ``data`` with graft's
  arithmetic verifier (reimplemented below), the core hyperparameters from the SPEC and TRL's
  defaults for the rest; the model is saved (HF format) every ``save_every`` steps with the
  training wall time so far.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by path (tests/test_bench_ttt.py)
from graft_side import cuda_memory  # this folder's module; it imports no graft at module level

_ANSWER = re.compile(r"A: *(-?\d{1,40})")


def arithmetic_reward(completions, answer, **_):
    """graft's arithmetic verifier (graft.tasks.arithmetic), the same rule: 1.0 when the integer right
    after the first "A:" (spaces allowed) in the completion's first 512 characters equals the answer."""
    out = []
    for text, ans in zip(completions, answer):
        text = text[:512]
        cut = text.find("A:")
        match = _ANSWER.match(text, cut) if cut >= 0 else None
        out.append(float(match is not None and int(match[1]) == int(ans)))
    return out


def last_line_reward(completions, answer, **_):
    """1.0 when the completion's last non-empty line, stripped, equals the answer (graft's jsonl task)."""
    out = []
    for text, ans in zip(completions, answer):
        lines = [ln.strip() for ln in text[-100_000:].splitlines() if ln.strip()]
        out.append(float((lines[-1] if lines else "") == ans.strip()))
    return out


class PhaseClock:
    """One GRPOTrainer step's phases, timed by wrapping the trainer's methods from outside.

    - generate: ``trainer._generate`` (tokenising, ``model.generate``, decoding the completions;
      vLLM's weight sync in vLLM mode); CUDA is synchronised at its end, as before.
    - prefill (of generate): the first forward of the policy in each ``generate`` call (a forward
      pre/post hook on the causal LM, armed by a wrapper of its ``generate``): with HF generate that
      forward takes the whole left-padded prompt and fills the cache; later ones take one token.
      Not split in vLLM mode (None: the engine does not run the module's forward).
    - reward: ``trainer._calculate_rewards`` (the reward functions, their tensor, the gather).
    - frozen: ``trainer._get_per_token_logps_and_entropies`` calls without grad (old / reference
      log-probs; with beta=0, num_iterations=1 and no vLLM TRL 1.16 makes none); ``frozen_calls``
      counts them. The call with grad belongs to the loss's forward.
    - forward: ``trainer.compute_loss`` (the policy's forward with grad and the loss).
    - backward: ``trainer.accelerator.backward``.
    - optimizer: from the end of ``trainer.training_step`` to ``on_step_end``: gradient clipping,
      ``optimizer.step``, the LR scheduler, ``zero_grad`` (and the Trainer's per-step bookkeeping).

    Host clock, no CUDA synchronisation beyond the generate one (as graft's timings): on a GPU a
    kernel counts in the phase that next waits for it."""

    KEYS = ("generate", "prefill", "reward", "frozen", "frozen_calls", "forward", "backward", "optimizer")

    def __init__(self, trainer, torch):
        self.torch = torch
        self.s = dict.fromkeys(self.KEYS, 0.0)
        self.generating = self.first = False  # inside _generate; the next forward is a prefill
        self.t_prefill = self.t_optim = None
        wrapped = {
            "generate": self._wrap(trainer, "_generate", self._generate),
            "reward": self._wrap(trainer, "_calculate_rewards", lambda f: self._timed(f, "reward")),
            "frozen": self._wrap(trainer, "_get_per_token_logps_and_entropies", self._logps),
            "forward": self._wrap(trainer, "compute_loss", lambda f: self._timed(f, "forward")),
            "backward": self._wrap(trainer.accelerator, "backward", lambda f: self._timed(f, "backward")),
            "optimizer": self._wrap(trainer, "training_step", self._training_step),
        }
        lm = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
        wrapped["prefill"] = wrapped["generate"] and not getattr(trainer, "use_vllm", False) \
            and self._wrap(lm, "generate", self._armed)
        if wrapped["prefill"]:
            lm.register_forward_pre_hook(self._pre)
            lm.register_forward_hook(self._post)
        self.timed = {k for k, ok in wrapped.items() if ok}

    @staticmethod
    def _wrap(obj, name: str, make) -> bool:
        """Replace the instance's ``name`` with ``make(original)``; False when it has none."""
        inner = getattr(obj, name, None)
        if not callable(inner):
            return False
        setattr(obj, name, make(inner))
        return True

    def _timed(self, fn, key: str):
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.s[key] += time.perf_counter() - t
        return timed

    def _generate(self, fn):
        def generate(*a, **k):
            t, self.generating = time.perf_counter(), True
            try:
                return fn(*a, **k)
            finally:
                self.generating = False
                if self.torch.cuda.is_available() and self.torch.cuda.is_initialized():
                    self.torch.cuda.synchronize()
                self.s["generate"] += time.perf_counter() - t
        return generate

    def _armed(self, fn):
        def generate(*a, **k):
            self.first = self.generating  # the first forward of this call is its prefill
            return fn(*a, **k)
        return generate

    def _pre(self, module, args):
        if self.first:
            self.first, self.t_prefill = False, time.perf_counter()

    def _post(self, module, args, output):
        if self.t_prefill is not None:
            self.s["prefill"] += time.perf_counter() - self.t_prefill
            self.t_prefill = None

    def _logps(self, fn):
        def logps(*a, **k):
            if self.torch.is_grad_enabled():  # the loss's own forward (in compute_loss)
                return fn(*a, **k)
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.s["frozen"] += time.perf_counter() - t
                self.s["frozen_calls"] += 1
        return logps

    def _training_step(self, fn):
        def training_step(*a, **k):
            out = fn(*a, **k)
            self.t_optim = time.perf_counter()  # clipping and the optimizer step follow, to on_step_end
            return out
        return training_step

    def begin(self) -> None:
        self.s = dict.fromkeys(self.KEYS, 0.0)
        self.t_optim = None

    def end(self) -> dict:
        """This step's phases with graft's keys and meanings (``perf/*_time``); None: not timed."""
        s, on = self.s, self.timed
        optimizer = time.perf_counter() - self.t_optim if self.t_optim is not None else None
        update = None if optimizer is None or not {"forward", "backward"} <= on \
            else s["forward"] + s["backward"] + optimizer
        return {
            "rollout_time": s["generate"] + s["reward"] if {"generate", "reward"} <= on else None,
            "prefill_time": s["prefill"] if "prefill" in on else None,
            "verify_time": s["reward"] if "reward" in on else None,
            "frozen_time": s["frozen"] if "frozen" in on else None,
            "frozen_calls": int(s["frozen_calls"]) if "frozen" in on else None,
            "update_time": update,
            "backward_time": s["backward"] if "backward" in on else None,
            "optimizer_time": optimizer,
        }


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("mode", "step_time") == "rl_checkpoints":
        result = rl_checkpoints(spec)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(out_path).write_text(json.dumps(result, indent=2))
        return
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(spec["threads"])
    rows = [json.loads(line) for line in Path(spec["data"]).read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"], local_files_only=True)
    precision = spec.get("precision", "fp32")  # bf16: bf16 weights; bf16_mixed: fp32 weights, autocast
    bf16 = precision in ("bf16", "bf16_mixed")
    model = AutoModelForCausalLM.from_pretrained(
        spec["model_dir"], dtype=torch.bfloat16 if precision == "bf16" else torch.float32, local_files_only=True)
    batch = spec["num_prompts"] * spec["num_generations"]
    extra, peft_config = {}, None
    if spec.get("gradient_checkpointing") is not None:
        extra["gradient_checkpointing"] = spec["gradient_checkpointing"]
    if spec.get("use_vllm"):
        extra.update(use_vllm=True, vllm_mode="colocate",
                     vllm_gpu_memory_utilization=spec.get("vllm_gpu_memory_utilization", 0.3))
    if spec.get("lora"):
        from peft import LoraConfig

        lora = spec["lora"]
        peft_config = LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=0.0,
                                 target_modules=lora["target_modules"], task_type="CAUSAL_LM")
    args = GRPOConfig(
        output_dir=spec["run_dir"],
        use_cpu=spec.get("device", "cpu") == "cpu", bf16=bf16, fp16=False, **extra,
        per_device_train_batch_size=batch, gradient_accumulation_steps=1,
        num_generations=spec["num_generations"], generation_batch_size=batch,
        max_completion_length=spec["max_new_tokens"], temperature=1.0, top_p=1.0,
        learning_rate=spec["lr"], lr_scheduler_type="constant", warmup_steps=0,
        adam_beta1=0.9, adam_beta2=0.99, weight_decay=0.0, max_grad_norm=1.0,
        beta=0.0, num_iterations=1, epsilon=0.2, epsilon_high=0.28,
        loss_type="dapo", scale_rewards="group",
        max_steps=spec["steps"], logging_steps=1, save_strategy="no", report_to="none",
        seed=0, dataloader_num_workers=0,
    )
    times: list[float] = []
    phases: list[dict] = []
    logs: list[dict] = []
    clock: list[PhaseClock] = []  # set once the trainer exists

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            clock[0].begin()
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            phases.append(clock[0].end())
            times.append(time.perf_counter() - self.t)

        def on_log(self, _args, _state, _control, logs_=None, **k):
            entry = k.get("logs") if logs_ is None else logs_
            if entry and "completions/mean_length" in entry:
                logs.append(dict(entry))

    trainer = GRPOTrainer(model=model, reward_funcs=last_line_reward, args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[Timer()], peft_config=peft_config)
    clock.append(PhaseClock(trainer, torch))  # TRL's methods wrapped from outside; its code is as it is
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    steps = [{
        "step_time": t,
        "completion_tokens": (logs[i]["completions/mean_length"] * batch) if i < len(logs) else None,
        "reward_mean": logs[i].get("reward") if i < len(logs) else None,
        **phases[i],
    } for i, t in enumerate(times)]
    prompt_tokens = [len(tokenizer.encode(r["prompt"], add_special_tokens=False)) for r in rows]
    result = {
        "side": "trl",
        "steps": steps,
        "mean_prompt_tokens": sum(prompt_tokens) / len(prompt_tokens),
        "wall_seconds": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_memory": cuda_memory(),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "versions": {"trl": __import__("trl").__version__, "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__},
    }
    Path(out_path).write_text(json.dumps(result, indent=2))


def rl_checkpoints(spec: dict) -> dict:
    """GRPOTrainer from ``model_dir``: one optimizer step per ``num_prompts`` x ``num_generations``
    completions, saving the model every ``save_every`` steps.

    Set here (the same as graft's run): prompts x generations per step, max completion tokens,
    temperature, learning rate (constant, as graft's RL lr), clip range (epsilon, epsilon_high),
    beta=0 (no KL), seed; fp32 on CPU (bf16 off) and no gradient checkpointing (graft recomputes
    nothing; on a model this small it only costs TRL time). Everything else is TRL 1.16's default
    (loss_type "dapo", scale_rewards "group", AdamW betas (0.9, 0.999), grad clip 1.0, ...).

    Training wall = the first step from ``on_step_begin``, then the wall time between consecutive
    ``on_step_end`` calls (generation, reward, loss, backward, optimizer step, TRL's logging), minus
    the time spent in this callback saving checkpoints.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(spec["threads"])
    rows = [json.loads(line) for line in Path(spec["data"]).read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"], local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32, local_files_only=True)
    args = GRPOConfig(
        output_dir=spec["run_dir"], use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
        per_device_train_batch_size=spec["num_prompts"] * spec["num_generations"],
        num_generations=spec["num_generations"], max_completion_length=spec["max_new_tokens"],
        temperature=spec["temperature"], learning_rate=spec["lr"], lr_scheduler_type="constant",
        beta=0.0, epsilon=spec["clip_low"], epsilon_high=spec["clip_high"],
        max_steps=spec["steps"], logging_steps=1, save_strategy="no", report_to="none", seed=spec["seed"],
    )
    out, every = Path(spec["checkpoint_dir"]), spec["save_every"]
    clock = {"wall": 0.0, "last": None}
    points, steps, logged = [], [], {}

    class Checkpoints(TrainerCallback):
        def on_step_begin(self, *a, **k):
            if clock["last"] is None:
                clock["last"] = time.perf_counter()

        def on_step_end(self, _args, state, _control, **k):
            clock["wall"] += time.perf_counter() - clock["last"]
            step = state.global_step
            steps.append({"step": step, "wall_s": clock["wall"]})
            if step % every == 0 or step == spec["steps"]:
                path = out / f"step_{step}"
                model.save_pretrained(path)
                tokenizer.save_pretrained(path)
                points.append({"step": step, "wall_s": clock["wall"], "path": str(path)})
            clock["last"] = time.perf_counter()  # the save above is not training time

        def on_log(self, _args, state, _control, logs=None, **k):
            if logs and "reward" in logs:
                logged[state.global_step] = dict(logs)

    trainer = GRPOTrainer(model=model, reward_funcs=arithmetic_reward, args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[Checkpoints()])
    trainer.train()
    for s in steps:
        entry = logged.get(s["step"], {})
        s["reward_mean"], s["completion_len"] = entry.get("reward"), entry.get("completions/mean_length")
    return {"side": "trl", "checkpoints": points, "steps": steps,
            "versions": {"trl": __import__("trl").__version__, "torch": torch.__version__,
                         "transformers": __import__("transformers").__version__}}


if __name__ == "__main__":
    main(*sys.argv[1:3])
