"""One-position decoding for the MusiCoT LM: `MusiCoTLM.run`'s arithmetic, with less overhead.

Why a second path: once the KV cache holds the prefix, a decode step is a few dozen tiny
tensor ops per layer on [rows, dim] activations. At the demo's sizes the matmuls take well
under a millisecond, so Python and dispatch work (module attribute lookups, 3-D reshapes,
`matmul`'s folding, the functional wrappers, fresh output tensors for each residual add)
is a large share of a step. This path works on 2-D activations, calls the ATen ops
directly, writes a step's keys and values into the cache with one copy and adds the
residuals in place.

It performs the same floating-point operations in the same order as the reference path,
so its hidden states are bit-identical (tests check this); training, prefill and chunks
keep using :meth:`MusiCoTLM.run`. Nothing here changes the saved parameter layout: the
weights are read from the model's own parameters (views, no copies) when a decoder is
built, once per generation.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from musigen.errors import ConfigError
from musigen.musicot.lm import KVCache, Memory, MusiCoTLM
from musigen.musicot.quantize import lm_quantization, projection_mm


#: Block projections whose memory layout :func:`column_major_projections` changes.
PROJECTIONS: tuple[str, ...] = ("qkv", "proj", "cross_q", "cross_kv", "cross_proj", "fc1", "fc2")


@torch.no_grad()
def column_major_projections(model: MusiCoTLM) -> MusiCoTLM:
    """Store each block projection column-major (same [in, out] shape, values and saved layout).

    Why: a decode step multiplies a few rows by every weight once, which is bound by how fast
    the weights stream from memory.  With the weight's [out, in] rows contiguous (what
    `F.linear` sees), the GEMM reads it as dot products over contiguous rows; measured with one
    thread on the shared 2-core machine, `x @ w` for two rows then takes 0.79x the time at
    512 x 1536 and 0.62-0.80x at musicgen-small's 1024-wide shapes (`torch.mm`, weights cycled).
    Only the strides change: `x @ w` computes the same products (the GEMM may sum them in
    another order, so the last bits can move), and `save_pretrained` writes the usual
    contiguous [in, out] tensor.  The output heads keep their layout (they are viewed
    as [dim, K * card]).  For inference: the pipeline applies it when it loads an LM.
    """
    for block in model.blocks:
        for name in PROJECTIONS:
            w = getattr(block, name)
            if isinstance(w, torch.Tensor) and w.is_contiguous() and w.dim() == 2:
                w.data = w.data.t().contiguous().t()
    return model


class _LayerWeights(NamedTuple):
    norm1_w: torch.Tensor
    norm1_b: torch.Tensor
    qkv: torch.Tensor
    proj: torch.Tensor
    norm2_w: torch.Tensor
    norm2_b: torch.Tensor
    cross_q: torch.Tensor
    cross_proj: torch.Tensor
    norm3_w: torch.Tensor
    norm3_b: torch.Tensor
    fc1: torch.Tensor
    fc2: torch.Tensor
    eps: tuple[float, float, float]


class StepDecoder:
    """Feeds one new position per call through an eval-mode :class:`MusiCoTLM`."""

    def __init__(self, model: MusiCoTLM) -> None:
        if model.training:
            raise ConfigError("the one-position decoder is for eval mode (no dropout)")
        cfg = model.config
        self.dim, self.heads = cfg.dim, cfg.num_heads
        self.head_dim = cfg.dim // cfg.num_heads
        self.shape = (cfg.dim,)
        # an int8 LM (musicot.quantize) holds quantised projections; a float one plain weights
        self.mm = torch.mm if lm_quantization(model) is None else projection_mm
        self.layers = [
            _LayerWeights(
                b.norm1.weight, b.norm1.bias, b.qkv, b.proj, b.norm2.weight, b.norm2.bias,
                b.cross_q, b.cross_proj, b.norm3.weight, b.norm3.bias, b.fc1, b.fc2,
                (b.norm1.eps, b.norm2.eps, b.norm3.eps),
            )
            for b in model.blocks
        ]
        self.norm = (model.norm.weight, model.norm.bias, model.norm.eps)
        self.positions = model.positions
        k, card = cfg.num_codebooks, cfg.codebook_size
        self.num_codebooks, self.card = k, card
        self.audio_heads = model.audio_heads.view(cfg.dim, k * card)
        self.thought_head = model.thought_head
        self.audio_table = model.audio_emb.view(-1, cfg.dim)
        self.audio_offsets = model.audio_offsets

    def step(self, x: torch.Tensor, memory: Memory, cache: KVCache) -> torch.Tensor:
        """x [rows, dim] at position `cache.length` -> the final-normed hidden state [rows, dim]."""
        pos = cache.length
        if pos >= cache.max_len:
            raise ConfigError(f"the KV cache holds {cache.max_len} positions; it is full")
        rows, d, h, hd = x.shape[0], self.dim, self.heads, self.head_dim
        ln, mm, sdpa = torch.layer_norm, self.mm, F.scaled_dot_product_attention
        x = x + self.positions[pos]
        for i, w in enumerate(self.layers):
            kv = cache.kv[i]
            qkv = mm(ln(x, self.shape, w.norm1_w, w.norm1_b, w.eps[0]), w.qkv)
            qkv = qkv.view(rows, 3, h, 1, hd)
            kv.narrow(3, pos, 1).copy_(qkv[:, 1:].transpose(0, 1))
            a = sdpa(qkv[:, 0], kv[0].narrow(2, 0, pos + 1), kv[1].narrow(2, 0, pos + 1))
            x = mm(a.view(rows, d), w.proj).add_(x)
            q = mm(ln(x, self.shape, w.norm2_w, w.norm2_b, w.eps[1]), w.cross_q)
            q = q.view(rows, h, 1, hd)
            a = sdpa(q, memory.keys[i], memory.values[i], attn_mask=memory.mask)
            x = mm(a.view(rows, d), w.cross_proj).add_(x)
            y = F.gelu(mm(ln(x, self.shape, w.norm3_w, w.norm3_b, w.eps[2]), w.fc1))
            x = mm(y, w.fc2).add_(x)
        cache.length = pos + 1
        return ln(x, self.shape, *self.norm)

    def audio_logits(self, h: torch.Tensor) -> torch.Tensor:
        """[rows, dim] -> [rows, K * card] (codebook k's logits are columns k*card..)."""
        return torch.mm(h, self.audio_heads)

    def thought_logits(self, h: torch.Tensor) -> torch.Tensor:
        return torch.mm(h, self.thought_head)

    def embed_audio(self, tokens: torch.Tensor) -> torch.Tensor:
        """[rows, K] codes of one step -> [rows, dim], the K codebook embeddings summed."""
        return F.embedding(tokens + self.audio_offsets, self.audio_table).sum(1)
