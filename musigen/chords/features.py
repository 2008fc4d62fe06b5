"""The recogniser's front end: audio -> peak-referenced log-CQT -> semitone chroma.

Both scorers (templates and the learned model) read the same features, so they can be
swapped without touching anything else.  The CQT (not an STFT) is used because its
log-frequency bins line up with semitones, which the templates and the pitch-equivariant
learned model both rely on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musigen.errors import (
    ChannelCountError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
)

#: Internal analysis rate; audio at any other rate is resampled with soxr first.
ANALYSIS_RATE = 16000
HOP_LENGTH = 512
FRAME_RATE = ANALYSIS_RATE / HOP_LENGTH  # 31.25 frames per second
N_OCTAVES = 6  # C1 .. B6
BINS_PER_SEMITONE = 3
#: Lowest CQT bin, in MIDI: C1 less a third of a semitone, so that each group of 3 bins is
#: centred on its semitone (-33, 0, +33 cents).  Uncentred groups leak each note into the
#: semitone below, which blurs major and minor thirds.
FMIN_MIDI = 24 - (BINS_PER_SEMITONE - 1) / (2 * BINS_PER_SEMITONE)
#: Shorter clips are zero-padded to this length (frames past the end are dropped): the CQT
#: halves the rate once per octave and its lowest octave needs 1024 samples at 1/32 of the rate.
_MIN_SAMPLES = 1024 * 2 ** (N_OCTAVES - 1)
_SILENCE_PEAK = 1e-4


def _as_mono(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Validate audio and return it as float32 mono; errors are specific musigen types."""
    if not isinstance(wav, np.ndarray):
        raise TypeError(f"audio must be a numpy array, got {type(wav).__name__}")
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, (int, np.integer))
        or sample_rate <= 0
    ):
        raise SampleRateError(f"sample rate must be a positive integer, got {sample_rate!r}")
    if wav.ndim == 2:
        if wav.shape[0] > 8:
            raise ChannelCountError(
                f"audio of shape {wav.shape} has {wav.shape[0]} channels; "
                "expected [channels, samples]"
            )
        wav = wav.mean(axis=0) if wav.shape[0] > 0 else wav.reshape(-1)
    elif wav.ndim != 1:
        raise ChannelCountError(
            f"audio must be [samples] or [channels, samples], got shape {wav.shape}"
        )
    if wav.size == 0:
        raise EmptyAudioError("audio has zero samples")
    wav = wav.astype(np.float32, copy=False)
    if not np.all(np.isfinite(wav)):
        raise NonFiniteAudioError("audio contains NaN or Inf samples")
    return wav


@dataclass(frozen=True)
class ChordFeatures:
    """Log-CQT over six octaves at 3 bins per semitone, plus what is needed to place frames."""

    logcqt: np.ndarray  # [T, N_OCTAVES * 12 * BINS_PER_SEMITONE], values in [0, 1]
    frame_rate: float
    duration: float
    silent: np.ndarray  # [T] bool, frames with no audible energy


def chord_features(wav: np.ndarray, sample_rate: int) -> ChordFeatures:
    """Compute the shared front end: a peak-referenced dB CQT scaled to [0, 1]."""
    import librosa
    import soxr

    mono = _as_mono(wav, sample_rate)
    duration = mono.size / float(sample_rate)
    if sample_rate != ANALYSIS_RATE:
        mono = soxr.resample(mono, sample_rate, ANALYSIS_RATE).astype(np.float32)
    n_frames = max(1, int(np.ceil(mono.size / HOP_LENGTH)))
    if mono.size < _MIN_SAMPLES:
        mono = np.pad(mono, (0, _MIN_SAMPLES - mono.size))
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    n_bins = N_OCTAVES * 12 * BINS_PER_SEMITONE
    if peak < _SILENCE_PEAK:
        return ChordFeatures(
            np.zeros((n_frames, n_bins), np.float32), FRAME_RATE, duration, np.ones(n_frames, bool)
        )
    cqt = np.abs(
        librosa.cqt(
            mono / peak,
            sr=ANALYSIS_RATE,
            hop_length=HOP_LENGTH,
            fmin=librosa.midi_to_hz(FMIN_MIDI),
            n_bins=n_bins,
            bins_per_octave=12 * BINS_PER_SEMITONE,
        )
    ).T[:n_frames]
    db = librosa.amplitude_to_db(cqt, ref=max(float(cqt.max()), 1e-10), top_db=80.0)
    logcqt = ((db + 80.0) / 80.0).astype(np.float32)
    frame_peak = cqt.max(axis=1)
    silent = frame_peak < 1e-3 * max(float(cqt.max()), 1e-10)
    return ChordFeatures(logcqt, FRAME_RATE, duration, silent)


def semitone_spectrum(logcqt: np.ndarray) -> np.ndarray:
    """Pool 3 bins per semitone to 1 (max, robust to slight detuning): [T, N_OCTAVES * 12]."""
    t = logcqt.shape[0]
    return logcqt.reshape(t, -1, BINS_PER_SEMITONE).max(axis=2)
