"""Gradient (activation) checkpointing and per-block `torch.compile` for the training modules.

Why in place: wrapping blocks in a container module would rename every state-dict key
(`blocks.0.inner.qkv`), so checkpoints and exports would no longer load into the plain
models.  Instead each block's `forward` is replaced on the instance by one that runs
through :func:`torch.utils.checkpoint.checkpoint` (non-reentrant), and compilation uses
`nn.Module.compile()`, which also keeps the keys.  Checkpointing only acts while training
with gradients on, so validation and sampling run the plain forward.

The models themselves know nothing of this (they know nothing of Lightning either).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def _checkpointed_forward(module: nn.Module, forward: Callable[..., Any], *args: Any,
                          **kwargs: Any) -> Any:
    if module.training and torch.is_grad_enabled():
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def checkpoint_blocks(blocks: Iterable[nn.Module]) -> int:
    """Recompute each block's activations in the backward pass; returns how many were set."""
    n = 0
    for block in blocks:
        if getattr(block, "_musigen_checkpointed", False):
            continue
        original = block.forward
        block.forward = functools.partial(_checkpointed_forward, block, original)  # type: ignore[method-assign]
        block._musigen_checkpointed = True  # type: ignore[assignment]
        n += 1
    return n


def compile_blocks(blocks: Iterable[nn.Module], **options: Any) -> int:
    """`torch.compile` each block in place (state-dict keys unchanged); returns the count."""
    n = 0
    for block in blocks:
        block.compile(**options)
        n += 1
    return n


def blocks_of(model: nn.Module, types: tuple[type[nn.Module], ...]) -> list[nn.Module]:
    """All submodules of `model` of the given types (the units to checkpoint or compile)."""
    return [m for m in model.modules() if isinstance(m, types)]
