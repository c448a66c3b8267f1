"""The Ray backend: rollout and reward worker actors driven from the learner's process.

    learner (this process) --ray.put(weights) once per version--> object store
    RaySource.generate: requests --contiguous chunks--> RolloutWorker x rollout_workers
                        (each: its policy copy, the configured rollout source: graft's sampler
                        or a vLLM engine of its own) --> groups, in order
    RayVerifier.verify: groups --contiguous chunks--> RewardWorker x reward_workers (the task's
                        verifier, the code sandbox included) --> verdicts filled in place

The driver-side ``RaySource`` has the local sources' interface (``generate``, ``prompts_wanted``,
``state_dict``, ``check_config``), so the step does not know where it samples.

Randomness. Every request arrives keyed by the driver (``Request.seed``, ``graft.rollout.rng``):
a completion's tokens are a function of its key and the weights, so 1 worker, 2 workers and the
local backend draw the same tokens, and a re-issued chunk draws what the lost one would have.

Faults (``WorkerPool``). A worker whose call fails with a dead actor, or does not answer within
``distributed.worker_timeout_s``, is killed and replaced by a fresh actor (a rollout worker loads
the weights of the call's version from the object store) and the call is re-issued with the same
requests, weights and randomness: no group is lost or sampled twice. Each replacement is logged
(logger ``graft.distributed``).

Asynchronous mode (``max_staleness`` k >= 1). The loop announces the next k steps' requests
(``ahead``); after taking step s's groups, ``generate`` submits every announced step t that has no
job yet, with the current weights (version s >= t - k: admission control, checked), and chains
each chunk's verification to its generation on the reward workers. Those jobs run while the
learner trains step s. Their rollouts carry the version that sampled them (``policy_version`` and
``token_versions``), so the loss treats older tokens like partial rollouts' stale ones. A
checkpoint saves those jobs finished, with their groups (``RaySource.state_dict``), so a resumed
asynchronous run trains what the uninterrupted one does.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import ray
import torch
from ray.exceptions import GetTimeoutError, RayActorError, WorkerCrashedError

from graft.config import Config
from graft.errors import GraftError
from graft.rollout.sources import SourceReport
from graft.rollout.types import Group, Request

log = logging.getLogger("graft.distributed")

_DEAD = (RayActorError, WorkerCrashedError, GetTimeoutError)
STARTUP_TIMEOUT_S = 120.0


# ---------------------------------------------------------------- the actors (plain classes)


class RolloutWorker:
    """A policy copy and the configured rollout source, in a worker process.

    Its calls run one at a time, in order (Ray's default concurrency group), except ``join`` and
    ``receive`` (``distributed.weight_sync: broadcast``), which run in their own group (threads), so
    a version's weights can arrive while the previous version still generates."""

    def __init__(self, cfg: Config):
        from graft.models.load import create_policy
        from graft.rollout.sources import source_class

        torch.set_num_threads(cfg.threads)
        self.cfg = cfg
        self.policy = create_policy(worker_model(cfg), cfg.seed)
        self.source = source_class(cfg)(cfg)
        if cfg.rollout.engine == "vllm" and cfg.distributed.rollout_worker_gpus > 0:
            self.source.engine_device = "cuda"  # the engine on the GPU Ray assigned, the copy on the CPU
        self.version: int | None = None
        self.delay = 0.0  # tests: seconds to sleep before each call (a hung worker)
        self.group = None  # broadcast: this worker's member of the learner's gloo group
        self.received: dict[int, dict] = {}  # broadcast: version -> state dict, newest few
        self.arrived = threading.Condition()

    @ray.method(concurrency_group="weights")
    def alive(self) -> bool:
        """Answers even while a call generates (the broadcast's check before forming a group)."""
        return True

    @ray.method(concurrency_group="weights")
    def join(self, host: str, port: int, generation: int, rank: int, size: int) -> bool:
        """Become rank ``rank`` of the learner's broadcast group of ``generation``."""
        from graft.distributed.weights import new_group

        self.group = new_group(host, port, generation, rank, size, self.cfg.distributed.worker_timeout_s)
        return True

    @ray.method(concurrency_group="weights")
    def receive(self, version: int, specs: list) -> bool:
        """Take part in the broadcast of ``version``'s weights (``specs``: their layout)."""
        from graft.distributed.weights import broadcast, empty_buffers, unflatten

        buffers = empty_buffers(specs)
        broadcast(self.group, buffers)
        with self.arrived:
            self.received[version] = unflatten(specs, buffers)
            for old in sorted(self.received)[: -(self.cfg.distributed.max_staleness + 2)]:
                del self.received[old]  # older than any call still to come can ask for
            self.arrived.notify_all()
        return True

    def _weights(self, weights: list, version: int) -> dict:
        """``version``'s state dict: from the object store when the call carries a reference
        (``weights[0]``), else as broadcast (waiting for it to arrive)."""
        timeout = self.cfg.distributed.worker_timeout_s
        if weights[0] is not None:
            return ray.get(weights[0], timeout=timeout)
        with self.arrived:
            if not self.arrived.wait_for(lambda: version in self.received, timeout=timeout):
                raise GraftError(f"rollout worker: the weights of version {version} were not broadcast to it "
                                 f"within distributed.worker_timeout_s={timeout}")
            return self.received[version]

    def where(self) -> tuple[int, str]:
        """(process id, Ray node id)."""
        return os.getpid(), ray.get_runtime_context().get_node_id()

    def set_delay(self, seconds: float) -> None:
        self.delay = seconds

    def generate(self, weights: list, version: int, requests: list[Request]):
        """Groups for ``requests`` (keyed) with the weights of ``version`` (``weights[0]``: their
        object ref, or None when they were broadcast; loaded only when this copy holds another version)."""
        if self.delay:
            time.sleep(self.delay)
        if version != self.version:
            self.policy.module.load_state_dict(self._weights(weights, version))
            self.version = version
        return self.source.generate(self.policy, requests, version)


def worker_model(cfg: Config):
    """The ``model`` section a rollout worker builds its policy copy from. A worker that reserves GPUs
    (``distributed.rollout_worker_gpus`` > 0) samples on the GPU Ray assigned it: graft's engine
    samples with the copy, so the copy goes on ``cuda``; a vLLM engine holds its own weights on the
    GPU, so the copy (the weights' way in from the object store) stays on the CPU. Without GPUs the
    copy is where ``model.device`` says."""
    if cfg.distributed.rollout_worker_gpus > 0:
        return cfg.model.model_copy(update={"device": "cpu" if cfg.rollout.engine == "vllm" else "cuda"})
    return cfg.model


def gpu_shortfall(cfg: Config, cluster_gpus: float) -> str | None:
    """Why the rollout workers' GPU reservations cannot all be met by a cluster with ``cluster_gpus``
    GPUs (None when they can). Checked before any actor starts: an actor Ray cannot place would
    otherwise wait, unscheduled, until the start-up timeout."""
    d = cfg.distributed
    want = d.rollout_workers * d.rollout_worker_gpus
    if want <= cluster_gpus + 1e-9:
        return None
    return (f"config key 'distributed.rollout_worker_gpus': {d.rollout_workers} rollout workers x "
            f"{d.rollout_worker_gpus:g} GPU = {want:g} GPUs, but the Ray cluster has {cluster_gpus:g}")


class RewardWorker:
    """The task's verifier in a worker process."""

    def __init__(self, cfg: Config):
        from graft.tasks.build import build_task

        torch.set_num_threads(cfg.threads)
        self.task = build_task(cfg.task)
        self.delay = 0.0

    def where(self) -> tuple[int, str]:
        return os.getpid(), ray.get_runtime_context().get_node_id()

    def set_delay(self, seconds: float) -> None:
        self.delay = seconds

    def verify(self, payload) -> list[list[tuple[float, bool, dict]]]:
        """Verdicts (reward, correct, parts) per rollout per group; ``payload``: groups, or a
        rollout worker's answer (groups, report, state) when chained to its generation."""
        from graft.rewards.scoring import verify_groups

        if self.delay:
            time.sleep(self.delay)
        groups = payload[0] if isinstance(payload, tuple) else payload
        verify_groups(self.task, groups)
        return [[(ro.verifier_reward, ro.correct, ro.parts) for ro in g] for g in groups]


def apply_verdicts(groups: list[Group], verdicts) -> None:
    for g, row in zip(groups, verdicts):
        for ro, (reward, correct, parts) in zip(g, row):
            ro.verifier_reward, ro.correct, ro.parts = reward, correct, dict(parts)


# ---------------------------------------------------------------- splitting and seeds


def chunks(n_items: int, n_workers: int) -> list[slice]:
    """``n_items`` split into at most ``n_workers`` contiguous, non-empty, balanced slices."""
    n = min(n_items, n_workers)
    bounds = [round(i * n_items / n) for i in range(n + 1)] if n else [0]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


# ---------------------------------------------------------------- workers that can die


def _kill(actor) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception as exc:  # noqa: BLE001 -- already gone is fine
        log.debug("ray.kill: %s", exc)


@dataclass
class Call:
    """One remote call to the worker in ``slot``: ``submit(actor) -> ObjectRef`` (re-run as is
    on a replacement); ``what`` says what it carries (for the log)."""

    slot: int
    submit: object
    what: str
    ref: object = None
    actor_gen: int = -1
    reissued: bool = False
    replacements: int = 0
    before_reissue: object = None  # () -> None, run before the call goes to a replacement


class WorkerPool:
    """``size`` actors of ``cls`` (one role), each replaced when it dies or hangs."""

    def __init__(self, role: str, cls: type, cfg: Config, size: int, placement=None, gpus: float = 0.0):
        self.role, self.cfg, self.size, self.gpus = role, cfg, size, gpus  # gpus: each actor's num_gpus
        groups = {"weights": 3} if cls is RolloutWorker else None  # alive / join / receive beside the calls
        self.remote_cls = ray.remote(concurrency_groups=groups)(cls) if groups else ray.remote(cls)
        self.placement = placement  # slot -> scheduling_strategy (None: anywhere)
        self.actors = [self._create(slot) for slot in range(size)]
        self.where = self._ready(list(range(size)))  # per slot: (pid, node id)
        self.gens = [0] * size  # how many times each slot was replaced
        self.replaced: list[str] = []  # one line per replacement (also logged)

    def _create(self, slot: int):
        options = {"num_cpus": self.cfg.distributed.worker_cpus, "max_restarts": 0}
        if self.gpus:
            options["num_gpus"] = self.gpus
        if self.placement is not None:
            options["scheduling_strategy"] = self.placement(slot)
        return self.remote_cls.options(**options).remote(self.cfg)

    def _ready(self, slots: list[int]) -> list[tuple[int, str]]:
        """Wait until the actors in ``slots`` are up (built their policy or task; this wait is
        not a call's ``worker_timeout_s``: ``STARTUP_TIMEOUT_S`` at least) and log where they run."""
        timeout = max(STARTUP_TIMEOUT_S, self.cfg.distributed.worker_timeout_s)
        try:
            where = ray.get([self.actors[s].where.remote() for s in slots], timeout=timeout)
        except GetTimeoutError:
            raise GraftError(f"{self.role} workers did not start within {timeout} s (does the cluster have "
                             f"distributed.worker_cpus={self.cfg.distributed.worker_cpus} free per worker?)"
                             ) from None
        for slot, (pid, node) in zip(slots, where):
            log.info("%s worker %d: pid %d on node %s", self.role, slot, pid, node)
        return where

    def _start(self, slot: int):
        self.actors[slot] = self._create(slot)
        self.where[slot] = self._ready([slot])[0]

    def submit(self, call: Call) -> Call:
        call.actor_gen = self.gens[call.slot]
        call.ref = call.submit(self.actors[call.slot])
        return call

    def _replace(self, call: Call, why: str) -> None:
        call.replacements += 1
        if call.replacements > self.cfg.distributed.max_replacements:
            raise GraftError(f"{self.role} worker {call.slot}: {why}, and its replacements failed too "
                             f"(distributed.max_replacements={self.cfg.distributed.max_replacements})")
        if call.actor_gen == self.gens[call.slot]:  # not replaced yet by another call's failure
            _kill(self.actors[call.slot])
            old = self.where[call.slot][0]
            self._start(call.slot)
            self.gens[call.slot] += 1
            line = (f"{self.role} worker {call.slot} (pid {old}) {why}: replaced by a new actor "
                    f"(pid {self.where[call.slot][0]}); re-issued {call.what}")
            self.replaced.append(line)
            log.warning(line)
        call.reissued = True
        if call.before_reissue is not None:
            call.before_reissue()
        self.submit(call)

    def gather(self, calls: list[Call]) -> list:
        """Every call's result, in order; each call gets ``worker_timeout_s`` from now, and from
        each re-issue."""
        timeout = self.cfg.distributed.worker_timeout_s
        results: list = [None] * len(calls)
        deadline = {i: time.monotonic() + timeout for i in range(len(calls))}
        pending = {c.ref: i for i, c in enumerate(calls)}
        while pending:
            wait = max(0.0, min(deadline[i] for i in pending.values()) - time.monotonic())
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    results[i] = ray.get(ref, timeout=timeout)
                except _DEAD as exc:
                    self._replace(calls[i], f"died ({type(exc).__name__})")
                    pending[calls[i].ref], deadline[i] = i, time.monotonic() + timeout
            now = time.monotonic()
            for ref, i in list(pending.items()):
                if deadline[i] <= now:
                    del pending[ref]
                    self._replace(calls[i], f"did not answer within distributed.worker_timeout_s={timeout}")
                    pending[calls[i].ref], deadline[i] = i, time.monotonic() + timeout
        return results

    def close(self) -> None:
        for actor in self.actors:
            _kill(actor)
        self.actors = []


# ---------------------------------------------------------------- the driver-side stages


@dataclass
class Job:
    """One step's requests, submitted: the generation calls per chunk and, when chained, the
    verification calls (asynchronous jobs); ``version``: the weights that sample them."""

    step: int
    requests: list[Request]
    version: int
    slices: list[slice]
    gen: list[Call]
    verify: list[Call] = field(default_factory=list)
    # its groups and report once taken ahead of its step (a checkpoint: ``RaySource.state_dict``)
    result: tuple[list[Group], SourceReport] | None = None


class RaySource:
    """The rollout source of the Ray backend (same interface as ``graft.rollout.sources``')."""

    def __init__(self, cfg: Config, rollouts: WorkerPool, rewards: WorkerPool, verified: set[int]):
        self.cfg, self.rollouts, self.rewards, self.verified = cfg, rollouts, rewards, verified
        self.lookahead = cfg.distributed.max_staleness  # steps the loop announces ahead (0 = sync)
        self.weights: ray.ObjectRef | None = None  # the current version's ref (None: broadcast)
        self.version: int | None = None
        self.sync = None  # weight_sync: broadcast -> its learner side (graft.distributed.weights)
        if cfg.distributed.weight_sync == "broadcast":
            from graft.distributed.weights import WeightBroadcast

            self.sync = WeightBroadcast(rollouts, cfg)
        self.pending: dict[int, Job] = {}  # step -> its job, submitted ahead
        self.wanted: dict[int, list[Request]] = {}  # step -> requests announced, not yet submitted

    @staticmethod
    def check_config(cfg: Config) -> list[str]:
        from graft.distributed.checks import distributed_problems

        return distributed_problems(cfg)

    def prompts_wanted(self, requested: int) -> int:
        return requested

    def state_dict(self) -> dict:
        """What a checkpoint keeps of an asynchronous source: the jobs sampled ahead (later steps'
        groups from older weights), each finished first (waited for, verified) and saved with its
        groups, and the requests announced but not yet admitted. A run resumed from it trains the
        groups the uninterrupted run trains: those of the same, older weights. The live run takes
        the same finished jobs, so saving changes only when their wait happens. Synchronous: {}."""
        done = []
        for step, job in sorted(self.pending.items()):
            if job.result is None:
                job.result = self._take(job)
            done.append((step, job.requests, job.version, job.result))
        return {"done": done, "wanted": sorted(self.wanted.items())} if done or self.wanted else {}

    def load_state_dict(self, state: dict | None) -> None:
        state = state or {}
        self.pending = {step: Job(step, requests, version, [], [], result=result)
                        for step, requests, version, result in state.get("done", [])}
        self.wanted = dict(state.get("wanted", []))

    def announced(self, step: int) -> bool:
        """Whether ``step``'s requests are known already (submitted or waiting to be)."""
        return step in self.pending or step in self.wanted

    def ahead(self, step: int, requests: list[Request]) -> None:
        """The requests of a later ``step``, to sample early (``lookahead`` > 0)."""
        if step not in self.pending:
            self.wanted[step] = requests

    def _sync(self, policy, version: int) -> None:
        """The learner's weights (on the CPU) to the workers once per version: one ``ray.put``, or
        a broadcast (``weight_sync: broadcast``; the object store when it fails)."""
        if version != self.version:
            state = {k: v.detach().to("cpu") for k, v in policy.module.state_dict().items()}
            sent = self.sync is not None and self.sync.send(state, version, keep=self.lookahead + 1)
            self.weights, self.version = (None if sent else ray.put(state)), version

    def _box(self, slot: int) -> list:
        """What a call to ``slot`` carries for the current version: its object ref, or None when
        the version was broadcast to the slot's actor (not when the actor was replaced since)."""
        if self.weights is None and self.sync.members[slot] != self.rollouts.gens[slot]:
            return [self.sync.object_ref(self.version)]
        return [self.weights]

    def _submit(self, requests: list[Request], step: int, chain_verify: bool) -> Job:
        slices = chunks(len(requests), self.rollouts.size)
        version = self.version
        job = Job(step, requests, version, slices, [])
        for c, sl in enumerate(slices):
            part, box = requests[sl], self._box(c)
            # a replacement was not in the broadcast: it gets the version through the object store
            refill = None if box[0] is not None else (lambda box=box: box.__setitem__(0, self.sync.object_ref(version)))
            call = Call(c, lambda actor, part=part, box=box: actor.generate.remote(box, version, part),
                        f"{len(part)} requests of step {step}", before_reissue=refill)
            job.gen.append(self.rollouts.submit(call))
        if chain_verify:
            for c, gen in enumerate(job.gen):
                slot = c % self.rewards.size
                call = Call(slot, lambda actor, gen=gen: actor.verify.remote(gen.ref),
                            f"verification of {len(requests[slices[c]])} groups of step {step}")
                job.verify.append(self.rewards.submit(call))
        return job

    def _take(self, job: Job) -> tuple[list[Group], SourceReport]:
        if job.result is not None:  # finished ahead (a checkpoint: always a chained, verified job)
            self.verified.update(id(g) for g in job.result[0])  # restored groups are new objects
            return job.result
        answers = self.rollouts.gather(job.gen)
        groups: list[Group] = []
        report = SourceReport()
        for groups_c, report_c in answers:
            groups += groups_c
            steps = max(report.decode_steps, report_c.decode_steps)  # the longest row of the step
            report = report.add(report_c)
            report.decode_steps = steps
        report.prefill_time = None  # the workers' seconds, not a share of the learner's wait
        if job.verify:
            for gen, ver in zip(job.gen, job.verify):
                if gen.reissued:  # chained to the lost generation: verify the new one
                    self.rewards.submit(ver)
            for sl, verdicts in zip(job.slices, self.rewards.gather(job.verify)):
                apply_verdicts(groups[sl], verdicts)
            self.verified.update(id(g) for g in groups)
        if self.lookahead:  # every token records the version that sampled it
            for g in groups:
                for ro in g:
                    ro.token_versions = [ro.policy_version] * len(ro.completion_ids)
        return groups, report

    def generate(self, policy, requests: list[Request], version: int) -> tuple[list[Group], SourceReport]:
        """One group per request, in order; asynchronous: the job submitted ahead for this step
        when its requests are these, then the announced later steps are submitted."""
        self._sync(policy, version)
        job = self.pending.pop(version, None)
        for step in [s for s in self.pending if s < version]:  # announced, never asked (an SFT step)
            del self.pending[step]
        if job is None or job.requests != requests:
            job = self._submit(requests, version, chain_verify=False)
        for step in sorted(self.wanted):
            if step <= version or step in self.pending:
                del self.wanted[step]
            elif step - self.lookahead <= self.version:  # admission control: fresh enough to start
                self.pending[step] = self._submit(self.wanted.pop(step), step, chain_verify=True)
        return self._take(job)


class RayVerifier:
    """The verifier stage of the Ray backend: groups split over the reward workers."""

    def __init__(self, rewards: WorkerPool, verified: set[int]):
        self.rewards, self.verified = rewards, verified

    def verify(self, task, groups: list[Group]) -> None:
        todo = [g for g in groups if id(g) not in self.verified]
        self.verified.difference_update(id(g) for g in groups)  # verified once, by their chained job
        if not todo or not any(len(g) for g in todo):
            return
        slices = chunks(len(todo), self.rewards.size)
        calls = [self.rewards.submit(Call(c, lambda actor, part=todo[sl]: actor.verify.remote(part),
                                          f"verification of {len(todo[sl])} groups"))
                 for c, sl in enumerate(slices)]
        for sl, verdicts in zip(slices, self.rewards.gather(calls)):
            apply_verdicts(todo[sl], verdicts)


# ---------------------------------------------------------------- the backend


def connect(d) -> bool:
    """Join the cluster ``distributed.address`` (else RAY_ADDRESS) names, or start a local one;
    True when this call started Ray (and so should shut it down). A Ray already initialised in
    this process (a test's cluster) is used as it is."""
    if ray.is_initialized():
        return False
    address = d.address or os.environ.get("RAY_ADDRESS") or None
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        key = "distributed.address" if d.address else "RAY_ADDRESS"
        raise GraftError(f"config key '{key}': cannot reach the Ray cluster at {address!r} ({exc})") from None
    return True


class RayBackend:
    """``distributed.backend: ray``: the pools of workers, the source and the verifier over them."""

    def __init__(self, cfg: Config):
        d = cfg.distributed
        self.started = connect(d)
        self.group = None
        if d.rollout_worker_gpus > 0:
            short = gpu_shortfall(cfg, ray.cluster_resources().get("GPU", 0.0))
            if short:
                if self.started:
                    ray.shutdown()
                raise GraftError(short)
        placement = None
        if d.rollout_placement == "spread":  # one rollout worker per node
            from ray.util.placement_group import placement_group
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            bundle = {"CPU": max(d.worker_cpus, 0.01), **({"GPU": d.rollout_worker_gpus} if d.rollout_worker_gpus else {})}
            self.group = placement_group([bundle] * d.rollout_workers, strategy="STRICT_SPREAD")
            try:
                ray.get(self.group.ready(), timeout=d.worker_timeout_s)
            except GetTimeoutError:
                raise GraftError(f"config key 'distributed.rollout_placement': spread needs "
                                 f"{d.rollout_workers} nodes with {bundle['CPU']} free CPU each; the cluster "
                                 f"could not place them within {d.worker_timeout_s} s") from None
            group = self.group

            def placement(slot: int):
                return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=slot)
        self.rollouts = WorkerPool("rollout", RolloutWorker, cfg, d.rollout_workers, placement,
                                   gpus=d.rollout_worker_gpus)
        self.rewards = WorkerPool("reward", RewardWorker, cfg, d.reward_workers)
        verified: set[int] = set()
        self.source = RaySource(cfg, self.rollouts, self.rewards, verified)
        self.verifier = RayVerifier(self.rewards, verified)

    def close(self) -> None:
        if self.source.sync is not None:
            self.source.sync.close()
        self.rollouts.close()
        self.rewards.close()
        if self.group is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.group)
        if self.started:
            ray.shutdown()
