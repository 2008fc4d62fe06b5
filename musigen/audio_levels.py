"""Peak and loudness of an audio file read in blocks: memory stays flat however long it is.

`musigen info` on an hour of audio must not hold the hour in memory (4 GB for a 60-minute
stereo WAV as float32).  The header comes from :func:`musigen.audio.audio_info`; the levels
from one pass over :data:`BLOCK_FRAMES`-frame blocks, with the same errors as loading the
whole file (NaN/Inf, truncation, zero length).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musigen.audio import AudioInfo, audio_info, check_complete
from musigen.errors import AudioDecodeError, EmptyAudioError, NonFiniteAudioError
from musigen.loudness import LoudnessMeter
from musigen.quiet_stderr import quiet_native_stderr

#: Frames per block read (about 1.4 s at 48 kHz; 2 MB for 8 channels of float32).
BLOCK_FRAMES: int = 1 << 16


@dataclass(frozen=True)
class FileLevels:
    """A file's header facts and the levels measured over all of it."""

    info: AudioInfo
    peak_dbfs: float
    loudness_lufs: float


def scan_levels(path: str | os.PathLike[str], block_frames: int = BLOCK_FRAMES) -> FileLevels:
    """Read `path` once in blocks: sample peak (dBFS) and integrated loudness (LUFS)."""
    import soundfile as sf

    p = Path(path)
    info = audio_info(p)  # missing, not audio, too many channels, bad rate: fails here
    meter = LoudnessMeter(info.sample_rate, info.channels)
    peak = 0.0
    try:
        with quiet_native_stderr(), sf.SoundFile(str(p)) as f:
            for block in f.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    bad = int(block.size - np.count_nonzero(np.isfinite(block)))
                    at = meter.frames / info.sample_rate
                    raise NonFiniteAudioError(f"{p}: audio holds {bad} NaN or Inf samples "
                                              f"(first near {at:.2f} s)")
                if block.size:
                    peak = max(peak, float(np.max(np.abs(block))))
                meter.add(block.T)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioDecodeError(f"cannot decode {p} as audio ({str(exc).splitlines()[0]})") from exc
    check_complete(info, meter.frames)
    if meter.frames == 0:
        raise EmptyAudioError(f"{p}: audio has zero samples")
    return FileLevels(info, 20.0 * math.log10(peak) if peak > 0 else -math.inf,
                      meter.integrated())
