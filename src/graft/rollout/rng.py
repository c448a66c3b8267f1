"""Counter-based sampling randomness: every number is a pure function of a key and a position.

A completion's tokens are drawn at uniform numbers that depend only on the completion's *row
key* and the token's position in the completion, never on a generator shared by a batch. So a
row draws the same tokens whichever other rows share its call, in whatever order, on one worker
or several (issue 17), on any device. The formula (docs/sampling_rng.md) is SplitMix64 (Steele,
Lea and Flood 2014, "Fast splittable pseudorandom number generators", OOPSLA, Sec. 3, the
``mix64`` finalizer with the golden-ratio increment):

    mix64(z)  = z3, where z1 = (z  ^ (z  >>> 30)) * 0xBF58476D1CE4E5B9
                          z2 = (z1 ^ (z1 >>> 27)) * 0x94D049BB133111EB
                          z3 =  z2 ^ (z2 >>> 31)          (all mod 2**64, >>> logical)
    draw(k, t) = mix64(k + (t + 1) * GAMMA),  GAMMA = 0x9E3779B97F4A7C15
                 (the t-th output, from 0, of SplitMix64 seeded with k)
    uniform(k, t) = (draw(k, t) >>> 40) / 2**24              in [0, 1), exactly a float32
    mix(x1, ..., xn) = h_n, h_0 = 0, h_i = draw(h_{i-1} ^ (x_i mod 2**64), 0)

``mix`` derives keys (a request's from the run seed, step and index; a row's from its request's
and its index; a tree child's from its parent's and its branch), ``uniforms`` the numbers. The
tensor version works on int64 tensors: multiplication and addition wrap in two's complement
(the same bits as mod 2**64), and right shifts are arithmetic, so a mask makes them logical.
Integer ops are exact on every device, and a 24-bit integer times 2**-24 is exact in float32,
so CPU and GPU give the same numbers bit for bit.
"""

from __future__ import annotations

import torch

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def _signed(x: int) -> int:
    """The int64 with the same 64 bits as ``x`` mod 2**64."""
    x &= MASK64
    return x - (1 << 64) if x >> 63 else x


def mix64(z: int) -> int:
    """SplitMix64's finalizer on a Python int (mod 2**64); the reference for ``_mix64``."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def draw(key: int, position: int) -> int:
    """The ``position``-th 64-bit output (from 0) of SplitMix64 seeded with ``key``."""
    return mix64(key + (position + 1) * GAMMA)


def mix(*ints: int) -> int:
    """A 64-bit key (in [0, 2**64)) from a sequence of integers (any sign, any order matters)."""
    h = 0
    for x in ints:
        h = draw(h ^ (x & MASK64), 0)
    return h


def row_keys(seeds: list[int], counts: list[int]) -> list[int]:
    """Row keys of requests with keys ``seeds`` and ``counts`` completions each, in order: row j of
    request i gets ``mix(seeds[i], j)``."""
    return [mix(s, j) for s, n in zip(seeds, counts) for j in range(n)]


def key_tensor(keys: list[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """(B,) int64 holding the 64 bits of each key."""
    return torch.tensor([_signed(k) for k in keys], dtype=torch.long, device=device)


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 ``z`` by ``s`` (1..63): the arithmetic shift, high bits cleared."""
    return (z >> s) & ((1 << (64 - s)) - 1)


_MIX1, _MIX2, _GAMMA = _signed(MIX1), _signed(MIX2), _signed(GAMMA)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    """``mix64`` elementwise on an int64 tensor (wrapping arithmetic)."""
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    return z ^ _shr(z, 31)


def uniforms(keys: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``uniform(key, position)`` elementwise, float32 in [0, 1) on the keys' device.

    keys: int64 (``key_tensor``), positions: int64 >= 0, broadcast together (e.g. (B, 1) and
    (1, T) for a whole table of B rows' next T tokens)."""
    z = _mix64(keys + (positions + 1) * _GAMMA)
    return _shr(z, 40).to(torch.float32) * (2.0 ** -24)


def table(keys: list[int] | torch.Tensor, start: list[int] | torch.Tensor, length: int,
          device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, length) float32: row i's uniforms at positions ``start[i]``, ..., ``start[i] + length - 1``."""
    k = keys if isinstance(keys, torch.Tensor) else key_tensor(keys, device)
    s = start if isinstance(start, torch.Tensor) else torch.tensor(start, dtype=torch.long, device=k.device)
    steps = torch.arange(length, dtype=torch.long, device=k.device)  # (T,)
    return uniforms(k[:, None], s[:, None] + steps[None, :])  # (B, T)
