"""Dynamic int8 quantisation of the MusiCoT LM's decoder projections (CPU inference).

Why: a decode step reads every projection weight once for a handful of rows, so on a CPU it
is bound by memory bandwidth; int8 weights are a quarter of the bytes.  The quantisation is
torch's own (``torch.ao.quantization.quantize_dynamic``: per-tensor int8 weights, activations
quantised on the fly per call) -- no hand-written kernels.

What is quantised: in every block, the self-attention QKV and output projections, the
cross-attention query and output projections and the two MLP matrices.  What is not: the
cross-attention K/V projection (the text memory is computed once per call, exactly as in
float32), the embeddings, the layer norms and the output heads (the logits' last matmul is
a small share of a step and keeps them closest to float32), the KV cache and sampling.

The blocks store their projections as ``[in, out]`` parameters used as ``x @ w``; each one
becomes an :class:`Int8Projection` that answers ``x @ it`` (``__rmatmul__``) with a dynamic
quantised linear, so the block code runs unchanged.  This module imports torch only when it
quantises, so the CLI checks ``--quantize`` before the slow imports.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from musigen.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Values of ``--quantize`` / ``MusiCoTPipeline.from_pretrained(quantize=...)``.
QUANTIZE_CHOICES: tuple[str, ...] = ("none", "int8")
#: The block projections that are quantised (all of them but the text memory's K/V).
QUANTIZED_PROJECTIONS: tuple[str, ...] = ("qkv", "proj", "cross_q", "cross_proj", "fc1", "fc2")


def check_quantize(value: str | None) -> str | None:
    """'int8' -> 'int8'; None or 'none' -> None; anything else a one-line ConfigError."""
    if value is None or value == "none":
        return None
    if value not in QUANTIZE_CHOICES:
        raise ConfigError(f"unknown quantize value {str(value)[:40]!r}; choose one of "
                          f"{', '.join(QUANTIZE_CHOICES)}")
    return value


class Int8Projection:
    """An ``[in, out]`` float projection as a dynamic int8 linear; ``x @ self`` applies it.

    A plain attribute, not a parameter: it is inference-only and never saved.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        import torch
        from torch import nn

        fan_in, fan_out = weight.shape
        linear = nn.Linear(fan_in, fan_out, bias=False)
        with torch.no_grad():
            linear.weight.copy_(weight.detach().float().t())
        with warnings.catch_warnings():  # torch.ao's deprecation notice, once per layer
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic

            wrapped = quantize_dynamic(nn.Sequential(linear), {nn.Linear}, dtype=torch.qint8)
        self.linear = wrapped[0]

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """`x @ w` for x [..., in] (the quantised linear's forward, without module hooks)."""
        return self.linear.forward(x)

    __rmatmul__ = matmul
    __call__ = matmul


def projection_mm(x: torch.Tensor, w: torch.Tensor | Int8Projection) -> torch.Tensor:
    """`torch.mm(x, w)` for a float weight, the int8 linear for a quantised one."""
    if isinstance(w, Int8Projection):
        return w.matmul(x)
    import torch

    return torch.mm(x, w)


def quantize_lm(lm: nn.Module, mode: str | None) -> nn.Module:
    """Quantise `lm`'s block projections in place (mode 'int8'); None leaves it as it is.

    The LM must be a float32 model on the CPU in eval mode: torch's dynamic int8 linears
    have CPU kernels only and serve inference only.
    """
    import torch

    mode = check_quantize(mode)
    if mode is None:
        return lm
    first = next(lm.parameters())
    if first.device.type != "cpu" or first.dtype != torch.float32:
        raise ConfigError(f"int8 quantisation needs a float32 model on the CPU, got "
                          f"{first.dtype} on {first.device}")
    lm.eval()
    for block in lm.blocks:  # type: ignore[attr-defined]
        for name in QUANTIZED_PROJECTIONS:
            weight = getattr(block, name)
            if isinstance(weight, Int8Projection):
                continue  # already quantised
            del block._parameters[name]
            setattr(block, name, Int8Projection(weight))
    lm.quantized = mode  # type: ignore[attr-defined]
    return lm


def lm_quantization(lm: nn.Module) -> str | None:
    """'int8' for an LM :func:`quantize_lm` changed, None for a float one."""
    return getattr(lm, "quantized", None)
