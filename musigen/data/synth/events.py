"""Time-grid events shared by composition, melody and orchestration: notes, chords, sections.

Everything is in beats, not seconds, so re-timing never changes the music and a
composition keeps identical chord and section times under any orchestration.
"""

from __future__ import annotations

from dataclasses import dataclass

from musigen.data.synth.theory import Chord

BEATS_PER_BAR = 4


@dataclass(frozen=True)
class Note:
    """A note in beats (not seconds), so re-timing never changes the music."""

    start: float
    duration: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class ChordEvent:
    start: float
    duration: float
    chord: Chord


@dataclass(frozen=True)
class Section:
    name: str
    start: float
    duration: float
