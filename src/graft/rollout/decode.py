"""The decode loop's mechanics, shared by every rollout strategy (issue 12).

A strategy (``sample``'s i.i.d. chains, ``sample_tree``'s branching segments, partial rollouts
through ``sample``) decides *which* rows decode, branch or stop and what it records; how a batch of
rows decodes is the same for all of them and lives here, once, in ``DecodeBatch``:

- ``prefill``: left-pad the contexts and run them through the policy once;
- ``pick``: choose each row's next token from its logits at the caller's uniform numbers (each
  row's own, from its key and position: ``graft.rollout.rng``);
- ``branch``: re-index the rows before a pick (copy a prompt's cache for each completion, or a
  tree node's for each child);
- ``advance``: drop finished rows from the batch and the cache, append one token per row to the
  attention mask and forward it, giving the logits of the next pick.

What ends a row is ``Stops``': any of the tokenizer's stop ids (``Tokenizer.stop_ids``: EOS and
the model's other end-of-sequence ids), or ``rl.stop`` strings that its decoded text ends with.

So a strategy's loop is: ``pick``, record, decide who stays, ``advance``. The row order of the
batch is the caller's: ``branch`` and ``advance`` keep rows in the order of the index given, and
the caller re-indexes its own per-row state the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from graft.models.policy import Policy, device_of, left_pad, position_ids_from_mask, stop_ids
from graft.timing import timed


def tempered_logprobs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log_softmax(logits / T)`` in float32, (B, V); the policy a token is sampled from."""
    logits = logits.float()
    # x / 1.0 == x exactly, so skipping the division at temperature 1 changes no bit (one pass fewer)
    return torch.log_softmax(logits if temperature == 1.0 else logits / temperature, -1)


def pick_tokens(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    uniform: torch.Tensor | None = None,
    logprobs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose one token per row; return (tokens (B,), logprobs (B,)) under the tempered policy.

    Sampling inverts each row's CDF at ``uniform`` (B,) in [0, 1) (``graft.rollout.rng``; only
    greedy, ``temperature=0``, needs none). A row's token depends only on its logits and its own
    number.
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
        raise ValueError("sampling needs one uniform number per row; only greedy draws none")
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
class DecodeBatch:
    """The rows being decoded: their cache, attention mask and the logits of their next token.

    mask:        (b, T) long, 1 = a real token of the row (prompt or generated), 0 = padding or
                 a pad token a finished row was fed (it keeps decoding when not dropped).
    positions:   (b,) long, position id of each row's next token.
    next_logits: (b, V) logits of each row's next token."""

    policy: Policy
    cache: Any
    mask: torch.Tensor
    positions: torch.Tensor
    next_logits: torch.Tensor

    @classmethod
    def prefill(cls, policy: Policy, contexts: list[list[int]], clock: dict[str, float] | None = None
                ) -> DecodeBatch:
        """One row per context, left-padded and run through the policy in one forward pass;
        ``clock["prefill"]`` gains its seconds when a ``clock`` is given (host time: on CUDA
        the forward's kernels may still run when it returns, and count where they are waited for)."""
        with timed(clock, "prefill"):
            ids, mask = left_pad(contexts, policy.tokenizer.pad_id, device_of(policy))  # (b, Tp)
            logits, cache = policy.forward(ids, mask, position_ids_from_mask(mask))  # (b, Tp, V)
        return cls(policy, cache, mask, mask.sum(-1), logits[:, -1])  # positions (b,), (b, V)

    @property
    def size(self) -> int:
        return self.mask.shape[0]

    def pick(
        self, temperature: float, top_p: float, uniform: torch.Tensor | None, entropy: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Each row's next token at its number ``uniform`` (b,) (None only when greedy, which
        draws nothing). Returns tokens (b,), their tempered log-probabilities (b,) and, with
        ``entropy``, the entropy of each row's sampling distribution (b,) (else None), computed
        from the same log-softmax the token is sampled from."""
        if not entropy:
            tokens, logp = pick_tokens(self.next_logits, temperature, top_p, uniform)  # (b,)
            return tokens, logp, None
        tempered = tempered_logprobs(self.next_logits, temperature)  # (b, V)
        tokens, logp = pick_tokens(self.next_logits, temperature, top_p, uniform, tempered)
        return tokens, logp, -(tempered.exp() * tempered).sum(-1)  # (b,), (b,), (b,)

    def branch(self, rows: torch.Tensor) -> None:
        """Re-index the rows before the next pick: row i becomes old row ``rows[i]`` (b',) long;
        repeats copy a row (its cache, mask, position and next logits)."""
        self.cache = self.policy.select_cache_rows(self.cache, rows)
        self.mask, self.positions = self.mask[rows], self.positions[rows]  # (b', T), (b',)
        self.next_logits = self.next_logits[rows]  # (b', V)

    def advance(
        self,
        tokens: torch.Tensor,
        keep: torch.Tensor | None = None,
        real: torch.Tensor | None = None,
    ) -> None:
        """Feed ``tokens`` (b,) and compute the logits of the next ones.

        ``keep`` (b',) long: the rows that stay, in order; the others leave the batch and the cache
        first (None = all stay, no cache copy). ``real`` (b,) bool: False for a row that only
        feeds a pad token (a finished row that was not dropped), whose key is then masked out of
        every later step; None = every token is real."""
        if keep is not None:
            self.cache = self.policy.select_cache_rows(self.cache, keep)
            self.mask, self.positions, tokens = self.mask[keep], self.positions[keep], tokens[keep]
            real = None if real is None else real[keep]
        new = torch.ones_like(self.mask[:, :1]) if real is None else real.long()[:, None]  # (b', 1)
        self.mask = torch.cat([self.mask, new], dim=1)  # (b', T + 1)
        logits, self.cache = self.policy.forward(
            tokens[:, None], self.mask, self.positions[:, None], self.cache)  # (b', 1, V)
        self.next_logits, self.positions = logits[:, -1], self.positions + 1  # (b', V), (b',)


class Stops:
    """What ends a completion: one of the tokenizer's ``stop_ids`` (finish_reason 'stop'), or
    decoded text that ends with one of ``strings`` (finish_reason 'stop_string'; the string's
    tokens stay in the completion).

    A string match decodes only the row's last tokens (enough of them for the longest string even
    at one byte per token), falling back to the whole row when that tail decodes too short."""

    def __init__(self, tokenizer, strings: tuple[str, ...] | list[str] = (), device: torch.device | str = "cpu"):
        self.tokenizer = tokenizer
        self.ids = stop_ids(tokenizer)
        # one id (every tiny model): a plain comparison, the same op as before stop sets existed
        self._ids = torch.tensor(self.ids, device=device) if len(self.ids) > 1 else None
        self.strings = tuple(strings)
        longest = max((len(x) for x in self.strings), default=0)
        self._window, self._enough = 4 * longest + 8, longest + 4

    def at_id(self, tokens: torch.Tensor) -> torch.Tensor:
        """(b,) bool: the tokens (b,) that are stop ids."""
        if self._ids is None:
            return tokens == self.ids[0]
        return torch.isin(tokens, self._ids)

    def ends_with_string(self, ids: list[int]) -> bool:
        """True when the decoded ``ids`` end with one of the stop strings."""
        if not self.strings:
            return False
        tail = ids[-self._window:]
        text = self.tokenizer.decode(tail)
        if len(tail) < len(ids) and len(text) < self._enough:  # specials or multi-byte: decode it all
            text = self.tokenizer.decode(ids)
        return text.endswith(self.strings)

    def reason(self, completion: list[int], by_string: bool) -> str | None:
        """'stop' (ends on a stop id), 'stop_string' or None (neither: cut or aborted)."""
        if completion and completion[-1] in self.ids:
            return "stop"
        return "stop_string" if by_string else None
