"""Rollout and log-probability efficiency, each switch on vs off, in one run (issue 7).

Part 1 times ``sample`` for the quickstart model (32 prompts x 8 generations, up to 64 new
tokens, temperature 1) with ``rollout.compact`` and ``rollout.share_prefill`` on and off, and
checks that every setting sampled the same tokens. An untrained model seldom emits EOS, so
compaction has nothing to drop: pass ``--model`` (a trained graft-tiny or HF directory) or let
the script warm the fresh model with ``--sft-steps`` steps of SFT first.

Part 2 (``--vocab`` > 0) measures peak RSS of one forward + backward of
``completion_logprobs`` on a 2-layer Qwen2 model with a large vocabulary, with
``optim.logprob_chunk`` off and on; each setting runs in its own process so that its peak is
its own.

    PYTHONPATH=src python bench/rollout_speed.py [--model DIR] [--repeats 3] [--vocab 32000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch

from graft.config import load_config
from graft.models.load import load_saved_policy
from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.rollout.sampler import sample
from graft.tasks.arithmetic import ArithmeticTask
from graft.train.batch import completion_logprobs, make_batch
from graft.train.steps import sft_step

SETTINGS = {  # name: (compact, share_prefill)
    "baseline (both off)": (False, False),
    "compact": (True, False),
    "share_prefill": (False, True),
    "both (default)": (True, True),
}


def quickstart_policy(args) -> tuple[TinyPolicy, ArithmeticTask]:
    cfg = load_config("src/graft/configs/quickstart.yaml")
    task = ArithmeticTask(difficulty=cfg.task.difficulty, num_train=cfg.task.num_train, num_test=cfg.task.num_test)
    if args.model:
        return load_saved_policy(args.model), task
    m = cfg.model
    policy = TinyPolicy.create(TinyConfig(vocab_size=99, d_model=m.d_model, n_layers=m.n_layers,
                                          n_heads=m.n_heads, max_seq_len=m.max_seq_len), seed=0)
    optimizer = torch.optim.AdamW(policy.module.parameters(), lr=cfg.sft.lr)
    train = task.train_examples()
    for step in range(args.sft_steps):
        batch = train[step * 64 % len(train):][:64]
        sft_step(policy, optimizer, batch, cfg, cfg.sft.lr)
    return policy, task


def time_sampling(args) -> None:
    policy, task = quickstart_policy(args)
    policy.module.eval()
    prompts = [policy.tokenizer.encode(ex.prompt) for ex in task.test_examples()[:32]]
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    outputs = {}
    for r in range(args.repeats):
        for name, (compact, share) in SETTINGS.items():  # interleaved: load drifts hit all alike
            t0 = time.perf_counter()
            out = sample(policy, prompts, max_new_tokens=64, temperature=1.0, repeats=8,
                         keys=r, compact=compact, share_prefill=share)
            times[name].append(time.perf_counter() - t0)
            outputs[name, r] = [ro.completion_ids for ro in out]
    same = all(outputs[name, r] == outputs["baseline (both off)", r] for name in SETTINGS for r in range(args.repeats))
    lengths = [len(c) for c in outputs["baseline (both off)", 0]]
    print(f"sampling: 32 prompts x 8 generations, <= 64 new tokens, T=1, threads={torch.get_num_threads()}, "
          f"median of {args.repeats}; mean completion {statistics.mean(lengths):.1f} tokens, "
          f"{sum(n == 64 for n in lengths)}/{len(lengths)} hit the limit")
    base = statistics.median(times["baseline (both off)"])
    for name in SETTINGS:
        t = statistics.median(times[name])
        print(f"  {name:22s} {t:7.3f} s   speed-up x{base / t:5.2f}")
    print(f"  same samples in every setting: {same}")


def logprob_peak(vocab: int, chunk: int, rows: int, prompt_len: int, completion_len: int) -> None:
    """One forward + backward of completion_logprobs; print peak RSS (MiB) and time."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from graft.models.hf import HFPolicy, HFTokenizer
    from graft.models.hf_testing import build_char_tokenizer

    torch.manual_seed(0)
    module = Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, hidden_size=256, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2,
                                          intermediate_size=512, tie_word_embeddings=False))
    policy = HFPolicy(module, HFTokenizer(build_char_tokenizer()))
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(4, 250, (rows, prompt_len), generator=gen).tolist()
    completions = torch.randint(4, vocab, (rows, completion_len), generator=gen).tolist()
    batch = make_batch(prompts, completions, 0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    logp, ent = completion_logprobs(policy, batch, with_entropy=True, chunk=chunk)
    ((logp * batch.loss_weights).sum() + (ent * batch.loss_weights).sum()).backward()
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{peak:.0f} {peak - before:.0f} {dt:.3f}")


def memory(args) -> None:
    shape = (args.rows, args.prompt_len, args.completion_len)
    print(f"log-probabilities: Qwen2 2 layers x 256, vocab {args.vocab}, {shape[0]} rows x "
          f"({shape[1]} prompt + {shape[2]} completion) tokens, forward + backward with entropy")
    results = {}
    for chunk in (0, *args.chunk):
        out = subprocess.run([sys.executable, __file__, "--_peak", str(chunk), "--vocab", str(args.vocab),
                              "--rows", str(shape[0]), "--prompt-len", str(shape[1]),
                              "--completion-len", str(shape[2])],
                             capture_output=True, text=True, check=True).stdout.split()
        results[chunk] = [float(x) for x in out[-3:]]
    for chunk, (peak, grew, dt) in results.items():
        label = "logprob_chunk=0 (full)" if chunk == 0 else f"logprob_chunk={chunk}"
        print(f"  {label:24s} peak RSS {peak:7.0f} MiB (+{grew:6.0f} MiB during the pass)  {dt:6.2f} s")
    full = results[0]
    for chunk in args.chunk:
        lean = results[chunk]
        print(f"  chunk {chunk}: peak ratio chunked/full x{lean[0] / full[0]:.2f}; growth ratio "
              f"x{lean[1] / max(full[1], 1):.2f}; time ratio x{lean[2] / full[2]:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="trained graft-tiny or HF directory (default: fresh quickstart model + SFT)")
    p.add_argument("--sft-steps", type=int, default=150, help="SFT steps to warm a fresh model")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    p.add_argument("--vocab", type=int, default=32000, help="part 2's vocabulary (0 = skip part 2)")
    p.add_argument("--chunk", type=int, nargs="+", default=[1024, 256], help="chunk sizes to compare with 0")
    p.add_argument("--rows", type=int, default=16)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--completion-len", type=int, default=128)
    p.add_argument("--_peak", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args._peak is not None:
        logprob_peak(args.vocab, args._peak, args.rows, args.prompt_len, args.completion_len)
        return
    time_sampling(args)
    if args.vocab:
        memory(args)


if __name__ == "__main__":
    main()
