"""Chord labels -> one-hot chord matrix at any frame rate: InstructME's chord condition.

The editing U-Net runs on codec latents whose frame rate differs from the recogniser's, so
the condition is built from time-stamped labels rather than from recogniser frames.  Each
frame takes the chord that covers most of its span; uncovered time is ``N``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from musigen.chords.labels import CHORD_VOCAB, normalize_label
from musigen.errors import ConfigError


def chord_matrix(
    chords: list[tuple[float, float, str]],
    frame_rate: float,
    n_frames: int,
    vocab: tuple[str, ...] = CHORD_VOCAB,
) -> np.ndarray:
    """One-hot float32 matrix [n_frames, len(vocab)]; frame i spans [i, i + 1) / frame_rate.

    Labels outside `vocab` are mapped to their majmin reduction, then to ``N``
    (see :func:`musigen.chords.labels.normalize_label`).
    """
    if (
        isinstance(frame_rate, bool)
        or not isinstance(frame_rate, numbers.Real)
        or not (math.isfinite(frame_rate) and frame_rate > 0)
    ):
        raise ConfigError(f"frame_rate must be a positive number, got {frame_rate!r}")
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise ConfigError(f"n_frames must be a non-negative integer, got {n_frames!r}")
    vocab = tuple(vocab)
    index = {label: i for i, label in enumerate(vocab)}
    n_idx = index[normalize_label("N", vocab)]
    cover = np.zeros((n_frames, len(vocab)), np.float64)
    frame_len = 1.0 / frame_rate
    for start, end, label in chords:
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ConfigError(f"bad chord segment ({start}, {end}, {label!r})")
        col = index[normalize_label(label, vocab)]
        first = max(math.floor(start * frame_rate), 0)
        last = min(math.ceil(end * frame_rate), n_frames)
        if last <= first:
            continue
        frames = np.arange(first, last)
        overlap = np.minimum(end, (frames + 1) * frame_len) - np.maximum(start, frames * frame_len)
        cover[frames, col] += np.maximum(overlap, 0.0)
    # Whatever part of a frame no segment covers counts as "no chord".
    cover[:, n_idx] += np.maximum(frame_len - cover.sum(axis=1), 0.0)
    out = np.zeros((n_frames, len(vocab)), np.float32)
    out[np.arange(n_frames), cover.argmax(axis=1)] = 1.0
    return out
