"""Rollout sources: each turns a list of ``Request`` into one ``Group`` per request.

``rollout.strategy`` names the source (``ROLLOUT_SOURCES``); the step never branches on it:

- ``iid``: every completion sampled independently (``graft.rollout.sampler``).
- ``tree``: TreePO segment trees, siblings share prefixes (``graft.rollout.tree``).
- ``partial``: APRIL partial rollouts: groups decoded together with the ones carried over from
  earlier steps, decoding stops once ``rl.num_prompts`` groups are complete, the rest stay
  buffered (``graft.rollout.partial``). Its groups are the *complete* ones, not one per request.

Every source samples with one policy version and returns groups that are not verified yet (``graft.rewards.scoring`` does that), plus a ``SourceReport`` of what the sampling
cost. Randomness comes from each request's ``seed`` (row j of a request draws from row key
``mix(seed, j)``, ``graft.rollout.rng``), so a request's completions do not depend on which other
requests share the call, their order or the worker that samples them. Revision requests (``replaces`` set: hints with a ``prefix``, LUFFY's ``demonstration``)
are handled the same way by every source (``place_requests``): all of a call's sampled revisions
in one i.i.d. batch that continues prompt + prefix, the demonstration placed. ``state_dict`` / ``load_state_dict`` hold what a source keeps between
steps (the partial buffer), for checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from graft.config import Config
from graft.models.policy import Policy
from graft.rollout.partial import PartialRollouts
from graft.rollout.rng import row_keys
from graft.rollout.sampler import sample
from graft.rollout.tree import generated_tokens, sample_tree
from graft.rollout.types import Group, Request, Rollout


@dataclass
class SourceReport:
    """What one ``generate`` call cost and did.

    fwd_tokens:       forward-pass tokens of sampling (prompt prefill + generated tokens, per row).
    generated_tokens: tokens generated (a tree's shared tokens once); partial: this step's only.
    decode_steps:     decode steps of the longest row.
    counters:         the source's own metrics (``rollout/...``), e.g. partial's buffer sizes.
    prefill_time:     seconds in the prefill forwards (``DecodeBatch.prefill``, every one of the
                      call: a tree's fallback chains, the revisions' batch); None where the source
                      cannot tell prefill from decode (an engine: ``rollout.engine: vllm``).
    """

    fwd_tokens: float = 0.0
    generated_tokens: float = 0.0
    decode_steps: float = 0.0
    counters: dict[str, float] = field(default_factory=dict)
    prefill_time: float | None = 0.0

    def add(self, other: SourceReport) -> SourceReport:
        counters = dict(self.counters)
        for key, value in other.counters.items():
            counters[key] = counters.get(key, 0.0) + value
        prefill = None if self.prefill_time is None or other.prefill_time is None \
            else self.prefill_time + other.prefill_time
        return SourceReport(self.fwd_tokens + other.fwd_tokens, self.generated_tokens + other.generated_tokens,
                            self.decode_steps + other.decode_steps, counters, prefill)


def _fwd(rollouts: list[Rollout]) -> float:
    return float(sum(len(ro.prompt_ids) + len(ro.completion_ids) for ro in rollouts))


def _grouped(requests: list[Request], flat: list[Rollout]) -> list[Group]:
    groups, start = [], 0
    for r in requests:
        groups.append(Group(r.example, flat[start : start + r.n]))
        start += r.n
    return groups


def _plain(r: Request) -> bool:
    """A new group of the policy's own samples (not a revision, no prefix, no demonstration)."""
    return r.replaces is None and not r.prefix and not r.demonstration


def _generated(groups: list[Group]) -> float:
    return float(sum(generated_tokens(g) for g in groups))


def _decode_steps(groups: list[Group]) -> float:
    return float(max((len(ro.completion_ids) for g in groups for ro in g), default=0))


class IidSource:
    """``rl.num_generations`` (``Request.n``) independent completions per prompt."""

    lookahead = 0  # later steps this source samples ahead of the learner (graft.distributed's Ray source)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def sample_rows(self, policy: Policy, prompts: list[list[int]], counts: list[int], keys: list[int], version,
                    max_new_tokens: int | None = None, stop_context: list[list[int]] | None = None,
                    clock: dict[str, float] | None = None) -> list[Rollout]:
        """``counts[i]`` i.i.d. completions of token prompt ``i`` at the config's sampling settings,
        row keys ``keys`` (``stop_context``: per row, completion tokens it already has, which
        ``rl.stop`` strings may span and its positions start after; ``clock``: gains the
        prefill's seconds)."""
        cfg = self.cfg
        return sample(policy, prompts, max_new_tokens=max_new_tokens or cfg.rl.max_new_tokens,
                      temperature=cfg.rl.temperature, top_p=cfg.rl.top_p, keys=keys,
                      offsets=[len(c) for c in stop_context] if stop_context else None,
                      policy_version=version, repeats=counts, share_prefill=cfg.rollout.share_prefill,
                      compact=cfg.rollout.compact, stop_strings=cfg.rl.stop, stop_context=stop_context,
                      clock=clock)

    def sample_plain(self, policy: Policy, requests: list[Request], version,
                     clock: dict[str, float] | None = None) -> list[Group]:
        prompts = [policy.tokenizer.encode(r.example.prompt) for r in requests]
        counts = [r.n for r in requests]
        keys = row_keys([r.seed for r in requests], counts)
        return _grouped(requests, self.sample_rows(policy, prompts, counts, keys, version, clock=clock))

    def generate(self, policy: Policy, requests: list[Request], version: int) -> tuple[list[Group], SourceReport]:
        """One group per request, in order: the plain ones sampled together first, then the
        revisions (``place_requests``)."""
        plain = [i for i, r in enumerate(requests) if _plain(r)]
        revisions = [i for i, r in enumerate(requests) if not _plain(r)]
        out: list[Group | None] = [None] * len(requests)
        report = SourceReport()
        clock: dict[str, float] = {}  # seconds of the prefill forwards
        if plain:
            policy.module.eval()
            sampled = self.sample_plain(policy, [requests[i] for i in plain], version, clock)
            policy.module.train()
            report = SourceReport(_fwd([ro for g in sampled for ro in g]), _generated(sampled),
                                  _decode_steps(sampled))
            for i, g in zip(plain, sampled):
                out[i] = g
        placed, cost = place_requests(self, policy, [requests[i] for i in revisions], version, clock)
        for i, g in zip(revisions, placed):
            out[i] = g
        report.fwd_tokens += cost
        report.prefill_time = clock.get("prefill", 0.0)
        return out, report

    @staticmethod
    def check_config(cfg: Config) -> list[str]:
        """Problems of this source's config keys, each naming its key (empty when fine)."""
        return []

    def prompts_wanted(self, requested: int) -> int:
        """New prompts the next step should bring (the curriculum's ``requested``, or more)."""
        return requested

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict | None) -> None:
        pass

    def close(self) -> None:
        """Free what the source holds beyond the run (an engine: ``rollout.engine: vllm``)."""


class TreeSource(IidSource):
    """TreePO segment trees (``rollout.segment_len``, ``branch``, ``max_depth``, ``branch_entropy``).
    Every plain request must ask for ``rl.num_generations`` completions."""

    @staticmethod
    def check_config(cfg: Config) -> list[str]:
        from graft.rollout.tree import check_tree_config

        return check_tree_config(cfg)

    def sample_plain(self, policy: Policy, requests: list[Request], version,
                     clock: dict[str, float] | None = None) -> list[Group]:
        cfg, ro = self.cfg, self.cfg.rollout
        G = cfg.rl.num_generations
        assert all(r.n == G for r in requests), "tree rollouts sample whole groups of rl.num_generations"
        prompts = [policy.tokenizer.encode(r.example.prompt) for r in requests]
        flat = sample_tree(policy, prompts, num_generations=G, max_new_tokens=cfg.rl.max_new_tokens,
                           temperature=cfg.rl.temperature, top_p=cfg.rl.top_p, keys=[r.seed for r in requests],
                           policy_version=version, segment_len=ro.segment_len, branch=ro.branch,
                           max_depth=ro.max_depth, branch_entropy=ro.branch_entropy, stop_strings=cfg.rl.stop,
                           clock=clock)
        return _grouped(requests, flat)


class PartialSource(IidSource):
    """APRIL partial rollouts: plain requests join the buffer of groups in flight; the groups
    returned are the ones complete when decoding stopped (``graft.rollout.partial``). Prefixed
    and demonstration requests (mixer revisions of complete groups) are sampled i.i.d. at once."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.buffer = PartialRollouts()

    @staticmethod
    def check_config(cfg: Config) -> list[str]:
        out = []
        if cfg.select.dynamic_sampling:
            out.append("config key 'rollout.strategy': partial does not combine with "
                       "select.dynamic_sampling=true (a step trains the groups that completed, not a selection)")
        extra = math.ceil(cfg.rollout.over_provision * cfg.rl.num_prompts) - cfg.rl.num_prompts
        if extra > cfg.select.max_extra_prompts:
            out.append(f"config key 'rollout.over_provision': {cfg.rollout.over_provision} needs {extra} extra "
                       f"prompts per step, more than select.max_extra_prompts={cfg.select.max_extra_prompts}")
        return out

    def prompts_wanted(self, requested: int) -> int:
        """The in-flight count less the buffered groups (>= rl.num_prompts)."""
        return max(requested, self.buffer.new_prompts(self.cfg))

    def generate(self, policy: Policy, requests: list[Request], version: int) -> tuple[list[Group], SourceReport]:
        plain = [r for r in requests if _plain(r)]
        others = [r for r in requests if not _plain(r)]
        if others and plain:
            raise ValueError("partial rollouts: a request list mixes new prompts and revisions")
        if others:
            return super().generate(policy, others, version)
        clock: dict[str, float] = {}  # seconds of the prefill forward
        examples, groups, info = self.buffer.step(policy, [r.example for r in plain], self.cfg, version,
                                                  [r.seed for r in plain], clock)
        fwd = info.pop("perf/rollout_fwd_tokens")
        generated, steps = info.pop("rollout/generated_tokens"), info.pop("rollout/decode_steps")
        out = [Group(ex, g) for ex, g in zip(examples, groups)]
        return out, SourceReport(fwd, generated, steps, info, clock.get("prefill", 0.0))

    def state_dict(self) -> dict:
        return self.buffer.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if state is not None:
            self.buffer.load_state_dict(state)


def place_requests(source: IidSource, policy: Policy, requests: list[Request], version: int,
                   clock: dict[str, float] | None = None) -> tuple[list[Group], float]:
    """One group per request with a ``prefix`` (hint) or a ``demonstration`` (LUFFY), in order,
    and the sampling's forward tokens.

    Every request that samples (``n > 0``) goes into one i.i.d. batch that continues prompt +
    prefix, with room for the longest continuation: each completion is prefix + continuation cut
    so that the whole stays within ``rl.max_new_tokens`` (cut rows end with 'length'); row j of a
    request continues from row key ``mix(request.seed, j)`` at the positions after its prefix;
    prefix tokens get behaviour log-probability 0 (probability 1, they were placed) and count in
    ``demo_len``. A demonstration becomes one rollout demonstration + EOS with log-probabilities
    0, ``demo_len`` = its length and ``policy_shaping`` on, after the request's sampled ones.
    ``clock``: gains the prefill's seconds."""
    tok, budget = policy.tokenizer, source.cfg.rl.max_new_tokens
    prompts = [tok.encode(r.example.prompt) for r in requests]
    rollouts: list[list[Rollout]] = [[] for _ in requests]
    cost = 0.0
    hinted = [i for i, r in enumerate(requests) if r.n > 0]
    if hinted:
        contexts = [prompts[i] + list(requests[i].prefix) for i in hinted]
        counts = [requests[i].n for i in hinted]
        policy.module.eval()
        flat = source.sample_rows(policy, contexts, counts, row_keys([requests[i].seed for i in hinted], counts),
                                  version,
                                  max_new_tokens=budget - min(len(requests[i].prefix) for i in hinted),
                                  stop_context=[list(requests[i].prefix) for i in hinted
                                                for _ in range(requests[i].n)], clock=clock)
        policy.module.train()
        rows = [c for c, n in zip(contexts, counts) for _ in range(n)]  # each row's context
        cost = float(sum(len(c) + len(ro.completion_ids) for c, ro in zip(rows, flat)))
        start = 0
        for i, n in zip(hinted, counts):
            hint, room = list(requests[i].prefix), budget - len(requests[i].prefix)
            for ro in flat[start : start + n]:
                cont = ro.completion_ids[:room]
                ids = hint + cont
                rollouts[i].append(Rollout(
                    prompt_ids=list(prompts[i]), completion_ids=ids, logprobs=[0.0] * len(hint) + ro.logprobs[:room],
                    policy_version=version, finish_reason=ro.finish_reason if len(ro.completion_ids) <= room else "length",
                    text=tok.decode(ids), demo_len=len(hint)))
            start += n
    for i, r in enumerate(requests):
        if r.demonstration:
            ids = tok.encode(r.example.demonstration) + [tok.eos_id]
            rollouts[i].append(Rollout(prompt_ids=list(prompts[i]), completion_ids=ids, logprobs=[0.0] * len(ids),
                                       policy_version=version, finish_reason="stop", text=r.example.demonstration,
                                       demo_len=len(ids), policy_shaping=True))
    return [Group(r.example, ros) for r, ros in zip(requests, rollouts)], cost


ROLLOUT_SOURCES: dict[str, type] = {"iid": IidSource, "tree": TreeSource, "partial": PartialSource}
"""``rollout.strategy`` -> source class, built with the run's config."""


def _vllm_source(cfg: Config) -> type:
    from graft.rollout.vllm_engine import VllmSource  # vllm itself is imported on first use

    return VllmSource


ROLLOUT_ENGINES: dict[str, object] = {"graft": lambda cfg: ROLLOUT_SOURCES[cfg.rollout.strategy],
                                      "vllm": _vllm_source}
"""``rollout.engine`` -> the source class for a config: graft's own sampler runs every
``rollout.strategy``; ``vllm`` is ``graft.rollout.vllm_engine.VllmSource`` (i.i.d.)."""


def source_class(cfg: Config) -> type:
    """The rollout source class ``cfg`` names (``rollout.engine``, then ``rollout.strategy``)."""
    return ROLLOUT_ENGINES[cfg.rollout.engine](cfg)
