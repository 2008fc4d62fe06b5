"""Chunk-transformer blocks: self-attention inside chunks of C frames, shifted between blocks.

Full self-attention over a minutes-long latent sequence costs O(T^2) time and memory; the
InstructME chunk transformer attends only inside fixed chunks, so the cost is O(T * C).
Alternate blocks shift the chunk grid by C/2 frames so that information crosses chunk
borders as blocks stack (as in Swin).  The shifted grid is not a cyclic roll (that would let
the end of the piece attend to its start): the partial chunks at either end of the sequence
are simply shorter, so any length works and no frame ever sees padding.

Each block: FiLM-conditioned (chord) self-attention -> cross-attention to the instruction
tokens (with a key mask) -> feed-forward, all pre-norm with residuals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from musigen.errors import ConfigError


def chunked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    chunk: int,
    shift: int,
    key_valid: torch.Tensor | None,
) -> torch.Tensor:
    """Attention restricted to chunks of `chunk` frames whose grid starts `shift` frames early.

    q, k, v: [B, H, T, d]; key_valid: [B, T] bool (False = keys to ignore) or None.
    Returns [B, H, T, d].  Frames only attend to real keys inside their own chunk.

    Without `key_valid` nothing is padded: the partial chunks at either end are attended on
    their own (the same as masking their padding) and the full chunks in between run as one
    unmasked batch, which keeps torch's fast SDPA kernel.
    """
    b, h, t, d = q.shape
    if key_valid is None:
        head = min(t, (chunk - shift) % chunk)
        full = (t - head) // chunk
        tail = head + full * chunk
        parts = []
        if head:
            parts.append(
                F.scaled_dot_product_attention(q[:, :, :head], k[:, :, :head], v[:, :, :head])
            )
        if full:
            mid = [x[:, :, head:tail] for x in (q, k, v)]
            parts.append(
                _attend_chunks(*mid, b, h, full, chunk, d, None).reshape(b, h, full * chunk, d)
            )
        if tail < t:
            parts.append(
                F.scaled_dot_product_attention(q[:, :, tail:], k[:, :, tail:], v[:, :, tail:])
            )
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
    left = shift
    total = -(-(t + left) // chunk) * chunk
    right = total - t - left
    n = total // chunk
    valid = F.pad(key_valid, (left, right), value=False).reshape(b, n, chunk)
    q, k, v = (F.pad(x, (0, 0, left, right)) for x in (q, k, v))
    out = _attend_chunks(q, k, v, b, h, n, chunk, d, valid).reshape(b, h, total, d)
    return out[:, :, left : left + t]


def _attend_chunks(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    b: int,
    h: int,
    n: int,
    chunk: int,
    d: int,
    valid: torch.Tensor | None,
) -> torch.Tensor:
    """SDPA over n chunks laid out [B, H, n(*chunk), ...]; valid: [B, n, chunk] key mask or None.

    Returns [B, H, n, chunk, d].
    """
    qc, kc, vc = (
        x.reshape(b, h, n, chunk, d).transpose(1, 2).reshape(b * n, h, chunk, d) for x in (q, k, v)
    )
    mask = None
    if valid is not None:
        mask = valid.reshape(b * n, 1, 1, chunk)
        # A chunk made only of padding keys would give NaN rows; let those (discarded) rows
        # see themselves.  Chunks holding any real key are untouched.
        empty = ~mask.any(dim=-1, keepdim=True)
        mask = mask | (empty & torch.eye(chunk, dtype=torch.bool, device=q.device))
    out = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=mask)
    return out.reshape(b, n, h, chunk, d).transpose(1, 2)


class ChunkTransformerBlock(nn.Module):
    """One pre-norm block: chunked self-attention (chord FiLM), text cross-attention, FFN."""

    def __init__(
        self,
        dim: int,
        heads: int,
        chunk_size: int,
        shifted: bool,
        text_dim: int,
        cond_dim: int | None = None,
        ff_mult: int = 2,
        dropout: float = 0.0,
        full_attention: bool = False,
    ) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ConfigError(f"transformer width {dim} is not divisible by {heads} heads")
        if chunk_size < 2:
            raise ConfigError(f"chunk_size must be at least 2 frames, got {chunk_size}")
        self.dim, self.heads, self.chunk_size, self.shifted = dim, heads, chunk_size, shifted
        self.full_attention = full_attention
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=cond_dim is None)
        self.film = nn.Linear(cond_dim, 2 * dim) if cond_dim is not None else None
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.q_cross = nn.Linear(dim, dim)
        self.kv_cross = nn.Linear(text_dim, 2 * dim)
        self.cross_out = nn.Linear(dim, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_mult * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_mult * dim, dim),
        )

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.reshape(b, t, self.heads, self.dim // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = x.shape
        return x.transpose(1, 2).reshape(b, t, self.dim)

    def self_attention(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Self-attention over [B, T, D], chunked unless `full_attention`."""
        q, k, v = (self._heads(z) for z in self.qkv(x).chunk(3, dim=-1))
        if self.full_attention:
            mask = None if valid is None else valid[:, None, None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            shift = self.chunk_size // 2 if self.shifted else 0
            out = chunked_attention(q, k, v, self.chunk_size, shift, valid)
        return self.attn_out(self._merge(out))

    def cross_attention(
        self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        """Attend from every frame to the instruction tokens; masked tokens are ignored.

        The caller guarantees each row has at least one True (the U-Net prepends a learned
        null token), so a dropped instruction is "attend to the null token", never NaN.
        """
        q = self._heads(self.q_cross(x))
        k, v = (self._heads(z) for z in self.kv_cross(text).chunk(2, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=text_mask[:, None, None, :])
        return self.cross_out(self._merge(out))

    def forward(
        self,
        x: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        cond: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, T, D]; text: [B, L, text_dim]; text_mask: [B, L] bool; cond: [B, T, cond_dim]
        (the chord condition at this level's rate); valid: [B, T] bool, False on padded frames."""
        h = self.norm1(x)
        if self.film is not None:
            if cond is None:
                raise ConfigError("this block was built with a chord condition; pass cond")
            scale, shift = self.film(cond).chunk(2, dim=-1)
            h = h * (1 + scale) + shift
        x = x + F.dropout(self.self_attention(h, valid), self.dropout, self.training)
        x = x + F.dropout(
            self.cross_attention(self.norm2(x), text, text_mask), self.dropout, self.training
        )
        return x + self.ff(self.norm3(x))


class ChunkTransformer(nn.Module):
    """`depth` blocks over a [B, C, T] feature map; odd blocks use the shifted chunk grid."""

    def __init__(
        self,
        channels: int,
        depth: int,
        heads: int,
        chunk_size: int,
        text_dim: int,
        cond_dim: int | None,
        ff_mult: int = 2,
        dropout: float = 0.0,
        full_attention: bool = False,
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)  # per frame, so the stack stays local in time
        self.proj_in = nn.Linear(channels, channels)
        self.blocks = nn.ModuleList(
            ChunkTransformerBlock(
                channels,
                heads,
                chunk_size,
                shifted=i % 2 == 1,
                text_dim=text_dim,
                cond_dim=cond_dim,
                ff_mult=ff_mult,
                dropout=dropout,
                full_attention=full_attention,
            )
            for i in range(depth)
        )
        self.proj_out = nn.Linear(channels, channels)

    def set_full_attention(self, full: bool) -> None:
        """Switch every block between chunked and full attention (same weights; for benchmarks)."""
        for block in self.blocks:
            assert isinstance(block, ChunkTransformerBlock)
            block.full_attention = full

    def forward(
        self,
        x: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        cond: torch.Tensor | None,
        valid: torch.Tensor | None,
    ) -> torch.Tensor:
        """x: [B, C, T]; cond: [B, cond_dim, T] or None; returns [B, C, T] (residual)."""
        h = self.proj_in(self.norm(x.transpose(1, 2)))
        c = cond.transpose(1, 2) if cond is not None else None
        for block in self.blocks:
            h = block(h, text, text_mask, c, valid)
        return x + self.proj_out(h).transpose(1, 2)
