"""Frame probabilities -> stable chord segments: a sticky-HMM Viterbi pass.

Shared by both scorers: neither looks further than about a second, so the long-range
smoothing (a strong self-transition prior) happens here, once.
"""

from __future__ import annotations

import numpy as np

from musigen.chords.labels import CHORD_VOCAB
from musigen.errors import ConfigError


def viterbi_decode(probs: np.ndarray, self_transition: float = 0.97) -> np.ndarray:
    """Most likely state path [T] under a sticky HMM (uniform switches, uniform start)."""
    import librosa

    if not 0.0 < self_transition < 1.0:
        raise ConfigError(f"self_transition must be in (0, 1), got {self_transition}")
    n_states = probs.shape[1]
    trans = librosa.sequence.transition_loop(n_states, self_transition)
    emit = np.maximum(probs.T.astype(np.float64), 1e-12)
    return librosa.sequence.viterbi(emit, trans).astype(np.int64)


def path_to_segments(
    path: np.ndarray, frame_rate: float, duration: float, vocab: tuple[str, ...] = CHORD_VOCAB
) -> list[tuple[float, float, str]]:
    """Turn a frame path into contiguous, merged (start, end, label) segments over [0, duration]."""
    segments: list[tuple[float, float, str]] = []
    if path.size == 0 or duration <= 0:
        return segments
    change = np.flatnonzero(np.diff(path)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [path.size]])
    for s, e in zip(starts, ends):
        t0 = min(s / frame_rate, duration)
        t1 = min(e / frame_rate, duration) if e < path.size else duration
        if t1 > t0:
            segments.append((round(float(t0), 6), round(float(t1), 6), vocab[int(path[s])]))
    return segments
