"""Multi-scale STFT discriminator with feature matching (EnCodec's adversarial term).

Reconstruction losses alone give a codec that is right on average but dull in texture; a
discriminator that looks at complex spectrograms at several resolutions restores detail.
It costs about as much compute as the codec itself, so CPU demo recipes turn it off and
GPU recipes turn it on after a warm-up (`start_step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from musigen.errors import ConfigError


@dataclass
class DiscriminatorConfig:
    """Shape of the discriminator and the weights of its loss terms."""

    n_ffts: list[int] = field(default_factory=lambda: [1024, 2048, 512])
    filters: int = 32
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 3.0
    start_step: int = 0
    lr: float = 3e-4


class STFTDiscriminator(nn.Module):
    """A 2-D conv net over one complex STFT (real and imaginary parts as channels)."""

    def __init__(self, n_fft: int, channels: int, filters: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        wn = nn.utils.parametrizations.weight_norm
        self.convs = nn.ModuleList([
            wn(nn.Conv2d(2 * channels, filters, (3, 9), padding=(1, 4))),
            wn(nn.Conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(1, 1), padding=(1, 4))),
            wn(nn.Conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(2, 1), padding=(2, 4))),
            wn(nn.Conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(4, 1), padding=(4, 4))),
            wn(nn.Conv2d(filters, filters, (3, 3), padding=(1, 1))),
        ])
        self.out = wn(nn.Conv2d(filters, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return the logit map and every hidden feature map (for feature matching)."""
        b, c, n = wav.shape
        spec = torch.stft(wav.reshape(b * c, n), self.n_fft, self.hop, window=self.window,
                          return_complex=True)
        x = torch.view_as_real(spec).permute(0, 3, 2, 1)  # [B*C, 2, T, F]
        x = x.reshape(b, c * 2, x.shape[2], x.shape[3])
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return self.out(x), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    """Several :class:`STFTDiscriminator` at different FFT sizes."""

    def __init__(self, channels: int = 1, n_ffts: Sequence[int] = (1024, 2048, 512), filters: int = 32) -> None:
        super().__init__()
        if not n_ffts:
            raise ConfigError("the discriminator needs at least one FFT size")
        self.discriminators = nn.ModuleList([STFTDiscriminator(n, channels, filters) for n in n_ffts])

    def forward(self, wav: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(wav) for d in self.discriminators]


def discriminator_loss(real: list[tuple[torch.Tensor, list[torch.Tensor]]],
                       fake: list[tuple[torch.Tensor, list[torch.Tensor]]]) -> torch.Tensor:
    """Hinge loss for the discriminator (fake must be computed from detached audio)."""
    loss = real[0][0].new_zeros(())
    for (r, _), (f, _) in zip(real, fake):
        loss = loss + F.relu(1 - r).mean() + F.relu(1 + f).mean()
    return loss / len(real)


def generator_losses(real: list[tuple[torch.Tensor, list[torch.Tensor]]],
                     fake: list[tuple[torch.Tensor, list[torch.Tensor]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Hinge adversarial loss and relative feature-matching L1 for the generator."""
    adv = fake[0][0].new_zeros(())
    fm = fake[0][0].new_zeros(())
    n_feats = 0
    for (_, rf), (f, ff) in zip(real, fake):
        adv = adv + F.relu(1 - f).mean()
        for a, b in zip(rf, ff):
            fm = fm + F.l1_loss(b, a.detach()) / a.detach().abs().mean().clamp_min(1e-6)
            n_feats += 1
    return adv / len(fake), fm / max(1, n_feats)
