"""Batched sampling with a key/value cache.

The sampler knows token ids only: prompts in, completions out. Prompts are
left-padded into one batch, prefilled once, then decoded one token per step
for every row until each row has emitted EOS or reached ``max_new_tokens``. The decode
mechanics (cache rows, attention mask, one-token forwards) are ``graft.rollout.decode``'s,
shared with the tree sampler (``graft.rollout.tree``).

Two savings, both exact (issue 7), each switchable:

- ``share_prefill``: with ``repeats`` = G completions per prompt, the P distinct
  prompts are prefilled once and their cache rows repeated G times, instead of
  prefilling P * G copies of the same prompts.
- ``compact``: a row that has finished (EOS or ``max_new_tokens``) leaves the
  decode batch and the cache, so no compute is spent on padding after EOS.

Randomness is drawn per *original* row, independent of which rows are still
decoding: every step draws one uniform number for each of the B rows (from the
one ``generator``) and a row samples its token by inverting its own CDF at its
number. So the sampled tokens do not depend on ``compact`` or ``share_prefill``;
they are a deterministic function of the generator's state. (Logits of a row can
still differ in the last float bits when the batch has a different shape, which
can flip a token only on a near-exact tie.)

Log-probabilities are those of the policy at the sampling temperature,
``log_softmax(logits / T)``, taken over the full vocabulary (not the top-p
truncated one), as verl and TRL do; the loss recomputes them the same way so
that importance ratios start at 1. Greedy decoding (``temperature=0``) records
``log_softmax(logits)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from graft.models.policy import Policy


@dataclass
class Rollout:
    """One sampled completion and everything the update needs about it.

    prompt_ids:      prompt token ids (no padding).
    completion_ids:  sampled token ids, EOS included when the row stopped on it.
    logprobs:        per-token log-probabilities of completion_ids under the sampling policy.
    policy_version:  the training step whose weights sampled it.
    finish_reason:   'stop' (emitted EOS) or 'length' (hit max_new_tokens).
    text:            decoded completion (specials dropped).
    reward, correct, parts: filled in by the verifier.
    demo_len:        leading completion tokens copied from a demonstration rather than sampled
                     (a hint prefix, an injected demonstration; ``graft.mix``); their behaviour
                     probability is taken as 1, so their ``logprobs`` are 0.
    shaped:          those tokens take LUFFY's policy-shaping loss instead of the ratio loss.
    token_versions:  per completion token, the policy version that sampled it (partial rollouts,
                     ``graft.rollout.partial``); None = every token by ``policy_version``.
    tree_path:       tree rollouts only (``graft.rollout.tree``): ids of the tree nodes (segments
                     between branch points) from the prompt down to this leaf, unique within the
                     group; leaves that share a node share those completion tokens. () = a chain
                     of its own (i.i.d. sampling).
    tree_spans:      tree rollouts only: the completion offset where each node of ``tree_path``
                     ends (so node j holds completion tokens ``tree_spans[j-1]:tree_spans[j]``).
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    policy_version: int
    finish_reason: str
    text: str = ""
    reward: float = 0.0
    correct: bool = False
    parts: dict[str, float] = field(default_factory=dict)
    demo_len: int = 0
    shaped: bool = False
    token_versions: list[int] | None = None
    tree_path: tuple[int, ...] = ()
    tree_spans: tuple[int, ...] = ()


Group = list[Rollout]
"""The rollouts that share one prompt (GRPO's unit)."""


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad to a (B, T) id tensor and its (B, T) attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids, mask


def tempered_logprobs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log_softmax(logits / T)`` in float32, (B, V); the policy a token is sampled from."""
    logits = logits.float()
    # x / 1.0 == x exactly, so skipping the division at temperature 1 changes no bit (one pass fewer)
    return torch.log_softmax(logits if temperature == 1.0 else logits / temperature, -1)


def pick_tokens(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
    uniform: torch.Tensor | None = None,
    logprobs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose one token per row; return (tokens (B,), logprobs (B,)) under the tempered policy.

    Sampling inverts each row's CDF at ``uniform`` (B,) in [0, 1); without it, B numbers are
    drawn from ``generator``. A row's token depends only on its logits and its own number.
    ``logprobs``: ``tempered_logprobs(logits, temperature)`` when the caller already has it."""
    logits = logits.float()  # (B, V)
    if temperature == 0:
        tokens = logits.argmax(-1)
        return tokens, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]
    if logprobs is None:
        logprobs = tempered_logprobs(logits, temperature)  # (B, V)
    probs = logprobs.exp()
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    if uniform is None:
        uniform = torch.rand(probs.shape[0], generator=generator)  # (B,)
    cdf = probs.cumsum(-1)  # (B, V)
    # first token whose cumulative mass exceeds u * total: a zero-probability token never is
    target = (uniform.to(cdf.dtype) * cdf[:, -1])[:, None]  # (B, 1)
    tokens = torch.searchsorted(cdf, target, right=True)[:, 0]  # (B,)
    # rounding guard: a row that lands past the end or on a zero-mass token takes the last token
    # with mass instead. Any other row's token has mass, so it is <= that last token already: the
    # guard's second cumsum over (b, V) runs only on the rows that need it (same tokens).
    V = probs.shape[-1]
    off = (tokens >= V) | (probs.gather(-1, tokens.clamp(max=V - 1)[:, None])[:, 0] == 0)  # (B,)
    if bool(off.any()):
        last = (probs[off] > 0).long().cumsum(-1).argmax(-1)  # (b',) last token with mass
        tokens = tokens.clone()
        tokens[off] = torch.minimum(tokens[off], last)
    return tokens, logprobs.gather(-1, tokens[:, None])[:, 0]


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

    def __post_init__(self) -> None:
        if self.complete_groups and self.groups is None:
            raise ValueError("GroupStop.complete_groups needs each row's group (groups)")
        self._cap = None if self.budgets is None else torch.tensor(self.budgets, dtype=torch.long)
        if self.complete_groups:
            self._group_of = torch.tensor(self.groups, dtype=torch.long)  # (B,)
            self._present = torch.unique(self._group_of)  # the group ids in this batch, found once

    def at_budget(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the rows whose ``lengths`` (B,) reached their budget (none without any)."""
        if self._cap is None:
            return torch.zeros_like(lengths, dtype=torch.bool)
        return lengths >= self._cap

    def reached(self, finished: torch.Tensor) -> bool:
        """True once ``complete_groups`` groups have no row running; ``finished`` (B,) bool."""
        running = torch.zeros(int(self._group_of.max()) + 1).index_add_(
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
    generator: torch.Generator | None = None,
    policy_version: int = 0,
    repeats: int | list[int] = 1,
    share_prefill: bool = True,
    compact: bool = True,
    stop: GroupStop | None = None,
) -> list[Rollout]:
    """Complete each prompt ``repeats`` times (prompt-major order: all of prompt 0's, then 1's ...);
    ``repeats`` may be a count per prompt.

    ``share_prefill``: prefill each distinct prompt once and copy its cache rows ``repeats``
    times (else prefill every copy). ``compact``: drop finished rows from the decode batch and
    the cache (else they keep decoding a masked pad token). Neither changes the result.
    ``stop``: partial rollouts' per-row budgets and group stop (``GroupStop``); a row ended by
    the group stop has finish_reason 'aborted'."""
    from graft.rollout.decode import DecodeBatch  # here: decode builds on this module's primitives

    tok = policy.tokenizer
    counts = [repeats] * len(prompts) if isinstance(repeats, int) else list(repeats)
    rows = [p for p, n in zip(prompts, counts) for _ in range(n)]  # the B = sum(counts) rows, in order
    if share_prefill and max(counts) > 1:
        batch = DecodeBatch.prefill(policy, prompts)  # P rows
        expand = torch.arange(len(prompts)).repeat_interleave(torch.tensor(counts))  # (B,)
        batch.branch(expand)  # row -> its prompt's cache
    else:
        batch = DecodeBatch.prefill(policy, rows)  # B rows
    B = len(rows)
    out_tokens = torch.full((B, max_new_tokens), tok.pad_id, dtype=torch.long)
    out_logp = torch.zeros((B, max_new_tokens))
    lengths = torch.zeros(B, dtype=torch.long)
    live = torch.arange(B)  # (b,) original row of each row still in the decode batch
    done = torch.zeros(B, dtype=torch.bool)  # (b,) finished rows among them (compact: none)
    finished = torch.zeros(B, dtype=torch.bool)  # (B,) by original row, for the group stop
    for t in range(max_new_tokens):
        # one number per original row, every step: a row's draw never depends on the others
        uniform = None if temperature == 0 else torch.rand(B, generator=generator)[live]  # (b,)
        tokens, logp, _ = batch.pick(temperature, top_p, uniform)  # (b,)
        tokens = tokens.masked_fill(done, tok.pad_id)
        out_tokens[live, t] = tokens
        out_logp[live, t] = logp.masked_fill(done, 0.0)
        lengths[live] += (~done).long()
        done = done | (tokens == tok.eos_id)
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
        stopped = n > 0 and completion[-1] == tok.eos_id
        reason = "stop" if stopped else "length"
        if not stopped and stop is not None:
            reason = "length" if n >= stop.limit(i, max_new_tokens) else "aborted"
        rollouts.append(
            Rollout(
                prompt_ids=list(rows[i]),
                completion_ids=completion,
                logprobs=out_logp[i, :n].tolist(),
                policy_version=policy_version,
                finish_reason=reason,
                text=tok.decode(completion),
            )
        )
    return rollouts
