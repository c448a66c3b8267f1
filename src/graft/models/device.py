"""Where the policy runs and in which precision (``model.device``, ``model.precision``).

- ``auto`` is CUDA when ``torch.cuda.is_available()``, else the CPU; ``cuda:N`` names a GPU.
- ``fp32``: float32 weights, forwards and optimizer state (the default; bit-identical to graft
  before these settings existed).
- ``bf16_mixed``: float32 *master* weights (so the optimizer state is float32 too) and every
  forward of the policy under ``torch.autocast(dtype=bfloat16)``: matmuls run in bf16, reductions
  and the log-softmax of the loss stay in float32 (policies return float32 logits).
- ``bf16``: the weights themselves are bfloat16 (half the memory of weights, gradients and Adam
  moments); no autocast. A Hugging Face model loads in bf16 and saves back in bf16.

Sampling numbers are exact integer functions of (row key, position) (``graft.rollout.rng``),
computed on the policy's device: a seed gives the same random numbers on CPU and GPU (the tokens
can still differ where the logits do, in their last bits).
"""

from __future__ import annotations

import contextlib

import torch

from graft.errors import GraftError

PRECISIONS = ("fp32", "bf16_mixed", "bf16")


def resolve_device(name: str) -> torch.device:
    """``model.device`` -> a torch device; a GPU that is not there is a ``GraftError`` naming the key."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GraftError(f"model.device: {name!r} but CUDA is not available here "
                             "(torch.cuda.is_available() is False); use cpu or auto")
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise GraftError(f"model.device: {name!r} but only {torch.cuda.device_count()} CUDA "
                             "device(s) are visible")
    return device


def weight_dtype(precision: str) -> torch.dtype:
    """The dtype the weights are stored (and trained) in."""
    if precision not in PRECISIONS:
        raise GraftError(f"model.precision: unknown {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of forwards (``bf16_mixed``), or None."""
    return torch.bfloat16 if precision == "bf16_mixed" else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` on ``device`` when ``dtype`` is set, else a no-op context."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (every graft policy keeps all of them on one)."""
    return next(module.parameters()).device


class Placed:
    """What both policy classes share about placement: their ``module``'s device, and ``place``
    (the weight dtype of ``model.precision`` and, for ``bf16_mixed``, the autocast dtype that every
    forward reads from ``amp_dtype``)."""

    module: torch.nn.Module
    amp_dtype: torch.dtype | None = None

    @property
    def device(self) -> torch.device:
        return module_device(self.module)

    def place(self, device: torch.device, precision: str):
        """Move to ``device`` with ``model.precision``'s weight dtype and autocast; returns self."""
        self.module.to(device=device, dtype=weight_dtype(precision))
        self.amp_dtype = autocast_dtype(precision)
        return self
