"""A small learned chord recogniser: a pitch-equivariant temporal CNN over octave-wise chroma.

Why this shape: a chord's quality is the same pattern whatever its root, so one network
scores "is there a <quality> chord rooted at pitch class 0?" and is applied to all 12
rotations of the input.  That shares every weight across the 12 roots (12x the data for
free, and no key bias from the training corpus) and keeps the model tiny (~70 k parameters,
well under the 5 MB checkpoint budget).  Dilated temporal convolutions give it about one
second of context; the Viterbi pass (:mod:`musigen.chords.decoding`) does the long-range
smoothing.

A recogniser is a hub folder, ``config.json`` plus ``model.safetensors`` (fp16, the shipped
form), saved on its own (``checkpoints/chords``) or as the ``chords/`` component of an
InstructME pipeline folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from musigen.chords.features import N_OCTAVES, ChordFeatures, semitone_spectrum
from musigen.chords.labels import QUALITIES, ROOTS
from musigen.errors import CheckpointError, ConfigError
from musigen.hub import Pretrained, load_config, load_state_into, load_weights, place


@dataclass
class ChordModelConfig:
    """Architecture and decoding settings, saved as the checkpoint's config.json."""

    qualities: tuple[str, ...] = QUALITIES
    n_octaves: int = N_OCTAVES
    hidden: int = 64
    kernel_size: int = 5
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    time_stride: int = 2  # the body runs at FRAME_RATE / time_stride (cheaper, longer context)
    self_transition: float = 0.95
    feature: str = "logcqt-c1-6oct-centred-semitone-max"

    def __post_init__(self) -> None:
        self.qualities = tuple(self.qualities)
        self.dilations = tuple(int(d) for d in self.dilations)
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 1:
            raise ConfigError(f"chord model hidden must be a positive integer, got {self.hidden!r}")
        if not 0.0 < self.self_transition < 1.0:
            raise ConfigError(
                f"chord model self_transition must be in (0, 1), got {self.self_transition!r}"
            )
        unknown = [q for q in self.qualities if q not in QUALITIES]
        if unknown:
            raise CheckpointError(f"chord model config has unknown qualities {unknown}")
        if self.feature != ChordModelConfig.feature:
            raise CheckpointError(
                f"chord model was trained on features {self.feature!r}; this build computes "
                f"{ChordModelConfig.feature!r}"
            )

    @property
    def vocab(self) -> tuple[str, ...]:
        """Output order: N, then root-major (r:q for every root, every quality)."""
        return ("N",) + tuple(f"{r}:{q}" for r in ROOTS for q in self.qualities)


class ChordNet(nn.Module):
    """Frame logits [B, T, 1 + 12 * Q] from octave-wise chroma [B, T, n_octaves * 12]."""

    def __init__(self, config: ChordModelConfig) -> None:
        super().__init__()
        self.config = config
        c_in, h = config.n_octaves * 12, config.hidden
        stride = config.time_stride
        layers: list[nn.Module] = [nn.Conv1d(c_in, h, stride, stride=stride), nn.GELU()]
        for d in config.dilations:
            layers += [
                nn.Conv1d(
                    h, h, config.kernel_size, dilation=d, padding=d * (config.kernel_size - 1) // 2
                ),
                nn.GELU(),
            ]
        self.body = nn.Sequential(*layers)
        self.quality_head = nn.Conv1d(h, len(config.qualities), 1)
        self.no_chord_head = nn.Conv1d(h, 1, 1)
        rot = (
            torch.arange(12)[None, :] + torch.arange(12)[:, None]
        ) % 12  # rot[r, k] = (k + r) % 12
        self.register_buffer("rotation", rot, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t_in, _ = x.shape
        o, stride = self.config.n_octaves, self.config.time_stride
        pad = (-t_in) % stride
        if pad:
            x = nn.functional.pad(x, (0, 0, 0, pad))
        t = x.shape[1]
        chroma = x.reshape(b, t, o, 12)[..., self.rotation]  # [B, T, O, 12 roots, 12 pcs]
        z = chroma.permute(0, 3, 2, 4, 1).reshape(b * 12, o * 12, t)  # root pc first in each octave
        hid = self.body(z)  # [B*12, H, T / stride]
        t = hid.shape[-1]
        quality = self.quality_head(hid).reshape(b, 12, -1, t)  # [B, 12, Q, T]
        invariant = hid.reshape(b, 12, -1, t).mean(dim=1)  # same for every rotation
        no_chord = self.no_chord_head(invariant)  # [B, 1, T]
        roots_first = quality.permute(0, 3, 1, 2).reshape(b, t, -1)  # [B, T, 12 * Q], root-major
        logits = torch.cat([no_chord.permute(0, 2, 1), roots_first], dim=-1)
        return logits.repeat_interleave(stride, dim=1)[:, :t_in]


def model_input(features: ChordFeatures) -> np.ndarray:
    """The network's input for one piece: semitone-pooled log-CQT [T, 72]."""
    return semitone_spectrum(features.logcqt).astype(np.float32)


class ChordRecognizer(Pretrained):
    """A trained ChordNet plus its config: what :func:`musigen.chords.recognize_chords` calls."""

    #: What a missing-folder error calls this.
    hub_kind = "chord model"
    config_class = ChordModelConfig
    save_dtype = torch.float16  # the shipped form

    def __init__(self, config: ChordModelConfig, net: ChordNet | None = None) -> None:
        self.config = config
        self.net = net if net is not None else ChordNet(config)
        self.net.eval()

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.config.vocab

    @torch.no_grad()
    def frame_probabilities(self, features: ChordFeatures) -> np.ndarray:
        """Per-frame probabilities [T, V] over :attr:`vocab`; silent frames are forced to N."""
        weight = next(self.net.parameters())
        x = torch.from_numpy(model_input(features))[None].to(weight.device, weight.dtype)
        probs = torch.softmax(self.net(x)[0].float(), dim=-1).cpu().numpy()
        probs[features.silent] = 0.0
        probs[features.silent, 0] = 1.0
        return probs

    # save_pretrained / from_pretrained come from hub.Pretrained (config.json + fp16 weights)
    def hub_state_dict(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()

    def to(self, device: str | torch.device | None = None,
           dtype: torch.dtype | None = None) -> ChordRecognizer:
        """Inference runs on CPU numpy features, so `device`/`dtype` only move the network."""
        self.net.to(device=device, dtype=dtype)
        return self

    def eval(self) -> ChordRecognizer:
        self.net.eval()
        return self

    @classmethod
    def _from_folder(cls, folder: Path, *, device: str | torch.device | None,
                     dtype: torch.dtype | None) -> ChordRecognizer:
        config = load_config(folder, ChordModelConfig)
        net = ChordNet(config)
        load_state_into(net, load_weights(folder), str(folder))
        return place(cls(config, net), device, dtype)


def load_chord_model(directory: str | os.PathLike[str]) -> ChordRecognizer:
    """Load a recogniser saved by `ChordRecognizer.save_pretrained` (CheckpointError if broken)."""
    return ChordRecognizer.from_pretrained(directory)
