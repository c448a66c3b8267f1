"""Tree (TreePO) vs i.i.d. rollouts, side by side in one process: same policy, same prompts.

For the quickstart model (arithmetic, ``--prompts`` prompts x 8 generations, up to 64 new tokens,
temperature 1) it samples every group both ways, ``--repeats`` times, alternating the order, and
prints per strategy: tokens generated per completed rollout (a shared prefix counts once), the
share of the leaves' tokens that were shared, wall time per group, and the pass rate (share of
rollouts the verifier marks correct). An untrained model seldom stops, so the script first warms
the fresh model with ``--sft-steps`` steps of SFT (or pass ``--model`` DIR).

    PYTHONPATH=src python bench/tree_rollouts.py [--model DIR] [--sft-steps 150] [--repeats 3]
        [--segment-len 8] [--branch 2] [--max-depth 3] [--branch-entropy 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rollout_speed import quickstart_policy

from graft.rollout.sampler import sample
from graft.rollout.tree import sample_tree, token_metrics

G, MAX_NEW = 8, 64


def run(policy, task, examples, strategy: str, seed: int, args) -> dict:
    prompts = [policy.tokenizer.encode(ex.prompt) for ex in examples]
    t0 = time.perf_counter()
    if strategy == "iid":
        flat = sample(policy, prompts, max_new_tokens=MAX_NEW, temperature=1.0, keys=seed, repeats=G)
    else:
        flat = sample_tree(policy, prompts, num_generations=G, max_new_tokens=MAX_NEW, temperature=1.0,
                           keys=seed, segment_len=args.segment_len, branch=args.branch,
                           max_depth=args.max_depth, branch_entropy=args.branch_entropy)
    seconds = time.perf_counter() - t0
    groups = [flat[i * G : (i + 1) * G] for i in range(len(examples))]
    correct = [task.score(ex, ro.text).correct for ex, g in zip(examples, groups) for ro in g]
    return {**token_metrics(groups), "s_per_group": seconds / len(groups),
            "pass_rate": sum(correct) / len(correct), "len": sum(len(r.completion_ids) for r in flat) / len(flat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--sft-steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--segment-len", type=int, default=8)
    parser.add_argument("--branch", type=int, default=2)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--branch-entropy", type=float, default=0.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy, task = quickstart_policy(args)
    policy.module.eval()
    results: dict[str, list[dict]] = {"iid": [], "tree": []}
    for rep in range(args.repeats):
        examples = task.train_examples()[rep * args.prompts : (rep + 1) * args.prompts]
        order = ("iid", "tree") if rep % 2 == 0 else ("tree", "iid")
        for strategy in order:
            results[strategy].append(run(policy, task, examples, strategy, seed=rep, args=args))
    print(f"tree: segment_len={args.segment_len} branch={args.branch} max_depth={args.max_depth} "
          f"branch_entropy={args.branch_entropy}; {args.prompts} prompts x {G}, {args.repeats} repeats "
          f"(median; pass rate: mean)")
    print(f"{'strategy':8} {'tokens/rollout':>15} {'prefix_share':>13} {'completion_len':>15} "
          f"{'s/group':>9} {'pass_rate':>10}")
    for name, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        rate = statistics.mean(r["pass_rate"] for r in rows)
        print(f"{name:8} {med['rollout/tokens_per_rollout']:15.2f} {med['rollout/prefix_share']:13.3f} "
              f"{med['len']:15.2f} {med['s_per_group']:9.4f} {rate:10.3f}")
    ratio = [t["s_per_group"] / i["s_per_group"] for t, i in zip(results["tree"], results["iid"])]
    tok = [t["rollout/tokens_per_rollout"] / i["rollout/tokens_per_rollout"]
           for t, i in zip(results["tree"], results["iid"])]
    print(f"tree / iid: tokens per rollout x{statistics.median(tok):.3f}, time per group "
          f"x{statistics.median(ratio):.3f} (median of per-repeat ratios)")


if __name__ == "__main__":
    main()
