"""Plan-aligned audio conditioning: each audio step also sees the plan segment it is in.

Why: in the MusiCoT sequence the audio reads its plan only through causal self-attention
over the thought tokens at the start of the sequence, and must work out from positions
which segment is "now". The demo LM never learned to: replacing its plan by NULL tokens
changes its held-out audio loss by about 0.001-0.005 nats of 5.3, so a plan (and a style
reference that shapes the plan) hardly reaches the sound. With `LMConfig.plan_aligned`,
the mean embedding of the current segment's thought tokens goes through a projection
(zero-initialised, so a fine-tune starts exactly where the plain LM was) and is added to
the input that predicts each audio step. This is ours; the paper does not describe it.

Step j of the delay pattern is frame j of codebook 0, so its segment is
``floor((offset + j) / segment_frames)`` where `offset` is how many frames the excerpt (or
the long-form window) starts after the plan's first segment, clamped to the plan.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from musigen.errors import ConfigError


def step_segments(offset: torch.Tensor | float, num_steps: int, segment_frames: float,
                  num_segments: int) -> torch.Tensor:
    """[B, num_steps] (or [1, num_steps] for a float offset) plan segment of each audio step."""
    if segment_frames <= 0 or num_segments < 1 or num_steps < 0:
        raise ConfigError(
            f"need segment_frames > 0, a plan and num_steps >= 0, got {segment_frames}, "
            f"{num_segments} segments, {num_steps} steps"
        )
    offset_t = torch.as_tensor(offset, dtype=torch.float64).reshape(-1, 1)
    frames = torch.arange(num_steps, dtype=torch.float64, device=offset_t.device)
    seg = torch.floor((offset_t + frames) / float(segment_frames)).long()
    return seg.clamp_(0, num_segments - 1)


def segment_means(thought_states: torch.Tensor, token_segments: torch.Tensor,
                  num_segments: int) -> torch.Tensor:
    """[B, N, d] plan token embeddings -> [B, S, d] mean per segment (`token_segments` [N])."""
    if token_segments.dim() != 1 or token_segments.shape[0] != thought_states.shape[1]:
        raise ConfigError(
            f"token_segments must be [{thought_states.shape[1]}], got {tuple(token_segments.shape)}"
        )
    onehot = F.one_hot(token_segments.to(thought_states.device), num_segments).to(thought_states.dtype)
    weights = onehot / onehot.sum(0, keepdim=True).clamp(min=1)  # [N, S]
    return torch.einsum("bnd,ns->bsd", thought_states, weights)


def batch_alignment(batch: dict[str, torch.Tensor]) -> dict[str, object]:
    """The keyword arguments a plan-aligned LM's forward takes, from a collated batch
    (`musigen.training.musicot_datamodule.collate`): every row shares the token layout and
    the segment length, each has its own offset."""
    return {"token_segments": batch["token_segments"][0], "plan_offset": batch["plan_offset"],
            "segment_frames": float(batch["segment_frames"][0])}


def gather_steps(segment_states: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """[B, S, d] per-segment states and [B or 1, n] step segments -> [B, n, d]."""
    b, _, d = segment_states.shape
    index = steps.to(segment_states.device).expand(b, -1)
    return segment_states.gather(1, index[..., None].expand(-1, -1, d))
