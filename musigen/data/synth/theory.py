"""Music theory: pitch classes, keys, scales, diatonic chords and Harte chord labels.

The corpus labels are exact only if chord spelling and Harte syntax are done in one place,
so every other synth module asks this one for chord tones and labels.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Pitch-class names in the spelling used for keys and Harte roots (mir_eval reads both
#: sharps and flats; this is the conventional pop/jazz spelling).
PITCH_NAMES: tuple[str, ...] = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

#: Chord qualities (Harte shorthand) -> intervals in semitones above the root.
QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "dim": (0, 3, 6),
    "sus4": (0, 5, 7),
}

#: Scale intervals per mode. Minor uses the natural minor; the harmony raises the 7th for V.
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}

#: Triad and seventh quality of each scale degree (0-based) per mode.
DIATONIC_TRIADS: dict[str, tuple[str, ...]] = {
    "major": ("maj", "min", "min", "maj", "maj", "min", "dim"),
    # harmonic-minor dominant (V major) is the functional choice; VII stays major
    "minor": ("min", "dim", "maj", "min", "maj", "maj", "maj"),
    "dorian": ("min", "min", "maj", "maj", "min", "dim", "maj"),
    "mixolydian": ("maj", "min", "dim", "maj", "min", "min", "maj"),
}
DIATONIC_SEVENTHS: dict[str, tuple[str, ...]] = {
    "major": ("maj7", "min7", "min7", "maj7", "7", "min7", "dim"),
    "minor": ("min7", "dim", "maj7", "min7", "7", "maj7", "7"),
    "dorian": ("min7", "min7", "maj7", "7", "min7", "dim", "maj7"),
    "mixolydian": ("7", "min7", "dim", "maj7", "min7", "min7", "maj7"),
}


def pitch_name(pc: int) -> str:
    """Name of a pitch class 0..11."""
    return PITCH_NAMES[pc % 12]


def key_label(root: int, mode: str) -> str:
    """Key label, e.g. ``A:min``; modes map to their major/minor family (dorian -> min)."""
    short = {"major": "maj", "minor": "min", "dorian": "min", "mixolydian": "maj"}[mode]
    return f"{pitch_name(root)}:{short}"


def key_words(root: int, mode: str) -> str:
    """Key as English words for captions, e.g. ``A minor``."""
    return f"{pitch_name(root)} {mode}"


def scale_pitch_classes(root: int, mode: str) -> tuple[int, ...]:
    """Pitch classes of the scale of `root` in `mode`."""
    return tuple((root + i) % 12 for i in MODES[mode])


@dataclass(frozen=True)
class Chord:
    """A chord as root pitch class and Harte quality; the label is the ground truth."""

    root: int
    quality: str

    def __post_init__(self) -> None:
        if self.quality not in QUALITIES:
            raise ValueError(f"unknown chord quality {self.quality!r}")

    @property
    def label(self) -> str:
        """Harte label, e.g. ``G:7``."""
        return f"{pitch_name(self.root)}:{self.quality}"

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        """Chord tones as pitch classes, root first."""
        return tuple((self.root + i) % 12 for i in QUALITIES[self.quality])

    def tones_in_range(self, low: int, high: int) -> list[int]:
        """All MIDI pitches in [low, high] that are chord tones, ascending."""
        pcs = set(self.pitch_classes)
        return [p for p in range(low, high + 1) if p % 12 in pcs]


def diatonic_chord(key_root: int, mode: str, degree: int, seventh: bool) -> Chord:
    """The chord on scale `degree` (0-based) of the key, as triad or seventh chord."""
    intervals = MODES[mode]
    root = (key_root + intervals[degree % 7]) % 12
    table = DIATONIC_SEVENTHS if seventh else DIATONIC_TRIADS
    return Chord(root, table[mode][degree % 7])


def nearest_pitch(pc: int, target: int) -> int:
    """MIDI pitch with pitch class `pc` closest to `target` (ties go down)."""
    base = target - ((target - pc) % 12)
    return base if target - base <= base + 12 - target else base + 12


def voice_chord(chord: Chord, center: int, n_voices: int, previous: list[int] | None) -> list[int]:
    """Close voicing of `chord` near `center`, moving smoothly from `previous` if given.

    Smooth voice leading keeps comping parts musical and makes the chroma of each chord
    span stable, which the chord recogniser is evaluated on.
    """
    pcs = list(chord.pitch_classes)
    # all tones (doubling root/fifth/third for more voices); with fewer voices drop the fifth
    if n_voices >= len(pcs):
        extras = [pcs[0], pcs[2 % len(pcs)], pcs[1], pcs[0]]
        tones = pcs + extras[: n_voices - len(pcs)]
    else:
        tones = [pc for i, pc in enumerate(pcs) if i != 2][:n_voices]
    best: list[int] | None = None
    best_cost = float("inf")
    # candidate inversions: rotate which tone is lowest, stack upward from near center
    for rot in range(len(tones)):
        order = tones[rot:] + tones[:rot]
        pitches = [nearest_pitch(order[0], center - 5)]
        for pc in order[1:]:
            p = pitches[-1] + ((pc - pitches[-1]) % 12 or 12)
            pitches.append(p)
        for shift in (-12, 0, 12):
            cand = [p + shift for p in pitches]
            mean = sum(cand) / len(cand)
            cost = abs(mean - center)
            if previous:
                prev_mean = sum(previous) / len(previous)
                cost = 0.5 * cost + abs(mean - prev_mean) + 0.3 * (max(cand) - min(cand))
            if cost < best_cost:
                best, best_cost = cand, cost
    assert best is not None
    return sorted(best)
