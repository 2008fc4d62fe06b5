"""Drum grooves: per-genre 16-step patterns at three densities, crashes and fills.

Grooves are what most distinguish genres to a listener (four-on-the-floor vs backbeat vs
swung ride), so each genre gets its own patterns, and sections pick the density.
"""

from __future__ import annotations

import numpy as np

from musigen.data.synth.composition import Composition
from musigen.data.synth.events import BEATS_PER_BAR, Note

#: General MIDI drum keys used by both the MIDI file and the built-in drum kit.
KICK, RIM, SNARE, CLAP, HAT, PEDAL, OPEN, CRASH, RIDE = 36, 37, 38, 39, 42, 44, 46, 49, 51
TOM_LO, TOM_MID, TOM_HI = 45, 47, 50

_VOICES = {
    "k": KICK,
    "s": SNARE,
    "r": RIM,
    "c": CLAP,
    "h": HAT,
    "p": PEDAL,
    "o": OPEN,
    "y": RIDE,
    "C": CRASH,
}
_VEL = {"X": 118, "x": 92, "g": 42, "-": 66}

#: genre -> density (0 sparse, 1 normal, 2 full) -> voice letter -> 16-step pattern
GROOVES: dict[str, dict[int, dict[str, str]]] = {
    "pop": {
        0: {"k": "x.......x.......", "h": "-.-.-.-.-.-.-.-.", "r": "....x.......x..."},
        1: {"k": "x.....x.x.......", "s": "....x.......x...", "h": "x.-.x.-.x.-.x.-."},
        2: {
            "k": "x.....x.x.x.....",
            "s": "....X.......X...",
            "h": "x-x-x-x-x-x-x-x-",
            "c": "....x.......x...",
        },
    },
    "rock": {
        0: {"k": "x.......x.......", "h": "x.x.x.x.x.x.x.x."},
        1: {"k": "x.......x.x.....", "s": "....X.......X...", "h": "X.x.X.x.X.x.X.x."},
        2: {"k": "x.x.....x.x..x..", "s": "....X.......X...", "y": "X.x.X.x.X.x.X.x."},
    },
    "funk": {
        0: {"k": "x.........x.....", "h": "x-x-x-x-x-x-x-x-"},
        1: {"k": "x..x..x...x..x..", "s": "....X..g.g..X..g", "h": "x-x-x-x-x-x-x-x-"},
        2: {"k": "x..x..x.x.x..x..", "s": "....X..g.g..X.gg", "h": "x-x-x-x-x-x-x-o-"},
    },
    "jazz": {
        0: {"y": "x...x.x.x...x.x.", "p": "....x.......x..."},
        1: {
            "y": "x...x.x.x...x.x.",
            "p": "....x.......x...",
            "k": "g...g...g...g...",
            "s": "......g.......g.",
        },
        2: {
            "y": "X...x.x.X...x.x.",
            "p": "....x.......x...",
            "k": "g...g..xg...g...",
            "s": "..g...x...g...x.",
        },
    },
    "electronic": {
        0: {"k": "x...x...x...x...", "h": "..-...-...-...-."},
        1: {"k": "X...X...X...X...", "c": "....x.......x...", "o": "..x...x...x...x."},
        2: {
            "k": "X...X...X...X...",
            "c": "....X.......X...",
            "o": "..x...x...x...x.",
            "h": "xxx.xxx.xxx.xxx.",
        },
    },
    "ambient": {
        0: {"h": "--..--..--..--.."},
        1: {"k": "x.........x.....", "h": "-.-.-.-.-.-.-.-.", "r": "........x......."},
        2: {"k": "x.......x.......", "r": "....x.......x...", "h": "x-x-x-x-x-x-x-x-"},
    },
    "blues": {
        0: {"k": "x.......x.......", "y": "x.x.x.x.x.x.x.x."},
        1: {
            "k": "x.......x.......",
            "s": "....X.......X...",
            "h": "x.x.x.x.x.x.x.x.",
            "p": "....x.......x...",
        },
        2: {"k": "x.....x.x.......", "s": "....X.......X..g", "y": "X.x.X.x.X.x.X.x."},
    },
    "disco": {
        0: {"k": "x...x...x...x...", "h": "x-x-x-x-x-x-x-x-"},
        1: {
            "k": "X...X...X...X...",
            "s": "....X.......X...",
            "o": "..x...x...x...x.",
            "h": "x.-.x.-.x.-.x.-.",
        },
        2: {
            "k": "X...X...X...X...",
            "s": "....X.......X...",
            "o": "..X...X...X...X.",
            "h": "xxxxxxxxxxxxxxxx",
            "c": "....x.......x...",
        },
    },
}

SECTION_DENSITY: dict[str, int] = {"intro": 0, "verse": 1, "chorus": 2, "bridge": 1, "outro": 0}


def swing_beat(beat: float, amount: float) -> float:
    """Delay off-beat eighths by `amount` of the way to the triplet position."""
    frac = beat % 1.0
    if amount > 0 and abs(frac - 0.5) < 1e-6:
        return beat - frac + 0.5 + amount * (2.0 / 3.0 - 0.5)
    if amount > 0 and abs(frac - 0.75) < 1e-6:
        return beat - frac + 0.75 + amount * (5.0 / 6.0 - 0.75)
    return beat


def _fill(bar_start: float, rng: np.random.Generator) -> list[Note]:
    """A one-beat or two-beat tom/snare fill at the end of a bar."""
    beats = 2 if rng.random() < 0.4 else 1
    toms = [SNARE, TOM_HI, TOM_MID, TOM_LO]
    out = []
    steps = beats * 4
    for i in range(steps):
        pitch = toms[min(len(toms) - 1, i * len(toms) // steps)]
        on = bar_start + BEATS_PER_BAR - beats + i * 0.25
        out.append(Note(on, 0.25, pitch, int(rng.integers(80, 112))))
    return out


def groove_notes(
    comp: Composition, genre: str, sections_on: set[str], swing: float, rng: np.random.Generator
) -> list[Note]:
    """Drum notes for the sections where drums play, with crashes and fills at boundaries."""
    notes: list[Note] = []
    names = [s.name for s in comp.sections]
    for idx, sec in enumerate(comp.sections):
        if sec.name not in sections_on:
            continue
        density = SECTION_DENSITY[sec.name]
        pattern = GROOVES[genre][density]
        bars = int(round(sec.duration / BEATS_PER_BAR))
        nxt = names[idx + 1] if idx + 1 < len(names) else None
        for b in range(bars):
            bar_start = sec.start + b * BEATS_PER_BAR
            last = b == bars - 1
            do_fill = (
                last
                and nxt is not None
                and nxt in sections_on
                and density >= 1
                and (genre not in ("ambient", "electronic") or rng.random() < 0.3)
            )
            if (
                b == 0
                and density >= 1
                and genre != "jazz"
                and sec.name in ("chorus", "bridge", "verse")
            ):
                notes.append(Note(bar_start, 1.0, CRASH, 100))
            fill = _fill(bar_start, rng) if do_fill else []
            fill_start = fill[0].start if fill else bar_start + BEATS_PER_BAR
            for voice, pat in pattern.items():
                for step, ch in enumerate(pat):
                    beat = bar_start + step * 0.25
                    if ch == "." or (voice != "k" and beat >= fill_start):
                        continue  # the fill replaces everything but the kick
                    pitch = OPEN if ch == "o" else _VOICES[voice]  # 'o' opens a hat pattern
                    vel = int(np.clip(_VEL.get(ch, 92) + rng.normal(0, 6), 20, 127))
                    notes.append(Note(swing_beat(beat, swing), 0.25, pitch, vel))
            notes.extend(
                Note(swing_beat(n.start, swing), n.duration, n.pitch, n.velocity) for n in fill
            )
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes
