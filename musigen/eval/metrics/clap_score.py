"""CLAP score: mean cosine between text and audio embeddings, with the embedder named.

Scores move by a factor of two between CLAP checkpoints, so a CLAP score without the
embedder's name is not comparable to anything; :class:`ClapScore` always carries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from musigen.errors import MusigenError


class TextAudioEmbedder(Protocol):
    """What a CLAP score needs: per-window audio vectors and text vectors in one space."""

    def embed_audio(self, wav: Any, sr: int) -> Any: ...

    def embed_text(self, texts: list[str]) -> Any: ...


@dataclass(frozen=True)
class ClapScore:
    value: float
    per_item: list[float]
    embedder: str

    def as_dict(self) -> dict[str, object]:
        return {"value": self.value, "embedder": self.embedder, "n": len(self.per_item)}


def embedder_name(embedder: object) -> str:
    """A readable name for an embedder: its `name` attribute, else its class."""
    name = getattr(embedder, "name", None)
    return str(name) if name else type(embedder).__name__


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float64)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def clap_score(embedder: TextAudioEmbedder, texts: Sequence[str], wavs: Sequence[np.ndarray],
               sample_rate: int, name: str | None = None) -> ClapScore:
    """Mean over pairs of cos(text, audio); the audio vector is the mean of its windows."""
    if len(texts) != len(wavs) or not texts:
        raise MusigenError(f"CLAP score needs equal, non-zero numbers of texts and clips "
                           f"({len(texts)} vs {len(wavs)})")
    t = _unit(_numpy(embedder.embed_text(list(texts))))
    scores = []
    for i, wav in enumerate(wavs):
        a = _numpy(embedder.embed_audio(wav, sample_rate))
        a = _unit(_unit(a.reshape(-1, a.shape[-1])).mean(axis=0))
        scores.append(float(a @ t[i]))
    return ClapScore(float(np.mean(scores)), scores, name or embedder_name(embedder))
