"""Batched sampling with a key/value cache.

The sampler knows token ids only: prompts in, completions out. Prompts are
left-padded into one batch, prefilled once, then decoded one token per step
for every row until each row has emitted a stop id (EOS; ``Tokenizer.stop_ids``), ended its text
with a stop string, or reached ``max_new_tokens``. The decode
mechanics (cache rows, attention mask, one-token forwards) are ``graft.rollout.decode``'s,
shared with the tree sampler (``graft.rollout.tree``).

Two savings, both exact (issue 7), each switchable:

- ``share_prefill``: with ``repeats`` = G completions per prompt, the P distinct
  prompts are prefilled once and their cache rows repeated G times, instead of
  prefilling P * G copies of the same prompts.
- ``compact``: a row that has finished (EOS or ``max_new_tokens``) leaves the
  decode batch and the cache, so no compute is spent on padding after EOS.

Randomness is per row and per position, never shared by the batch: row i has a key
(``keys``, from its request: ``graft.rollout.rng``) and its token at completion position t is
drawn at ``rng.uniforms(key_i, t)``, inverting the row's own CDF. So a row's tokens do not depend
on ``compact``, ``share_prefill``, which other rows share the call, or their order; they are a
function of the weights, the row's context and its key. (Logits of a row can still differ in the
last float bits when the batch has a different shape, which can flip a token only on a
near-exact tie.)

Log-probabilities are those of the policy at the sampling temperature,
``log_softmax(logits / T)``, taken over the full vocabulary (not the top-p
truncated one), as verl and TRL do; the loss recomputes them the same way so
that importance ratios start at 1. Greedy decoding (``temperature=0``) records
``log_softmax(logits)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from graft.models.policy import Policy, device_of, left_pad  # noqa: F401 (left_pad re-exported)
from graft.rollout import rng
from graft.rollout.decode import DecodeBatch, Stops, pick_tokens, tempered_logprobs  # noqa: F401 (re-exported)
from graft.rollout.types import Group, Rollout  # noqa: F401 (re-exported)


@dataclass
class GroupStop:
    """Partial rollouts' limits on ``sample`` (``graft.rollout.partial``): they end a row, or the
    whole batch, before ``max_new_tokens``.

    budgets:          (B,) each row's cap on new tokens (<= ``max_new_tokens``); a row that reaches
                      it ends with 'length' (a resumed row has used part of its budget before).
    groups:           (B,) each row's group id; needed with ``complete_groups``.
    complete_groups:  K > 0: decoding stops as soon as K groups have all their rows finished (the
                      step trains on complete groups only); rows still running end 'aborted'."""

    budgets: list[int] | None = None
    groups: list[int] | None = None
    complete_groups: int = 0
    device: torch.device | str = "cpu"  # where the row tensors live (``sample`` sets the policy's)

    def __post_init__(self) -> None:
        if self.complete_groups and self.groups is None:
            raise ValueError("GroupStop.complete_groups needs each row's group (groups)")
        dev = self.device
        self._cap = None if self.budgets is None else torch.tensor(self.budgets, dtype=torch.long, device=dev)
        if self.complete_groups:
            self._group_of = torch.tensor(self.groups, dtype=torch.long, device=dev)  # (B,)
            self._present = torch.unique(self._group_of)  # the group ids in this batch, found once

    def at_budget(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the rows whose ``lengths`` (B,) reached their budget (none without any)."""
        if self._cap is None:
            return torch.zeros_like(lengths, dtype=torch.bool)
        return lengths >= self._cap

    def reached(self, finished: torch.Tensor) -> bool:
        """True once ``complete_groups`` groups have no row running; ``finished`` (B,) bool."""
        running = torch.zeros(int(self._group_of.max()) + 1, device=finished.device).index_add_(
            0, self._group_of, (~finished).float())  # (groups,) rows still running per group id
        return int((running[self._present] == 0).sum()) >= self.complete_groups

    def limit(self, row: int, max_new_tokens: int) -> int:
        """The most new tokens original row ``row`` may have: short of it, an unfinished row
        was aborted."""
        return max_new_tokens if self._cap is None else int(self._cap[row])


@torch.no_grad()
def sample(
    policy: Policy,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    keys: int | list[int] = 0,
    offsets: list[int] | None = None,
    policy_version: int = 0,
    repeats: int | list[int] = 1,
    share_prefill: bool = True,
    compact: bool = True,
    stop: GroupStop | None = None,
    stop_strings: tuple[str, ...] | list[str] = (),
    stop_context: list[list[int]] | None = None,
    clock: dict[str, float] | None = None,
) -> list[Rollout]:
    """Complete each prompt ``repeats`` times (prompt-major order: all of prompt 0's, then 1's ...);
    ``repeats`` may be a count per prompt.

    ``keys``: each row's key (B, ``rng.row_keys`` of the requests), or one int ``s`` for row i
    to get ``rng.mix(s, i)`` (then a row's draws depend on its index in this call).
    ``offsets``: per row (B), the completion position of its first new token (a resumed partial
    row, a hint prefix: the tokens it already has); None = 0. Row i's token at step t is drawn
    at ``rng.uniforms(keys[i], offsets[i] + t)``.

    ``share_prefill``: prefill each distinct prompt once and copy its cache rows ``repeats``
    times (else prefill every copy). ``compact``: drop finished rows from the decode batch and
    the cache (else they keep decoding a masked pad token). Neither changes the result.
    ``stop``: partial rollouts' per-row budgets and group stop (``GroupStop``); a row ended by
    the group stop has finish_reason 'aborted'. A row also ends on any of the tokenizer's stop
    ids ('stop') or when its text ends with one of ``stop_strings`` ('stop_string');
    ``stop_context``: per row (B), completion tokens it already has (a resumed partial row, a
    hint prefix) that a stop string may begin in. ``clock``: gains the prefill's seconds
    (``DecodeBatch.prefill``)."""
    tok = policy.tokenizer
    device = device_of(policy)
    stops = Stops(tok, stop_strings, device)
    counts = [repeats] * len(prompts) if isinstance(repeats, int) else list(repeats)
    rows = [p for p, n in zip(prompts, counts) for _ in range(n)]  # the B = sum(counts) rows, in order
    if share_prefill and max(counts) > 1:
        batch = DecodeBatch.prefill(policy, prompts, clock)  # P rows
        expand = torch.arange(len(prompts), device=device).repeat_interleave(
            torch.tensor(counts, device=device))  # (B,)
        batch.branch(expand)  # row -> its prompt's cache
    else:
        batch = DecodeBatch.prefill(policy, rows, clock)  # B rows
    B = len(rows)
    uniform_table, row_key = None, [0] * B  # (B, max_new_tokens) every number a row may use, drawn once
    if temperature != 0:
        row_key = [rng.mix(keys, i) for i in range(B)] if isinstance(keys, int) else list(keys)
        if len(row_key) != B or (offsets is not None and len(offsets) != B):
            raise ValueError(f"sample: {B} rows need {B} keys and offsets")
        uniform_table = rng.table(row_key, offsets or [0] * B, max_new_tokens, device)
    if stop is not None and torch.device(stop.device) != device:
        stop = replace(stop, device=device)
    text_rows = [list(c) for c in stop_context] if stop_context else [[] for _ in range(B)]
    by_string = [False] * B  # (B,) ended by a stop string
    out_tokens = torch.full((B, max_new_tokens), tok.pad_id, dtype=torch.long, device=device)
    out_logp = torch.zeros((B, max_new_tokens), device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    live = torch.arange(B, device=device)  # (b,) original row of each row still in the decode batch
    done = torch.zeros(B, dtype=torch.bool, device=device)  # (b,) finished rows among them (compact: none)
    finished = torch.zeros(B, dtype=torch.bool, device=device)  # (B,) by original row, for the group stop
    for t in range(max_new_tokens):
        # each live row's own number at its own position: a row's draw never depends on the others
        uniform = None if uniform_table is None else uniform_table[live, t]  # (b,)
        tokens, logp, _ = batch.pick(temperature, top_p, uniform)  # (b,)
        tokens = tokens.masked_fill(done, tok.pad_id)
        out_tokens[live, t] = tokens
        out_logp[live, t] = logp.masked_fill(done, 0.0)
        lengths[live] += (~done).long()
        at_id = stops.at_id(tokens)  # (b,)
        if stops.strings:
            hits = _string_hits(stops, text_rows, by_string, live, tokens, done | at_id)
            done = done | hits
        done = done | at_id
        if stop is not None:
            done = done | stop.at_budget(lengths)[live]
            if stop.complete_groups:  # a group is complete when none of its rows is still running
                finished[live] = done
                if stop.reached(finished):
                    break
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        keep = None
        if compact and bool(done.any()):  # finished rows leave the batch and the cache
            keep = (~done).nonzero()[:, 0]  # (b',)
        # without compaction finished rows keep decoding a pad token whose key is masked out
        batch.advance(tokens, keep, real=~done)
        if keep is not None:
            live, done = live[keep], done[keep]

    rollouts = []
    for i in range(B):
        n = int(lengths[i])
        completion = out_tokens[i, :n].tolist()
        reason = stops.reason(completion, by_string[i])
        if reason is None:
            reason = "length" if stop is None or n >= stop.limit(i, max_new_tokens) else "aborted"
        rollouts.append(
            Rollout(
                prompt_ids=list(rows[i]),
                completion_ids=completion,
                logprobs=out_logp[i, :n].tolist(),
                policy_version=policy_version,
                finish_reason=reason,
                text=tok.decode(completion),
                key=row_key[i],
            )
        )
    return rollouts


def _string_hits(stops: Stops, text_rows: list[list[int]], by_string: list[bool], live: torch.Tensor,
                 tokens: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """(b,) bool: the live rows whose text now ends with a stop string (``skip`` (b,): rows that
    are finished or stop on an id anyway). Appends each live row's new token to its text row."""
    hits = []
    for j, (i, token, skipped) in enumerate(zip(live.tolist(), tokens.tolist(), skip.tolist())):
        if skipped:
            continue
        text_rows[i].append(token)
        if stops.ends_with_string(text_rows[i]):
            by_string[i] = True
            hits.append(j)
    mask = torch.zeros(len(live), dtype=torch.bool, device=live.device)
    mask[hits] = True
    return mask
