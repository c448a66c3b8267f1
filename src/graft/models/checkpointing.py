"""Activation checkpointing for the policy's transformer blocks (``optim.activation_checkpointing``).

Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost" (arXiv 1604.06174, Sec. 3):
keep only each block's input in forward and recompute the block in backward, so the update's
activation memory is about one block's instead of all of them, for one extra forward of the
blocks. The result is the same computation, so loss and gradients agree to float rounding.
Applies in training mode only: the sampler runs the module in eval mode, where nothing changes.
"""

from __future__ import annotations

from torch import nn


def set_activation_checkpointing(module: nn.Module, on: bool) -> None:
    """Switch block checkpointing on or off for a Hugging Face model or graft's tiny transformer.

    Idempotent, and a no-op when the module is already in the requested state (so the default,
    off, never touches a model)."""
    if hasattr(module, "gradient_checkpointing_enable"):  # transformers PreTrainedModel
        if on != _hf_is_checkpointing(module):
            # transformers 5 renamed gradient_* to activation_checkpointing_*; older ones have only the first
            new = hasattr(module, "activation_checkpointing_enable")
            if on:  # non-reentrant: works with inputs that need no grad and nested autograd functions
                kwargs = {"use_reentrant": False}
                if new:
                    module.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
                else:
                    module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            else:
                (module.activation_checkpointing_disable if new else module.gradient_checkpointing_disable)()
    elif hasattr(module, "checkpoint_blocks"):  # graft.models.tiny.TinyTransformer
        module.checkpoint_blocks = on
    elif on:
        raise ValueError(f"optim.activation_checkpointing: {type(module).__name__} does not support it")


def _hf_is_checkpointing(module: nn.Module) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) is True for m in module.modules())
