"""TRL's side of bench/vs_trl.py: GRPOTrainer on the same model, prompts, reward and hyperparameters.

Run in TRL's own environment (bench/.venv-trl):
    python bench/trl_side.py SPEC.json OUT.json
Same SPEC as bench/graft_side.py. Per-step time is measured by a TrainerCallback
(on_step_begin -> on_step_end: generation, reward, loss and optimizer step of one step);
completion lengths come from TRL's own logs (``completions/mean_length``, logging_steps=1).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def last_line_reward(completions, answer, **_):
    """1.0 when the completion's last non-empty line, stripped, equals the answer (graft's jsonl task)."""
    out = []
    for text, ans in zip(completions, answer):
        lines = [ln.strip() for ln in text[-100_000:].splitlines() if ln.strip()]
        out.append(float((lines[-1] if lines else "") == ans.strip()))
    return out


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(spec["threads"])
    rows = [json.loads(line) for line in Path(spec["data"]).read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"], local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32, local_files_only=True)
    batch = spec["num_prompts"] * spec["num_generations"]
    args = GRPOConfig(
        output_dir=spec["run_dir"],
        use_cpu=True, bf16=False, fp16=False,
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
    logs: list[dict] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

        def on_log(self, _args, _state, _control, logs_=None, **k):
            entry = k.get("logs") if logs_ is None else logs_
            if entry and "completions/mean_length" in entry:
                logs.append(dict(entry))

    trainer = GRPOTrainer(model=model, reward_funcs=last_line_reward, args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[Timer()])
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    steps = [{
        "step_time": t,
        "completion_tokens": (logs[i]["completions/mean_length"] * batch) if i < len(logs) else None,
        "reward_mean": logs[i].get("reward") if i < len(logs) else None,
    } for i, t in enumerate(times)]
    prompt_tokens = [len(tokenizer.encode(r["prompt"], add_special_tokens=False)) for r in rows]
    result = {
        "side": "trl",
        "steps": steps,
        "mean_prompt_tokens": sum(prompt_tokens) / len(prompt_tokens),
        "wall_seconds": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {"trl": __import__("trl").__version__, "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__},
    }
    Path(out_path).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:3])
