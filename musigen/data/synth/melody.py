"""Melody: motif-based phrases that move by scale steps and land on chord tones.

Why this shape: a listener (and a CLAP model) hears "a melody" when a short rhythmic
motif is repeated and varied over the chords, with stepwise motion, occasional leaps,
chord tones on strong beats and a long note closing each phrase.
"""

from __future__ import annotations

import numpy as np

from musigen.data.synth.events import BEATS_PER_BAR, ChordEvent, Note, Section
from musigen.data.synth.theory import Chord, nearest_pitch, scale_pitch_classes

#: one-bar rhythm cells (onsets in beats); pairs of them form a two-bar motif
RHYTHMS: tuple[tuple[float, ...], ...] = (
    (0, 1, 2, 3),
    (0, 1.5, 2, 3),
    (0, 0.5, 1, 2, 3),
    (0, 2, 3),
    (0, 0.5, 1.5, 2, 2.5),
    (0, 1, 1.5, 2.5, 3),
    (0, 2),
    (0, 0.75, 1.5, 2, 3),
    (0, 1, 2, 2.5, 3, 3.5),
    (0.5, 1, 1.5, 2, 3),
    (0, 1.5, 2.5, 3, 3.5),
    (0, 0.5, 1, 1.5, 2, 3),
)
_SLOW_ONLY = ((0, 0.5, 1, 1.5, 2, 2.5, 3), (0, 0.25, 0.5, 1, 2, 3))
_FAST_OK = ((0, 1, 2, 3), (0, 2, 3), (0, 2), (0, 1.5, 2, 3), (0, 1, 1.5, 2.5, 3))
_STEPS = np.array([-3, -2, -1, 1, 2, 3, 4, 0])
_STEP_W = np.array([0.4, 1.5, 3.0, 3.0, 1.5, 0.4, 0.2, 0.5])


def chord_at(events: list[ChordEvent], beat: float) -> Chord:
    for ev in events:
        if ev.start <= beat < ev.start + ev.duration:
            return ev.chord
    return events[-1].chord


def _ladder(key_root: int, mode: str, low: int = 48, high: int = 96) -> list[int]:
    pcs = set(scale_pitch_classes(key_root, mode))
    return [p for p in range(low, high + 1) if p % 12 in pcs]


def _fit_to_chord(pitch: int, chord: Chord, strong: bool, scale: tuple[int, ...]) -> int:
    """Strong beats take the nearest chord tone; weak ones avoid a semitone clash with one."""
    tones = chord.tones_in_range(pitch - 6, pitch + 6)
    if strong:
        return min(tones, key=lambda p: (abs(p - pitch), p))
    for t in tones:
        if abs(t - pitch) == 1 and (t % 12) not in scale:
            return t  # e.g. natural-minor 7th under a major V: use the leading tone
    return pitch


def _motif(
    rng: np.random.Generator, tempo: float, lift: bool
) -> tuple[list[tuple[float, ...]], list[int]]:
    pool = list(RHYTHMS)
    if tempo > 135:
        pool = list(_FAST_OK)
    elif tempo < 85:
        pool += list(_SLOW_ONLY)
    cells = [pool[int(rng.integers(len(pool)))] for _ in range(2)]
    n = sum(len(c) for c in cells)
    w = _STEP_W.copy()
    if lift:  # choruses climb a little more
        w[3:7] *= 1.4
    steps = [int(s) for s in rng.choice(_STEPS, size=n, p=w / w.sum())]
    return cells, steps


def melody_line(
    sections: list[Section],
    events: list[ChordEvent],
    key_root: int,
    mode: str,
    tempo: float,
    rng: np.random.Generator,
) -> list[Note]:
    """Melody over verse/chorus/bridge sections (intros and outros stay instrumental)."""
    ladder = _ladder(key_root, mode)
    scale = scale_pitch_classes(key_root, mode)
    home = nearest_pitch(key_root, 69)
    motifs: dict[str, tuple[list[tuple[float, ...]], list[int]]] = {}
    notes: list[Note] = []
    for sec in sections:
        if sec.name in ("intro", "outro"):
            continue
        if sec.name not in motifs:
            motifs[sec.name] = _motif(rng, tempo, sec.name == "chorus")
        cells, steps = motifs[sec.name]
        center = home + (4 if sec.name == "chorus" else -2 if sec.name == "bridge" else 0)
        low, high = center - 8, center + 10
        idx = min(range(len(ladder)), key=lambda i: abs(ladder[i] - center))
        bars = int(sec.duration // BEATS_PER_BAR)
        k = 0
        for b in range(bars):
            cell = cells[b % 2]
            phrase_end = b == bars - 1 or (b % 4 == 3)
            if phrase_end and len(cell) > 2:
                cell = cell[: max(1, len(cell) // 2)]  # shorter cell, long closing note
            onsets = [sec.start + b * BEATS_PER_BAR + o for o in cell]
            ends = onsets[1:] + [sec.start + (b + 1) * BEATS_PER_BAR]
            for j, (on, off) in enumerate(zip(onsets, ends)):
                step = steps[k % len(steps)]
                if b % 4 >= 2:  # answer phrase: mirror the contour
                    step = -step if rng.random() < 0.5 else step
                k += 1
                idx = int(np.clip(idx + step, 0, len(ladder) - 1))
                if ladder[idx] > high or ladder[idx] < low:  # turn around at the range edges
                    idx = int(np.clip(idx - 2 * step, 0, len(ladder) - 1))
                chord = chord_at(events, on)
                strong = (on % 2) == 0 or (phrase_end and j == len(onsets) - 1)
                pitch = _fit_to_chord(ladder[idx], chord, strong, scale)
                idx = min(range(len(ladder)), key=lambda i: abs(ladder[i] - pitch))
                legato = 0.95 if off - on <= 1 else 0.85
                vel = int(rng.integers(86, 110)) if strong else int(rng.integers(70, 94))
                notes.append(Note(on, max(0.2, (off - on) * legato), int(pitch), vel))
    return notes
