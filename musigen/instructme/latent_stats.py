"""Per-channel statistics that normalise codec latents for diffusion.

Codec latents have channels of very different scales; the diffusion noise schedule assumes
roughly unit variance, so every latent is standardised per channel before the U-Net sees
it and de-standardised before the codec decodes it.  The statistics are computed once over
the training latents (:func:`musigen.codec.latent_channel_stats`) and saved beside the
model that was trained on them, because a model is only valid with its own statistics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from musigen.errors import CheckpointError, ConfigError

STATS_NAME = "latent_stats.safetensors"


@dataclass
class LatentStats:
    """Mean and standard deviation per latent channel, both `[D]` float32."""

    mean: torch.Tensor
    std: torch.Tensor

    def __post_init__(self) -> None:
        self.mean = torch.as_tensor(self.mean, dtype=torch.float32).reshape(-1)
        self.std = torch.as_tensor(self.std, dtype=torch.float32).reshape(-1)
        if self.mean.shape != self.std.shape or self.mean.numel() == 0:
            raise ConfigError(
                f"latent mean {tuple(self.mean.shape)} and std {tuple(self.std.shape)} must be "
                "non-empty vectors of one length"
            )
        if not (torch.isfinite(self.mean).all() and torch.isfinite(self.std).all()) or bool(
            (self.std <= 0).any()
        ):
            raise ConfigError("latent statistics must be finite with a positive std")

    @property
    def dim(self) -> int:
        return int(self.mean.numel())

    @classmethod
    def identity(cls, dim: int) -> LatentStats:
        return cls(torch.zeros(dim), torch.ones(dim))

    def _check(self, z: torch.Tensor) -> None:
        if z.dim() < 2 or z.shape[-2] != self.dim:
            raise ConfigError(f"latents must be [..., {self.dim}, T], got {tuple(z.shape)}")

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """`[..., D, T]` codec latents -> standardised latents."""
        self._check(z)
        m, s = self.mean.to(z.device, z.dtype), self.std.to(z.device, z.dtype)
        return (z - m[:, None]) / s[:, None]

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        self._check(z)
        m, s = self.mean.to(z.device, z.dtype), self.std.to(z.device, z.dtype)
        return z * s[:, None] + m[:, None]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``{mean, std}`` as safetensors, atomically."""
        from safetensors.torch import save_file

        from musigen.atomic import atomic_path

        target = Path(path)
        with atomic_path(target) as tmp:
            save_file({"mean": self.mean.contiguous(), "std": self.std.contiguous()}, str(tmp))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatentStats:
        """Read a file written by :meth:`save`; missing or corrupt files are CheckpointErrors."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"missing latent statistics file {p}")
        try:
            data = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"corrupt latent statistics file {p}: {exc}") from None
        if set(data) != {"mean", "std"}:
            raise CheckpointError(f"{p} must hold exactly 'mean' and 'std', got {sorted(data)}")
        try:
            return cls(data["mean"], data["std"])
        except ConfigError as exc:
            raise CheckpointError(f"{p}: {exc}") from None
