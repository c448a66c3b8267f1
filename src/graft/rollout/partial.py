"""Partial rollouts: APRIL (Zhou et al. 2025, "APRIL: Active Partial Rollouts in Reinforcement
Learning to Tame Long-tail Generation", arXiv 2509.18521, Sec. 3).

A synchronous RL step waits for its slowest completion: with G completions for each of P
prompts, one long answer keeps the whole decode batch running. APRIL instead

1. over-provisions: groups for ``in_flight = ceil(over_provision x P)`` prompts are decoded
   together (the groups carried over from the last step first, then new prompts);
2. aborts: decoding stops as soon as P groups are complete (every row of the group has emitted
   EOS or reached ``rl.max_new_tokens``); the groups complete at that moment (P, or more when
   several complete on the same token) are trained on;
3. recycles: the other groups, finished rows and unfinished ones alike, stay in a buffer and
   next step continue decoding where they stopped (the prefix is prefilled again, since the
   KV cache is not kept between steps).

Tokens sampled in an earlier step come from an older policy. Every completion records, per
token, the policy version that sampled it (``Rollout.token_versions``); the loss either keeps
them, with their stored behaviour log-probabilities, so that the PPO ratio corrects for the
policy change (``rollout.stale: correct``, optionally decoupled with a truncated importance
weight, ``rollout.stale_is_cap``), or gives them zero weight (``stale: mask``). A buffered
completion started more than ``rollout.max_staleness`` versions ago is dropped and its row starts
again from the prompt.

Departures from the paper: the paper recycles into its next rollout batch inside an
asynchronous engine (SGLang) and trains on the completed ones; here decoding is one synchronous
batch per step, a group is the unit (a group is trained only when all its rows are complete),
a group that completes on the same token as the P-th is trained too (rather than wait a step
and become stale), and staleness is bounded per completion by ``max_staleness``.

Randomness: row j of a request's group has row key ``mix(request.seed, j)`` and keeps it in the
buffer (``Rollout.key``); its token at completion position t is drawn at ``uniforms(key, t)``
whichever step decodes it, so a row's tokens do not depend on when it is finished or on the other
groups in flight (only on the weights that sample them). A restarted row (too stale) takes the key
``mix(old key, version)``.

The buffer is training state: ``PartialRollouts.state_dict`` goes into every checkpoint.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import torch

from graft.config import Config
from graft.models.policy import Policy
from graft.rollout import rng
from graft.rollout.sampler import Group, GroupStop, Rollout, sample
from graft.tasks.base import Example

RUNNING = "aborted"
"""finish_reason of a row that has not finished yet (stopped by the group condition)."""


def in_flight(cfg: Config) -> int:
    """Prompts whose groups are decoded together each step: ceil(over_provision x num_prompts)."""
    return math.ceil(cfg.rollout.over_provision * cfg.rl.num_prompts)


def _empty_row(prompt_ids: list[int], version: int, key: int) -> Rollout:
    return Rollout(prompt_ids=list(prompt_ids), completion_ids=[], logprobs=[], policy_version=version,
                   finish_reason=RUNNING, token_versions=[], key=key)


def expired(ro: Rollout, version: int, max_staleness: int) -> bool:
    """True when the completion's first token was sampled more than ``max_staleness`` versions
    before ``version``."""
    return bool(ro.token_versions) and version - ro.token_versions[0] > max_staleness


@dataclass
class PartialRollouts:
    """The buffer of groups in flight between steps: (example, its G rows), oldest first. A row
    with finish_reason 'aborted' is still running; its tokens so far are kept."""

    pending: list[tuple[Example, Group]] = field(default_factory=list)

    def state_dict(self) -> dict:
        return {"pending": copy.deepcopy(self.pending)}

    def load_state_dict(self, state: dict) -> None:
        self.pending = copy.deepcopy(state["pending"])

    def new_prompts(self, cfg: Config) -> int:
        """How many new prompts this step takes: the in-flight count less the buffered groups
        (>= num_prompts, since each step trains at least that many groups)."""
        return in_flight(cfg) - len(self.pending)

    def step(
        self, policy: Policy, examples: list[Example], cfg: Config, version: int, seeds: list[int],
        clock: dict[str, float] | None = None,
    ) -> tuple[list[Example], list[Group], dict]:
        """Continue the buffered groups and start ``examples`` (their requests' keys ``seeds``), all
        in one decode batch, until
        ``rl.num_prompts`` groups are complete. Returns the complete groups' examples, the groups
        (new Rollout objects, unscored, oldest first) and the step's rollout metrics; the others
        stay buffered. ``clock``: gains the prefill's seconds (``DecodeBatch.prefill``)."""
        G, want, max_new = cfg.rl.num_generations, cfg.rl.num_prompts, cfg.rl.max_new_tokens
        restarted = 0
        pending: list[tuple[Example, Group]] = []
        for ex, g in self.pending:
            rows = []
            for ro in g:
                if expired(ro, version, cfg.rollout.max_staleness):  # too old: start the row again
                    ro, restarted = _empty_row(ro.prompt_ids, version, rng.mix(ro.key, version)), restarted + 1
                rows.append(ro)
            pending.append((ex, rows))
        resumed = len(pending)
        tok = policy.tokenizer
        pending += [(ex, [_empty_row(tok.encode(ex.prompt), version, rng.mix(seed, j)) for j in range(G)])
                    for ex, seed in zip(examples, seeds, strict=True)]

        # rows to decode: a fresh group shares its prompt's prefill; a resumed row's context is
        # its prompt plus its completion so far, with the rest of rl.max_new_tokens as its budget
        contexts, counts, budgets, group_of, slots = [], [], [], [], []
        for gi, (_, g) in enumerate(pending):
            running = [j for j, ro in enumerate(g) if ro.finish_reason == RUNNING]
            if len(running) == G and not any(ro.completion_ids for ro in g):
                contexts.append(g[0].prompt_ids)
                counts.append(G)
            else:
                contexts += [g[j].prompt_ids + g[j].completion_ids for j in running]
                counts += [1] * len(running)
            budgets += [max_new - len(g[j].completion_ids) for j in running]
            group_of += [gi] * len(running)
            slots += [(gi, j) for j in running]
        complete_before = sum(1 for _, g in pending if all(ro.finish_reason != RUNNING for ro in g))
        generated = decode_steps = aborted = 0
        if slots and complete_before < want:
            policy.module.eval()
            out = sample(
                policy, contexts, max_new_tokens=max_new, temperature=cfg.rl.temperature, top_p=cfg.rl.top_p,
                keys=[pending[gi][1][j].key for gi, j in slots],
                offsets=[len(pending[gi][1][j].completion_ids) for gi, j in slots],
                policy_version=version, repeats=counts,
                share_prefill=cfg.rollout.share_prefill, compact=cfg.rollout.compact,
                stop=GroupStop(budgets, group_of, complete_groups=want - complete_before),
                stop_strings=cfg.rl.stop, stop_context=[pending[gi][1][j].completion_ids for gi, j in slots],
                clock=clock,
            )
            policy.module.train()
            for (gi, j), new in zip(slots, out):
                old = pending[gi][1][j]
                ids = old.completion_ids + new.completion_ids
                pending[gi][1][j] = replace(
                    old, completion_ids=ids, logprobs=old.logprobs + new.logprobs, policy_version=version,
                    finish_reason=new.finish_reason, text=tok.decode(ids),
                    token_versions=old.token_versions + [version] * len(new.completion_ids),
                )
                generated += len(new.completion_ids)
                decode_steps = max(decode_steps, len(new.completion_ids))
                aborted += new.finish_reason == RUNNING

        done = [i for i, (_, g) in enumerate(pending) if all(ro.finish_reason != RUNNING for ro in g)]
        chosen = set(done)
        self.pending = [item for i, item in enumerate(pending) if i not in chosen]
        rollout_fwd = sum(len(c) * n for c, n in zip(contexts, counts)) + generated if generated else 0  # prefill + decode
        info = {
            "rollout/trained_groups": float(len(done)),
            "rollout/resumed_groups": float(resumed),
            "rollout/buffered_groups": float(len(self.pending)),
            "rollout/aborted_rows": float(aborted),
            "rollout/restarted_rows": float(restarted),
            "rollout/generated_tokens": float(generated),
            "rollout/decode_steps": float(decode_steps),
        }
        groups = [[replace(ro, parts={}) for ro in pending[i][1]] for i in done]
        info["perf/rollout_fwd_tokens"] = float(rollout_fwd)  # consumed by rl_step's compute count
        return [pending[i][0] for i in done], groups, info


# ---------------------------------------------------------------- stale tokens in the loss


def stale_tokens(token_versions: list[list[int] | None], version: int, width: int,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, width) float on ``device``: 1 where a completion token was sampled by a policy older
    than ``version``. A row without versions (None) was sampled whole by the current policy."""
    stale = torch.zeros((len(token_versions), width), device="cpu")  # filled row by row, then moved
    for i, versions in enumerate(token_versions):
        if versions:
            stale[i, : len(versions)] = (torch.tensor(versions, device="cpu") < version).float()
    return stale.to(device)


def keep_stale(mask: torch.Tensor, stale: torch.Tensor) -> torch.Tensor:
    """``stale: correct``: stale tokens stay in the loss; their ratio to the stored behaviour
    log-probabilities is the importance correction (APRIL, arXiv 2509.18521, Sec. 3)."""
    return mask


def mask_stale(mask: torch.Tensor, stale: torch.Tensor) -> torch.Tensor:
    """``stale: mask``: stale tokens get loss weight 0; a new tensor (B, T)."""
    return mask * (1.0 - stale)


STALE_TOKENS = {"correct": keep_stale, "mask": mask_stale}
"""``rollout.stale`` -> (loss mask (B, T), stale (B, T)) -> loss mask (B, T)."""


def decoupled_truncated_is(
    prox_logp: torch.Tensor, behav_logp: torch.Tensor, stale: torch.Tensor, cap: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoupled PPO for stale tokens with a truncated importance weight.

    Decoupled PPO (Hilton et al. 2021, "Batch size-invariance for policy optimization",
    arXiv 2110.00641, Sec. 3; used for stale rollouts by AReaL, arXiv 2505.24298, Sec. 5) splits
    pi_theta / pi_behav into pi_theta / pi_prox (clipped, the trust region around the current
    "proximal" policy) times w = pi_prox / pi_behav (an importance weight, no gradient). Here the
    weight is truncated at ``cap``, w = min(w, cap), as in truncated importance sampling.

    prox_logp, behav_logp, stale: (B, T). Returns (old_logp (B, T): prox on stale tokens and
    behav elsewhere, the ratio's denominator; weight (B, T): w on stale tokens, 1 elsewhere).
    For a loss linear in the advantage (PPO clip, CISPO) weighting the advantage by w weights
    the token's loss by w."""
    is_stale = stale > 0
    old = torch.where(is_stale, prox_logp, behav_logp)  # (B, T)
    weight = torch.where(is_stale, torch.exp(prox_logp - behav_logp).clamp(max=cap), torch.ones_like(stale))
    return old, weight
