"""The chord alphabet: Harte labels, the recogniser's vocabulary and label normalisation.

Labels are Harte syntax (``C:maj``, ``A:min``, ``G:7``, ``N``) so that ``mir_eval.chord``
scores them directly.  Roots are spelled with sharps only, so every chord has one spelling.
"""

from __future__ import annotations

import numpy as np

from musigen.errors import VocabularyError

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
