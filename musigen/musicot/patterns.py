"""The delay pattern: how K parallel codebook streams become one autoregressive sequence.

EnCodec gives K codes per frame. Predicting all K at once from the same context ignores
that finer codebooks depend on coarser ones; predicting them one after another multiplies
the sequence length by K. MusicGen's compromise is to shift codebook k right by `delays[k]`
steps: at step s the model emits codebook 0 of frame s, codebook 1 of frame s-1, ..., so
each finer code is predicted after the coarser codes of its own frame are already known.
Positions that fall before the start or after the end of a stream hold a special pad
token (`pad_id`, one past the last real code), which the LM embeds but never predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from musigen.errors import ConfigError

#: Marker for "not known yet" in generation templates (never a valid code or pad).
UNKNOWN = -1


@dataclass(frozen=True)
class DelayPattern:
    """Per-codebook delays plus the pad token that fills the shifted-in gaps."""

    delays: tuple[int, ...]
    pad_id: int

    def __post_init__(self) -> None:
        if len(self.delays) == 0:
            raise ConfigError("a delay pattern needs at least one codebook")
        if any(int(d) < 0 for d in self.delays):
            raise ConfigError(f"delays must be >= 0, got {list(self.delays)}")
        if self.pad_id < 0:
            raise ConfigError(f"pad_id must be >= 0, got {self.pad_id}")
        object.__setattr__(self, "delays", tuple(int(d) for d in self.delays))

    @classmethod
    def musicgen(cls, num_codebooks: int, pad_id: int) -> DelayPattern:
        """MusicGen's pattern: codebook k is delayed by k steps ([0, 1, 2, 3] for EnCodec)."""
        if num_codebooks < 1:
            raise ConfigError(f"num_codebooks must be >= 1, got {num_codebooks}")
        return cls(tuple(range(num_codebooks)), pad_id)

    @property
    def num_codebooks(self) -> int:
        return len(self.delays)

    @property
    def max_delay(self) -> int:
        return max(self.delays)

    def steps_for(self, num_frames: int) -> int:
        """Length of the interleaved sequence that holds `num_frames` frames."""
        return num_frames + self.max_delay

    def frames_for(self, num_steps: int) -> int:
        """Number of frames held by an interleaved sequence of `num_steps` steps."""
        frames = num_steps - self.max_delay
        if frames < 0:
            raise ConfigError(
                f"{num_steps} steps are shorter than the pattern's max delay {self.max_delay}"
            )
        return frames

    def _delay_index(self, num_frames: int, device: torch.device) -> torch.Tensor:
        delays = torch.tensor(self.delays, device=device, dtype=torch.long)
        return torch.arange(num_frames, device=device)[None, :] + delays[:, None]  # [K, T]

    def _check_codebooks(self, tensor: torch.Tensor, what: str) -> None:
        if tensor.dim() < 2 or tensor.shape[-2] != self.num_codebooks:
            raise ConfigError(
                f"{what} must have shape [..., {self.num_codebooks}, T], got {tuple(tensor.shape)}"
            )

    def interleave(self, codes: torch.Tensor) -> torch.Tensor:
        """[..., K, T] frame-aligned codes -> [..., K, T + max_delay] delayed streams."""
        self._check_codebooks(codes, "codes")
        num_frames = codes.shape[-1]
        out = codes.new_full((*codes.shape[:-1], self.steps_for(num_frames)), self.pad_id)
        index = self._delay_index(num_frames, codes.device).expand(*codes.shape)
        return out.scatter_(-1, index, codes)

    def deinterleave(self, steps: torch.Tensor) -> torch.Tensor:
        """Exact inverse of :meth:`interleave`: [..., K, S] -> [..., K, S - max_delay]."""
        self._check_codebooks(steps, "interleaved codes")
        num_frames = self.frames_for(steps.shape[-1])
        index = self._delay_index(num_frames, steps.device).expand(*steps.shape[:-1], num_frames)
        return steps.gather(-1, index)

    def valid_mask(self, num_frames: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Bool [K, T + max_delay]: True where a real code sits, False where the pad sits."""
        steps = torch.arange(self.steps_for(num_frames), device=device)[None, :]
        delays = torch.tensor(self.delays, device=device)[:, None]
        return (steps >= delays) & (steps < delays + num_frames)

    def template(
        self,
        batch: int,
        num_frames: int,
        prefix: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What generation may not choose: (values, known), both [B, K, S].

        `prefix` [B, K, P] holds frames that already exist (the previous window's tail);
        they and every pad position are `known`, the rest are :data:`UNKNOWN` in `values`.
        """
        frames = torch.full(
            (batch, self.num_codebooks, num_frames), UNKNOWN, dtype=torch.long, device=device
        )
        if prefix is not None:
            self._check_codebooks(prefix, "prefix codes")
            if prefix.shape[0] != batch or prefix.shape[-1] > num_frames:
                raise ConfigError(
                    f"prefix codes {tuple(prefix.shape)} do not fit a batch of {batch} "
                    f"x {num_frames} frames"
                )
            frames[..., : prefix.shape[-1]] = prefix.to(device)
        values = self.interleave(frames)
        return values, values != UNKNOWN
