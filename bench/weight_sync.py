"""How long one policy version takes to reach every rollout worker: Ray's object store vs a gloo
broadcast (``distributed.weight_sync``), side by side in one run, on a local Ray cluster.

    PYTHONPATH=src .venv/bin/python bench/weight_sync.py [--sizes 1,16,64] [--workers 2] [--repeats 5]

For each size (millions of float32 parameters, in 8 tensors) and each way, ``--repeats`` versions
are sent; a version counts from the learner's first byte of work (``ray.put`` / ``flatten``) to the
last worker's acknowledgement that the weights are in its own tensors (``load_state_dict``-like
copies), as in a real step. Prints the medians, their min-max and the ratio object store / broadcast;
writes bench/results/weight_sync.json. On one machine both ways stay inside its memory; across nodes
the object store transfers a copy per node and the broadcast one per worker: this bench measures the
first case only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import ray
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from graft.distributed import weights as w


@ray.remote(max_concurrency=2)
class Receiver:
    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        torch.set_num_threads(1)
        self.params = {k: torch.zeros(s) for k, s in shapes.items()}
        self.group = None

    def join(self, host, port, generation, rank, size):
        self.group = w.new_group(host, port, generation, rank, size, 120.0)
        return True

    def load(self, box) -> bool:  # the object store: fetch the version, copy it into our tensors
        state = ray.get(box[0])
        for k, t in state.items():
            self.params[k].copy_(t)
        return True

    def receive(self, specs) -> bool:  # the broadcast: receive into flat buffers, copy out
        buffers = w.empty_buffers(specs)
        w.broadcast(self.group, buffers)
        for k, t in w.unflatten(specs, buffers).items():
            self.params[k].copy_(t)
        return True


def state_of(millions: float) -> dict[str, torch.Tensor]:
    n = int(millions * 1e6) // 8
    return {f"w{i}": torch.randn(n) for i in range(8)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,16,64", help="millions of float32 parameters, comma-separated")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "weight_sync.json"))
    args = ap.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    torch.set_num_threads(1)
    rows = []
    for millions in [float(x) for x in args.sizes.split(",")]:
        state = state_of(millions)
        actors = [Receiver.options(num_cpus=0).remote({k: tuple(t.shape) for k, t in state.items()})
                  for _ in range(args.workers)]
        store, host, port = w.serve_store(120.0)
        joins = [a.join.remote(host, port, 0, r + 1, args.workers + 1) for r, a in enumerate(actors)]
        group = w.new_group(host, port, 0, 0, args.workers + 1, 120.0, store=store)
        ray.get(joins)
        times = {"object_store": [], "broadcast": []}
        for _ in range(args.repeats):  # alternate the two ways, so drift hits both alike
            t0 = time.perf_counter()
            ref = ray.put(state)
            ray.get([a.load.remote([ref]) for a in actors])
            times["object_store"].append(time.perf_counter() - t0)
            del ref
            t0 = time.perf_counter()
            specs, buffers = w.flatten(state)
            acks = [a.receive.remote(specs) for a in actors]
            w.broadcast(group, buffers)
            ray.get(acks)
            times["broadcast"].append(time.perf_counter() - t0)
        for a in actors:
            ray.kill(a)
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {"million_params": millions, "mbytes": 4 * millions, "workers": args.workers, "seconds": times,
               "median_s": med, "object_store_over_broadcast": med["object_store"] / med["broadcast"]}
        rows.append(row)
        print(f"{millions:>6g}M params ({4 * millions:.0f} MB) x {args.workers} workers: object store "
              f"{med['object_store']:.3f} s [{min(times['object_store']):.3f}-{max(times['object_store']):.3f}], "
              f"broadcast {med['broadcast']:.3f} s [{min(times['broadcast']):.3f}-{max(times['broadcast']):.3f}]"
              f"  -> object store / broadcast = {row['object_store_over_broadcast']:.2f}x", flush=True)
    ray.shutdown()
    Path(args.out).write_text(json.dumps({"command": "PYTHONPATH=src .venv/bin/python bench/weight_sync.py "
                                          + " ".join(sys.argv[1:]), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
