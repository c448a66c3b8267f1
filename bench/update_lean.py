"""The RL update alone, plain path vs lean paths, side by side in one process (issue 7, W2 shape).

    PYTHONPATH=src python bench/update_lean.py                 # W2: 64 rows, 64 prompt + 128 completion tokens
    PYTHONPATH=src python bench/update_lean.py --rows 16 --reps 2 --threads 1
    PYTHONPATH=src python bench/update_lean.py --only "skip zero-adv. rows" --zero-var 0.4 --reps 3

Builds the W2 model (Qwen2, hidden 256, 4 layers, vocabulary 32,000; random weights, nothing
downloaded), one batch of random prompt/completion tokens with non-zero advantages and
old log-probs from the model itself, and runs ``graft.train.rl.update`` (loss, backward,
optimizer step with lr 0) under each configuration, alternating, ``--reps`` times. It prints per
configuration: the best wall time, the peak resident memory *above the process's baseline*
while that update ran (sampled every millisecond from /proc/self/statm by a thread; large
tensors are returned to the OS when freed: the script re-executes itself with a fixed glibc mmap
threshold so that this holds, and each update's peak is its own), and the loss and
gradient norm, which must match the plain path's (they are the same math). Ratios are lean /
plain: time < 1 is faster, memory < 1 is leaner.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

import torch

from graft.config import build_config
from graft.models.hf import HFPolicy
from graft.models.hf_testing import build_tiny_hf_model
from graft.train.batch import completion_logprobs, make_batch
from graft.train.rl import Learner, trained_part, update

CONFIGS = {  # name -> optim overrides; "plain": the default path with every row computed (no skipping)
    "plain": [],
    "chunk (checkpoint)": ["optim.logprob_chunk=512"],
    "fused": ["optim.logprob_chunk=512", "optim.logprob_impl=fused"],
    "fused, micro-batch 16": ["optim.logprob_chunk=512", "optim.logprob_impl=fused", "optim.micro_batch_size=16"],
    "fused, act. ckpt": ["optim.logprob_chunk=512", "optim.logprob_impl=fused", "optim.activation_checkpointing=true"],
    # the rows with zero advantage (--zero-var of them) left out of forward and backward
    "skip zero-adv. rows": ["optim.skip_zero_advantage=true"],
}


class PeakRSS:
    """Highest resident set size seen while the block runs, sampled by a thread (bytes)."""

    def __init__(self, every: float = 0.001):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.every)

    def __enter__(self) -> Self:
        self.base = self._rss()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        # glibc otherwise raises its mmap threshold after the first large free and keeps later freed
        # tensors in the heap, so RSS would remember the previous configuration's peak. A fixed
        # 128 KiB threshold maps every larger tensor on its own and unmaps it when freed.
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--completion", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--zero-var", type=float, default=0.0,
                    help="share of rows whose advantage is 0, as in all-equal groups (what skipping saves)")
    ap.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="configurations to run (plain always runs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = Path(tempfile.mkdtemp(prefix="update_lean_")) / "model"
    build_tiny_hf_model(model_dir, arch="qwen2", seed=0, hidden_size=256, num_layers=4, num_heads=4,
                        num_kv_heads=2, intermediate_size=1024, vocab_size=args.vocab, max_positions=512)
    policy = HFPolicy.load(model_dir)
    policy.module.train()
    learner = Learner(policy, torch.optim.SGD(policy.module.parameters(), lr=0.0))

    g = torch.Generator().manual_seed(0)
    V = policy.tokenizer.vocab_size
    prompts = torch.randint(4, V, (args.rows, args.prompt_len), generator=g).tolist()
    lengths = torch.randint(args.completion // 2, args.completion + 1, (args.rows,), generator=g).tolist()
    completions = [torch.randint(4, V, (n,), generator=g).tolist() for n in lengths]
    advantages = (torch.rand(args.rows, generator=g) * 2 - 1).tolist()
    for i in range(round(args.zero_var * args.rows)):  # the first rows: a zero-variance group's
        advantages[i] = 0.0
    batch = make_batch(prompts, completions, policy.tokenizer.pad_id, advantages=advantages)
    with torch.no_grad():  # behaviour log-probs = the current policy's: ratios start at 1, as in on-policy RL
        old, _ = completion_logprobs(policy, batch, chunk=512)
    batch.old_logprobs = old * batch.loss_mask

    names = ["plain"] + [n for n in CONFIGS if n != "plain" and (args.only is None or n in args.only)]
    # every row in the update unless a configuration says otherwise: skipping is graft's default
    # since 2026-12-02, and "plain" must stay the path that computes every row
    base = ["rl.temperature=1.0", "algo.kl=none", "algo.kl_coef=0.0", f"threads={args.threads}",
            f"optim.micro_batch_size={args.rows}", "optim.skip_zero_advantage=false"]
    cfgs = {n: build_config({}, base + CONFIGS[n]) for n in names}
    results: dict[str, dict] = {n: {"time": float("inf"), "peak": 0} for n in names}
    update(learner, batch, cfgs["plain"], lr=0.0)  # warm-up (first-call costs), not timed
    for rep in range(args.reps):
        for n in names:
            with PeakRSS() as mem:
                t = time.perf_counter()
                trained, _ = trained_part(learner, batch, cfgs[n])  # the whole batch unless skipping
                losses, grad_norm, _ = update(learner, trained, cfgs[n], lr=0.0,
                                              total_tokens=float(batch.loss_mask.sum()))
                dt = time.perf_counter() - t
            r = results[n]
            r["time"], r["peak"] = min(r["time"], dt), max(r["peak"], mem.peak - mem.base)
            r["loss"], r["grad_norm"] = losses.total, grad_norm
            print(f"rep {rep} {n:24} {dt:7.2f} s  peak +{(mem.peak - mem.base) / 2**20:7.0f} MB", flush=True)

    tokens = int(batch.attention_mask.sum())
    print(f"\n{args.rows} rows ({args.zero_var:.0%} with zero advantage), {tokens} real tokens, vocabulary {args.vocab}, {args.threads} threads, "
          f"best of {args.reps}; load average {os.getloadavg()[0]:.2f} (a shared machine distorts wall times)")
    p = results["plain"]
    print(f"{'configuration':24} {'time (s)':>9} {'peak +MB':>9} {'time/plain':>11} {'mem/plain':>10} "
          f"{'loss':>12} {'grad norm':>12}")
    for n in names:
        r = results[n]
        print(f"{n:24} {r['time']:9.2f} {r['peak'] / 2**20:9.0f} {r['time'] / p['time']:11.2f} "
              f"{r['peak'] / max(p['peak'], 1):10.2f} {r['loss']:12.8f} {r['grad_norm']:12.8f}")


if __name__ == "__main__":
    main()
