"""Copy detection: the longest stretch of audio codes an output shares with a reference.

A style reference must steer a piece, not be pasted into it. Codec codes make copying
measurable exactly: two frames are "the same" when every compared codebook holds the same
code. The run is searched at every offset (longest common substring of frame tuples), so a
copy that starts later in the output, or from the middle of the reference, is still found.
Codebook 0 alone is also reported: it carries the coarse content, and matching only it is
the looser (more sensitive) test.

Runs are only meaningful next to a floor: silence and steady tones repeat the same code,
so two unrelated clips can share a few frames. Report an output with the reference against
an output made without it (or against another item's reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from musigen.errors import ConfigError


@dataclass(frozen=True)
class SharedRun:
    """The longest identical run: its length and where it starts in each sequence."""

    frames: int
    seconds: float
    out_start: int
    ref_start: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _frames(codes: Any, name: str) -> np.ndarray:
    """Codes [K, T] or [1, K, T] (tensor or array) -> int64 array [K, T]."""
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    x = np.asarray(codes)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ConfigError(f"{name} codes must be [K, T] (or [1, K, T]), got shape {x.shape}")
    return x.astype(np.int64, copy=False)


def longest_shared_run(out_codes: Any, ref_codes: Any, frame_rate: float,
                       codebooks: int | None = None) -> SharedRun:
    """Longest run of consecutive frames identical (in the first `codebooks`, default all)
    between two code sequences [K, T1] and [K, T2], at any offset.

    Dynamic programming over the frame-equality matrix, one output frame at a time:
    run[i, j] = run[i-1, j-1] + 1 where frames i and j match, else 0. O(T1 * T2) memory
    and time, which is small for clips (10 s at 50 Hz is 500 x 500).
    """
    if not frame_rate > 0:
        raise ConfigError(f"frame_rate must be > 0, got {frame_rate}")
    a, b = _frames(out_codes, "output"), _frames(ref_codes, "reference")
    if a.shape[0] != b.shape[0]:
        raise ConfigError(f"output has {a.shape[0]} codebooks, reference {b.shape[0]}")
    k = a.shape[0] if codebooks is None else codebooks
    if not 1 <= k <= a.shape[0]:
        raise ConfigError(f"codebooks must be in 1..{a.shape[0]}, got {k}")
    a, b = a[:k], b[:k]
    if a.shape[1] == 0 or b.shape[1] == 0:
        return SharedRun(0, 0.0, 0, 0)
    equal = np.all(a[:, :, None] == b[:, None, :], axis=0)  # [T1, T2]
    run = np.zeros(b.shape[1] + 1, dtype=np.int64)
    best, best_i, best_j = 0, 0, 0
    for i in range(a.shape[1]):
        new = np.zeros_like(run)
        new[1:] = np.where(equal[i], run[:-1] + 1, 0)
        run = new
        j = int(run.argmax())
        if run[j] > best:
            best, best_i, best_j = int(run[j]), i, j - 1
    if best == 0:
        return SharedRun(0, 0.0, 0, 0)
    return SharedRun(best, best / frame_rate, best_i - best + 1, best_j - best + 1)


def copy_runs(out_codes: Any, ref_codes: Any, frame_rate: float) -> dict[str, SharedRun]:
    """The longest shared run over all K codebooks ("all") and over codebook 0 ("cb0")."""
    return {"all": longest_shared_run(out_codes, ref_codes, frame_rate),
            "cb0": longest_shared_run(out_codes, ref_codes, frame_rate, codebooks=1)}


def summarise_runs(runs: Sequence[SharedRun]) -> dict[str, Any]:
    """Max and median run (frames and seconds) over items; the max is what flags copying."""
    if not runs:
        return {"n": 0, "max_frames": None, "median_frames": None, "max_s": None, "median_s": None}
    frames = np.array([r.frames for r in runs], dtype=np.float64)
    seconds = np.array([r.seconds for r in runs], dtype=np.float64)
    return {"n": len(runs), "max_frames": int(frames.max()), "median_frames": float(np.median(frames)),
            "max_s": float(seconds.max()), "median_s": float(np.median(seconds))}
