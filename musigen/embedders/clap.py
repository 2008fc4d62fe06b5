"""Audio–text embedders: one normalised vector per audio window, texts in the same space.

MusiCoT's "thoughts" are these window embeddings (10 s by default), and analysis ranks tag
texts against them, so every backend must (1) cut audio into the same windows, (2) be
deterministic at inference and (3) normalise both sides.  Backends:

- `hf_clap`: `transformers.ClapModel` + `ClapFeatureExtractor` (48 kHz), which loads the
  public LAION checkpoints such as ``laion/larger_clap_music`` from a folder or hub id.
- `musigen_clap`: the small contrastive model trained in this repo
  (:mod:`musigen.embedders.musigen_clap`).

:func:`load_embedder` picks the backend from a preset name, a folder or a hub id.
"""

from __future__ import annotations

import copy
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from musigen.audio import check_audio, resample
from musigen.checkpoints import find_checkpoint, missing_message
from musigen.embedders.text import check_texts, hf_from_pretrained
from musigen.errors import CheckpointError, ConfigError
from musigen.hub import Pretrained, place

#: Preset names resolved to folders under the repository's `checkpoints/`.
PRESETS: dict[str, str] = {"demo": "clap_demo"}


@dataclass(frozen=True)
class Segment:
    """One analysis window in seconds; `end` may fall short of `start + window` for a tail."""

    start: float
    end: float


def to_mono(wav: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
    """Validate audio ([samples] or [channels, samples]) and mix it down to float32 mono."""
    return check_audio(wav, sample_rate).mean(axis=0).astype(np.float32, copy=False)


def segment_bounds(
    n_samples: int,
    sample_rate: int,
    window_s: float = 10.0,
    hop_s: float | None = None,
    min_tail_s: float | None = None,
) -> list[tuple[int, int]]:
    """Sample bounds of the analysis windows.

    Windows start every `hop_s` (default: `window_s`, no overlap).  The last window may be
    partial; it is kept when it holds at least `min_tail_s` of audio that no earlier window
    covered (default: a quarter window), so a 3-minute song gives 18 ten-second windows and
    a 25 s clip gives three.  Audio shorter than one window gives one (short) window.
    """
    if not window_s > 0:
        raise ConfigError(f"window must be positive, got {window_s}")
    hop_s = window_s if hop_s is None else hop_s
    if not 0 < hop_s <= window_s:
        raise ConfigError(f"hop must be in (0, window], got hop {hop_s} for window {window_s}")
    min_tail_s = window_s / 4 if min_tail_s is None else min_tail_s
    win = max(1, round(window_s * sample_rate))
    hop = max(1, round(hop_s * sample_rate))
    min_new = round(min_tail_s * sample_rate)
    bounds: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + win, n_samples)
        covered = bounds[-1][1] if bounds else 0
        if not bounds or end - covered >= min_new:
            bounds.append((start, end))
        if end >= n_samples:
            return bounds
        start += hop


def repeat_pad(x: np.ndarray, length: int) -> np.ndarray:
    """Tile a short window up to `length` (LAION's 'repeatpad' fills the rest with zeros)."""
    if x.shape[-1] >= length:
        return x[..., :length]
    reps = length // x.shape[-1]
    tiled = np.tile(x, reps)
    return np.pad(tiled, (0, length - tiled.shape[-1]))


class AudioTextEmbedder(Pretrained, nn.Module, ABC):
    """Joint audio–text embedding space with windowed audio embedding."""

    kind: ClassVar[str] = ""
    #: Which embedder this is ("<kind>:<source>"); CLAP scores are only comparable with it.
    name: str = ""

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """The rate the audio tower expects; inputs are resampled to it."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Width of the joint embedding space."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def segments(
        self, n_samples: int, sample_rate: int, window_s: float = 10.0, hop_s: float | None = None
    ) -> list[Segment]:
        """The windows `embed_audio` returns, in seconds of the input."""
        return [
            Segment(s / sample_rate, e / sample_rate)
            for s, e in segment_bounds(n_samples, sample_rate, window_s, hop_s)
        ]

    @torch.no_grad()
    def embed_audio(
        self,
        wav: np.ndarray | torch.Tensor,
        sr: int,
        window_s: float = 10.0,
        hop_s: float | None = None,
        batch_size: int = 8,
    ) -> torch.Tensor:
        """Embed audio of any length and channel count: one normalised vector per window, [S, D]."""
        x = np.asarray(resample(to_mono(wav, sr), int(sr), self.sample_rate), dtype=np.float32)
        pieces = [x[s:e] for s, e in segment_bounds(x.shape[0], self.sample_rate, window_s, hop_s)]
        out = [
            self._embed_windows(pieces[i : i + batch_size])
            for i in range(0, len(pieces), batch_size)
        ]
        return nn.functional.normalize(torch.cat(out).float(), dim=-1)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """Embed texts into the joint space, [B, D], normalised."""
        return nn.functional.normalize(self._embed_texts(check_texts(texts)).float(), dim=-1)

    @abstractmethod
    def _embed_windows(self, windows: list[np.ndarray]) -> torch.Tensor:
        """Embed mono windows at `sample_rate` (the last may be shorter) -> [S, D]."""

    @abstractmethod
    def _embed_texts(self, texts: list[str]) -> torch.Tensor: ...

    # save_pretrained / from_pretrained(name_or_dir, *, device, dtype) come from hub.Pretrained


class HFClapEmbedder(AudioTextEmbedder):
    """LAION CLAP through `transformers.ClapModel`, in its native Hugging Face folder format.

    The feature extractor's random crops (`rand_trunc`, and the fused models' random crops
    and random `is_longer` flag) are avoided by feeding it at most `max_length_s` of audio
    per call: longer windows are embedded in consecutive chunks whose embeddings are averaged.
    """

    kind = "hf_clap"

    def __init__(self, model: nn.Module, feature_extractor: Any, tokenizer: Any) -> None:
        super().__init__()
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.fused = bool(getattr(model.config.audio_config, "enable_fusion", False))
        # The truncation mode decides the mel layout (fused models take 4 stacked mels).
        self.truncation = "fusion" if self.fused else "rand_trunc"

    @property
    def sample_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def max_samples(self) -> int:
        return int(self.feature_extractor.nb_max_samples)

    def _embed_windows(self, windows: list[np.ndarray]) -> torch.Tensor:
        chunks: list[np.ndarray] = []
        owner: list[int] = []
        for i, w in enumerate(windows):
            for s in range(0, max(1, w.shape[0]), self.max_samples):
                piece = w[s : s + self.max_samples]
                if s == 0 or piece.shape[0] >= self.sample_rate:  # skip sub-second leftovers
                    chunks.append(piece)
                    owner.append(i)
        feats = self.feature_extractor(
            chunks,
            sampling_rate=self.sample_rate,
            return_tensors="pt",
            truncation=self.truncation,
            padding="repeatpad",
        )
        inputs = {"input_features": feats["input_features"].to(self.device)}
        if self.fused:  # every chunk fits max_length, so none is "longer": no random flag
            inputs["is_longer"] = torch.zeros(len(chunks), 1, dtype=torch.bool, device=self.device)
        out = self.model.get_audio_features(**inputs)
        emb = out.pooler_output if hasattr(out, "pooler_output") else out
        emb = nn.functional.normalize(emb, dim=-1)
        index = torch.tensor(owner, device=emb.device)
        summed = torch.zeros(len(windows), emb.shape[-1], device=emb.device).index_add_(
            0, index, emb
        )
        return summed

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        batch = {
            k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")
        }
        out = self.model.get_text_features(**batch)
        return out.pooler_output if hasattr(out, "pooler_output") else out

    # -- hub: the Hugging Face folder layout (config, safetensors, processor files) ------
    hub_kind = "CLAP"

    def _save_files(self, directory: Path, dtype: torch.dtype | None) -> None:
        model = self.model if dtype is None else copy.deepcopy(self.model).to(dtype)
        model.save_pretrained(directory)
        self.feature_extractor.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    @classmethod
    def _resolve(cls, name_or_dir: str | os.PathLike[str]) -> str | os.PathLike[str]:
        return name_or_dir  # a folder or a hub id; hf_from_pretrained names what is missing

    @classmethod
    def _from_folder(cls, name_or_dir: str | os.PathLike[str], *,
                     device: str | torch.device | None, dtype: torch.dtype | None,
                     **kwargs: Any) -> HFClapEmbedder:
        """Load a CLAP checkpoint (e.g. laion/larger_clap_music) from a folder or the hub."""
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        model = hf_from_pretrained(ClapModel, name_or_dir, "CLAP model", **kwargs)
        fe = hf_from_pretrained(ClapFeatureExtractor, name_or_dir, "CLAP feature extractor")
        tokenizer = hf_from_pretrained(AutoTokenizer, name_or_dir, "CLAP tokenizer")
        embedder = cls(model, fe, tokenizer)
        embedder.name = f"{cls.kind}:{name_or_dir}"
        return place(embedder, device, dtype).eval()


def larger_clap_music_config(tiny: bool = False, vocab_size: int | None = None) -> Any:
    """The `transformers.ClapConfig` of laion/larger_clap_music (HTSAT-base + RoBERTa-base).

    `tiny=True` keeps the architecture and config format but shrinks widths and depths,
    for tests and random-init smoke runs; `vocab_size` fits a small offline tokenizer.
    """
    from transformers import ClapConfig

    audio: dict[str, Any] = {
        "depths": [2, 2, 12, 2],
        "hidden_size": 1024,
        "patch_embeds_hidden_size": 128,
    }
    text: dict[str, Any] = {}
    top: dict[str, Any] = {"projection_dim": 512, "hidden_size": 768, "num_hidden_layers": 16}
    if tiny:
        audio = {
            "depths": [1, 1, 2, 1],
            "hidden_size": 128,
            "patch_embeds_hidden_size": 16,
            "num_attention_heads": [1, 2, 4, 8],
        }
        text = {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 130,
        }
        top = {"projection_dim": 64, "hidden_size": 32, "num_hidden_layers": 2}
    if vocab_size is not None:
        text["vocab_size"] = vocab_size
    return ClapConfig(
        audio_config=audio,
        text_config=text,
        initializer_factor=1.0,
        logit_scale_init_value=14.285714285714285,
        projection_hidden_act="relu",
        **top,
    )


def load_embedder(name_or_dir: str | os.PathLike[str] = "demo", **kwargs: Any) -> AudioTextEmbedder:
    """Load any audio–text embedder: a preset (`demo`), a local folder or a CLAP hub id.

    A folder's `config.json` decides the backend: `"embedder": "musigen_clap"` is the
    in-repo model, `"model_type": "clap"` is a transformers CLAP checkpoint.
    """
    source = str(name_or_dir)
    if source in PRESETS:  # a shipped folder of checkpoints/ (see musigen.checkpoints)
        found = find_checkpoint(PRESETS[source])
        if found is None:
            raise CheckpointError(f"preset {source!r} is not installed: "
                                  f"{missing_message(PRESETS[source])}")
        path = found
    else:
        path = Path(source).expanduser()
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise CheckpointError(f"missing config.json in checkpoint folder {path}")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"corrupt {config_path}: {exc.msg}") from None
        if not isinstance(config, dict):
            raise CheckpointError(f"corrupt {config_path}: expected a JSON object")
        if config.get("embedder") == "musigen_clap":
            from musigen.embedders.musigen_clap import MusigenClap

            return MusigenClap.from_pretrained(path, **kwargs)
        if config.get("model_type") == "clap":
            return HFClapEmbedder.from_pretrained(path, **kwargs)
        raise CheckpointError(
            f"{path} is neither a musigen_clap nor a transformers CLAP checkpoint"
        )
    return HFClapEmbedder.from_pretrained(source, **kwargs)
