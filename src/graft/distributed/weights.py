"""Weights from the learner to the rollout workers by a collective broadcast
(``distributed.weight_sync: broadcast``), instead of the object store.

A torch.distributed gloo process group over the learner (rank 0) and the rollout workers (ranks
1..n). A version's weights travel as one flat CPU buffer per dtype (``flatten`` / ``unflatten``),
sent by one ``broadcast`` each from rank 0 over TCP. The object store instead copies the weights
into shared memory on the learner's node and each worker pulls its copy (through Ray's object
transfer from another node). NCCL (GPU to GPU, never through host memory) would use the same
group code with ``ProcessGroupNCCL``; it is not offered until it has run on GPUs.

``WeightBroadcast`` is the learner's side over the Ray backend's rollout pool (the workers' side
is ``RolloutWorker.join`` / ``receive`` in ``graft.distributed.ray_backend``).

Groups are objects (``ProcessGroupGloo`` / ``ProcessGroupNCCL`` built on a ``PrefixStore``), not
torch.distributed's global default group, so a group can be formed again under a new
*generation* prefix when a worker is replaced, and the learner's process keeps no global state.
The rendezvous is a ``TCPStore`` the learner serves on a free port of its node.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import ray
import torch
import torch.distributed as dist

from graft.distributed.ray_backend import _DEAD, STARTUP_TIMEOUT_S, log


@dataclass(frozen=True)
class Spec:
    """Where one tensor of a state dict lies in its dtype's flat buffer."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int  # elements into the buffer of ``dtype``
    numel: int


def flatten(state: dict[str, torch.Tensor]) -> tuple[list[Spec], dict[torch.dtype, torch.Tensor]]:
    """A state dict as one contiguous CPU buffer per dtype (in the state dict's order) and the
    specs that cut it back; the buffers are new tensors."""
    specs, parts, sizes = [], {}, {}
    for name, t in state.items():
        offset = sizes.get(t.dtype, 0)
        specs.append(Spec(name, t.dtype, tuple(t.shape), offset, t.numel()))
        sizes[t.dtype] = offset + t.numel()
        parts.setdefault(t.dtype, []).append(t.detach().reshape(-1).to("cpu"))
    return specs, {dtype: torch.cat(ts) for dtype, ts in parts.items()}


def empty_buffers(specs: list[Spec], device: torch.device | str = "cpu") -> dict[torch.dtype, torch.Tensor]:
    """Receive buffers of the sizes ``specs`` describe."""
    sizes: dict[torch.dtype, int] = {}
    for s in specs:
        sizes[s.dtype] = max(sizes.get(s.dtype, 0), s.offset + s.numel)
    return {dtype: torch.empty(n, dtype=dtype, device=device) for dtype, n in sizes.items()}


def unflatten(specs: list[Spec], buffers: dict[torch.dtype, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict ``flatten`` made ``buffers`` from (views into them)."""
    return {s.name: buffers[s.dtype][s.offset : s.offset + s.numel].view(s.shape) for s in specs}


def _order(buffers: dict[torch.dtype, torch.Tensor]) -> list[torch.Tensor]:
    """Every rank broadcasts the buffers in the same order: by dtype name."""
    return [buffers[d] for d in sorted(buffers, key=str)]


def new_group(host: str, port: int, generation: int, rank: int, size: int, timeout_s: float, store=None,
              local_ip: str | None = None):
    """This process's member of the gloo group of ``generation`` (blocks until all ``size`` ranks
    have joined). ``store``: the learner's own TCPStore server (rank 0); other ranks connect to it.
    ``local_ip``: the address gloo listens on (this node's Ray address: gloo would otherwise resolve
    the hostname, which fails or picks another interface on some machines)."""
    if store is None:
        store = dist.TCPStore(host, port, is_master=False, timeout=timedelta(seconds=timeout_s))
    prefixed = dist.PrefixStore(f"graft-weights-{generation}", store)
    options = dist.ProcessGroupGloo._Options()
    options._timeout = timedelta(seconds=timeout_s)
    options._devices = [dist.ProcessGroupGloo.create_device(hostname=local_ip or node_ip())]
    return dist.ProcessGroupGloo(prefixed, rank, size, options)


def node_ip() -> str:
    """This node's address as Ray knows it."""
    return ray.util.get_node_ip_address()


def broadcast(group, buffers: dict[torch.dtype, torch.Tensor]) -> None:
    """Send (rank 0) or receive (the others) every buffer, in place, and wait for it."""
    for buf in _order(buffers):
        group.broadcast(buf, 0).wait()


def serve_store(timeout_s: float):
    """The rendezvous store the learner serves: (store, host, port), on a free port of its node."""
    host = node_ip()
    store = dist.TCPStore(host, 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=timeout_s))
    return store, host, store.port


class WeightBroadcast:
    """``distributed.weight_sync: broadcast``, the learner's side: a gloo group of the learner
    (rank 0) and the rollout pool's actors, formed again (a new generation) whenever the pool has
    replaced an actor since; each version sent as flat buffers (``flatten``, ``broadcast``).
    Keeps the last few versions' flat buffers (copies, made once for the broadcast) for calls
    re-issued to a replacement, which was not in that version's broadcast (``object_ref``: one
    ``ray.put`` each, on demand)."""

    def __init__(self, pool, cfg):
        self.pool, self.timeout = pool, cfg.distributed.worker_timeout_s
        self.store, self.host, self.port = serve_store(self.timeout)
        self.group, self.generation, self.members = None, -1, None
        self.kept: dict[int, tuple] = {}  # version -> (specs, flat buffers): copies of its weights
        self.refs: dict[int, ray.ObjectRef] = {}

    def _form(self) -> None:
        # a dead member would keep the group's rendezvous waiting for it: check first (a dead actor
        # answers at once with an error; then this version goes through the object store)
        ray.get([a.alive.remote() for a in self.pool.actors], timeout=min(self.timeout, STARTUP_TIMEOUT_S))
        self.generation += 1
        size = len(self.pool.actors) + 1
        joins = [a.join.remote(self.host, self.port, self.generation, r + 1, size)
                 for r, a in enumerate(self.pool.actors)]
        self.group = new_group(self.host, self.port, self.generation, 0, size, self.timeout, store=self.store)
        ray.get(joins, timeout=self.timeout)
        self.members = list(self.pool.gens)

    def send(self, state: dict, version: int, keep: int) -> bool:
        """Broadcast ``state`` as ``version``; False (logged) when it failed: then the caller sends
        it through the object store and the group is formed again for the next version."""
        specs, buffers = flatten(state)  # copies: on a CPU learner ``state`` holds the live parameters
        self.kept[version] = (specs, buffers)
        for old in sorted(self.kept)[:-keep]:
            self.kept.pop(old)
            self.refs.pop(old, None)
        try:
            if self.group is None or self.members != self.pool.gens:
                self._form()
            acks = [a.receive.remote(version, specs) for a in self.pool.actors]
            broadcast(self.group, buffers)
            ray.get(acks, timeout=self.timeout)
            return True
        except (RuntimeError, *_DEAD) as exc:  # a member died or hung: gloo or Ray says so
            log.warning("weight broadcast of version %d failed (%s: %s); sent through the object store, "
                        "the group is formed again for the next version", version, type(exc).__name__, exc)
            self.group = None
            return False

    def close(self) -> None:
        """Drop the group and stop serving the rendezvous store."""
        self.group = self.store = None
        self.kept, self.refs = {}, {}

    def object_ref(self, version: int) -> ray.ObjectRef:
        if version not in self.refs:
            self.refs[version] = ray.put(unflatten(*self.kept[version]))
        return self.refs[version]
