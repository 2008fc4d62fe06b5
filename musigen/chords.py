"""Chord recognition: audio -> log-CQT -> frame scores -> HMM/Viterbi -> Harte-labelled segments.

Two scorers share one front end and one decoder:

- a no-training template scorer (bass + treble chroma against binary chord templates), which
  is always available;
- a small learned scorer (:mod:`musigen.chord_model`) trained on the procedural corpus, used
  when its checkpoint is present because templates alone confuse relative majors and minors
  and suffer from drums.

Both give per-frame probabilities over :data:`CHORD_VOCAB`; a Viterbi pass with a strong
self-transition prior turns those into stable segments.  Labels are Harte syntax
(``C:maj``, ``A:min``, ``G:7``, ``N``) so that ``mir_eval.chord`` can score them directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musigen.errors import (
    ChannelCountError,
    ConfigError,
    DataError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
    VocabularyError,
)

#: Pitch-class names used for roots; sharps only, so every label has one spelling.
ROOTS: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

#: Qualities the recogniser can emit, with their pitch classes relative to the root.
QUALITY_INTERVALS: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "dim": (0, 3, 6),
    "sus4": (0, 5, 7),
}
QUALITIES: tuple[str, ...] = tuple(QUALITY_INTERVALS)

#: The chord vocabulary: "N" (no chord) first, then root-major order (C:maj, C:min, ...).
CHORD_VOCAB: tuple[str, ...] = ("N",) + tuple(f"{r}:{q}" for r in ROOTS for q in QUALITIES)

#: The 25-class major/minor alphabet (N, then C:maj, C:min, C#:maj, ...), for a compact condition.
MAJMIN_VOCAB: tuple[str, ...] = ("N",) + tuple(f"{r}:{q}" for r in ROOTS for q in ("maj", "min"))

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


# ----------------------------------------------------------------------------- labels


def _bitmap_key(bits: np.ndarray) -> tuple[int, ...]:
    return tuple(int(b) for b in np.flatnonzero(bits))


_QUALITY_BY_BITMAP: dict[tuple[int, ...], str] = {iv: q for q, iv in QUALITY_INTERVALS.items()}


def normalize_label(label: str, vocab: tuple[str, ...] = CHORD_VOCAB) -> str:
    """Map any Harte label onto `vocab`: exact match, same chord respelled, majmin reduction, N.

    Inversions are dropped (``C:maj/3`` -> ``C:maj``) and enharmonic roots respelled
    (``Db:min`` -> ``C#:min``).  A quality outside the vocabulary falls back to its major/minor
    reduction by its third, and a chord without a usable third (``C:5``, ``C:sus2`` when sus2
    is not in the vocabulary) becomes ``N``.
    """
    import mir_eval.chord as mc

    if "N" not in vocab:
        raise VocabularyError("a chord vocabulary must contain 'N' (no chord)")
    if label in vocab:
        return label
    try:
        root, bits, _bass = mc.encode(label.strip())
    except (mc.InvalidChordException, ValueError, IndexError) as exc:
        raise VocabularyError(f"not a Harte chord label: {label!r} ({exc})") from None
    if root < 0:
        return "N"  # N and X
    quality = _QUALITY_BY_BITMAP.get(_bitmap_key(bits))
    if quality is not None and f"{ROOTS[root]}:{quality}" in vocab:
        return f"{ROOTS[root]}:{quality}"
    major, minor = bool(bits[4]), bool(bits[3])
    reduced = "maj" if major else "min" if minor else None
    if reduced is not None and f"{ROOTS[root]}:{reduced}" in vocab:
        return f"{ROOTS[root]}:{reduced}"
    return "N"


def majmin_label(label: str) -> str:
    """Reduce a label to the 25-class majmin alphabet (``N`` or ``root:maj``/``root:min``)."""
    return normalize_label(label, MAJMIN_VOCAB)


# ----------------------------------------------------------------------------- audio front end


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
    """Compute the shared front end: a peak-referenced dB CQT scaled to [0, 1].

    The CQT (not an STFT) is used because its log-frequency bins line up with semitones, which
    both the templates and the pitch-equivariant learned model rely on.
    """
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


# ----------------------------------------------------------------------------- template scorer


@dataclass(frozen=True)
class TemplateParams:
    """Knobs of the template scorer (tuned on corpus seeds disjoint from the eval seeds)."""

    bass_octaves: tuple[int, int] = (0, 2)  # C1..B2
    treble_octaves: tuple[int, int] = (2, 6)  # C3..B6
    bass_weight: float = 1.0
    seventh_penalty: float = 0.0  # > 0 makes four-note templates earn their extra note
    no_chord_score: float = 0.35
    sharpness: float = 20.0
    power: float = 1.0  # > 1 emphasises peaks over the dB floor


#: Viterbi self-transition for the template scorer (tuned with the params above).
TEMPLATE_SELF_TRANSITION = 0.995


def _chord_templates(vocab: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm binary templates [V, 12] and root one-hots [V, 12] (zeros for N)."""
    import mir_eval.chord as mc

    temps = np.zeros((len(vocab), 12), np.float32)
    roots = np.zeros((len(vocab), 12), np.float32)
    for i, label in enumerate(vocab):
        root, bits, _ = mc.encode(label)
        if root < 0:
            continue
        temps[i] = np.roll(bits, root)
        roots[i, root] = 1.0
    norms = np.linalg.norm(temps, axis=1, keepdims=True)
    return temps / np.maximum(norms, 1e-9), roots


def template_probabilities(
    features: ChordFeatures,
    vocab: tuple[str, ...] = CHORD_VOCAB,
    params: TemplateParams = TemplateParams(),
) -> np.ndarray:
    """Per-frame probabilities [T, V] from bass/treble chroma matched to chord templates."""
    return template_probabilities_from_spectrum(
        semitone_spectrum(features.logcqt), features.silent, vocab, params
    )


def template_probabilities_from_spectrum(
    semitones: np.ndarray,
    silent: np.ndarray,
    vocab: tuple[str, ...] = CHORD_VOCAB,
    params: TemplateParams = TemplateParams(),
) -> np.ndarray:
    """Template scoring on a semitone spectrum [T, 72] (split out so tuning can reuse a cache)."""
    spec = semitones**params.power  # [T, 72]
    octs = spec.reshape(spec.shape[0], N_OCTAVES, 12)
    treble = octs[:, params.treble_octaves[0] : params.treble_octaves[1]].sum(axis=1)
    bass = octs[:, params.bass_octaves[0] : params.bass_octaves[1]].sum(axis=1)
    treble = treble / np.maximum(np.linalg.norm(treble, axis=1, keepdims=True), 1e-9)
    bass = bass / np.maximum(bass.sum(axis=1, keepdims=True), 1e-9)
    temps, roots = _chord_templates(vocab)
    sizes = np.array([max(int(np.count_nonzero(t)), 3) for t in temps]) - 3
    score = (
        treble @ temps.T + params.bass_weight * (bass @ roots.T) - params.seventh_penalty * sizes
    )
    n_idx = vocab.index("N")
    score[:, n_idx] = params.no_chord_score
    score[silent] = -1.0
    score[silent, n_idx] = 1.0
    logits = params.sharpness * score
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


# ----------------------------------------------------------------------------- decoding


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


def default_checkpoint() -> Path:
    """Where the shipped learned recogniser lives (override with MUSIGEN_CHORDS_CHECKPOINT)."""
    env = os.environ.get("MUSIGEN_CHORDS_CHECKPOINT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "checkpoints" / "chords"


_MODEL_CACHE: dict[tuple[str, float], object] = {}


def _cached_model(folder: Path):  # -> musigen.chord_model.ChordRecognizer
    """Load a learned recogniser once per folder and weights mtime (eval calls this per piece)."""
    from musigen.chord_model import load_chord_model

    weights = folder / "model.safetensors"
    key = (str(folder.resolve()), weights.stat().st_mtime if weights.is_file() else -1.0)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = load_chord_model(folder)
    return _MODEL_CACHE[key]


def recognize_chords(
    wav: np.ndarray,
    sample_rate: int,
    *,
    method: str = "auto",
    checkpoint: str | os.PathLike[str] | None = None,
    self_transition: float | None = None,
) -> list[tuple[float, float, str]]:
    """Recognise chords in audio; returns contiguous (start_s, end_s, harte_label) segments.

    `method` is "auto" (learned model when its checkpoint exists, else templates), "model"
    (require the checkpoint) or "templates".  Audio is float32 mono or [channels, samples].
    """
    if method not in ("auto", "model", "templates"):
        raise ConfigError(f"method must be 'auto', 'model' or 'templates', got {method!r}")
    features = chord_features(wav, sample_rate)
    ckpt = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    # An explicitly named checkpoint must load; only the default location may be absent.
    use_model = method == "model" or (
        method == "auto" and (checkpoint is not None or (ckpt / "model.safetensors").is_file())
    )
    if use_model:
        model = _cached_model(ckpt)
        probs = model.frame_probabilities(features)
        vocab = model.vocab
        stay = model.config.self_transition if self_transition is None else self_transition
    else:
        vocab = CHORD_VOCAB
        probs = template_probabilities(features, vocab)
        stay = TEMPLATE_SELF_TRANSITION if self_transition is None else self_transition
    path = viterbi_decode(probs, stay)
    return path_to_segments(path, features.frame_rate, features.duration, vocab)


# ----------------------------------------------------------------------------- .lab files


def write_lab(path: str | os.PathLike[str], chords: list[tuple[float, float, str]]) -> Path:
    """Write the standard three-column .lab file (start end label), atomically."""
    from musigen.atomic import write_text

    lines = []
    for start, end, label in chords:
        if not (np.isfinite(start) and np.isfinite(end)) or end < start:
            raise ValueError(f"bad chord segment ({start}, {end}, {label!r})")
        if not label or any(ch.isspace() for ch in label):
            raise VocabularyError(f"chord label must be one non-empty word, got {label!r}")
        lines.append(f"{start:.6f}\t{end:.6f}\t{label}\n")
    return write_text(path, "".join(lines))


def read_lab(path: str | os.PathLike[str]) -> list[tuple[float, float, str]]:
    """Read a three-column .lab file (whitespace separated; blank and '#' lines skipped)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"chord .lab file not found: {p}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read chord .lab file {p}: {exc}") from None
    chords: list[tuple[float, float, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise DataError(f"{p}:{lineno}: expected 'start end label', got {line.strip()!r}")
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise DataError(
                f"{p}:{lineno}: start and end must be numbers, got {line.strip()!r}"
            ) from None
        if not (np.isfinite(start) and np.isfinite(end)) or end < start:
            raise DataError(f"{p}:{lineno}: bad interval {start}..{end}")
        chords.append((start, end, parts[2]))
    return chords
