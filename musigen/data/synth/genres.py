"""Genre styles: tempo range, harmony flavour, palette, comping styles, groove feel, mix.

One table shared by composition (tempo, harmony) and orchestration (palette, grooves), so
that a genre means the same thing at both levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from musigen.vocab import GENRES


@dataclass(frozen=True)
class GenreStyle:
    """Everything that makes a genre recognisable in the procedural corpus."""

    name: str
    tempo: tuple[int, int]
    #: weights of major / minor / dorian / mixolydian keys
    modes: dict[str, float]
    #: probability that a chord is a seventh chord
    seventh_prob: float
    #: beats per chord the grammar may pick from
    harmonic_rhythm: tuple[int, ...]
    #: instrument -> probability of being in the palette (1.0 = always)
    palette: dict[str, float]
    #: instruments in order of preference for carrying the melody
    melody_priority: tuple[str, ...]
    #: comping style per harmonic instrument
    comp: dict[str, str]
    bass_style: str
    #: 0 = straight eighths, 1 = full triplet swing
    swing: float
    #: reverb send (0..1)
    reverb: float
    #: guitar overdrive (0 = clean)
    drive: float
    moods: dict[str, float] = field(default_factory=dict)


STYLES: dict[str, GenreStyle] = {
    "pop": GenreStyle(
        "pop",
        (90, 128),
        {"major": 0.7, "minor": 0.3},
        0.15,
        (4, 4, 2),
        {
            "drums": 1,
            "bass": 1,
            "piano": 0.8,
            "guitar": 0.6,
            "lead": 0.6,
            "pad": 0.5,
            "strings": 0.35,
        },
        ("lead", "piano", "guitar", "strings"),
        {
            "piano": "block8",
            "guitar": "strum",
            "organ": "sustain",
            "strings": "sustain",
            "brass": "stabs",
            "pad": "sustain",
            "lead": "arp",
        },
        "line",
        0.0,
        0.25,
        0.0,
        {"happy": 3, "energetic": 1, "dreamy": 1, "sad": 1},
    ),
    "rock": GenreStyle(
        "rock",
        (100, 160),
        {"major": 0.5, "minor": 0.3, "mixolydian": 0.2},
        0.05,
        (4, 4, 2),
        {"drums": 1, "bass": 1, "guitar": 1, "organ": 0.4, "piano": 0.3, "lead": 0.3},
        ("lead", "organ", "guitar", "piano"),
        {
            "guitar": "power",
            "piano": "block8",
            "organ": "sustain",
            "strings": "sustain",
            "brass": "stabs",
            "pad": "sustain",
            "lead": "arp",
        },
        "eighths",
        0.0,
        0.2,
        0.8,
        {"energetic": 3, "dark": 1, "happy": 1},
    ),
    "funk": GenreStyle(
        "funk",
        (92, 116),
        {"dorian": 0.5, "minor": 0.2, "mixolydian": 0.3},
        0.7,
        (4, 8),
        {"drums": 1, "bass": 1, "guitar": 0.9, "organ": 0.5, "brass": 0.6, "piano": 0.3},
        ("brass", "lead", "organ", "guitar", "piano"),
        {
            "guitar": "chop",
            "piano": "offbeat",
            "organ": "stabs",
            "brass": "stabs",
            "strings": "sustain",
            "pad": "sustain",
            "lead": "arp",
        },
        "funk",
        0.1,
        0.15,
        0.0,
        {"energetic": 3, "happy": 2},
    ),
    "jazz": GenreStyle(
        "jazz",
        (70, 160),
        {"major": 0.6, "minor": 0.4},
        0.9,
        (4, 2),
        {"drums": 1, "bass": 1, "piano": 1, "brass": 0.6, "guitar": 0.3, "organ": 0.2},
        ("brass", "piano", "guitar", "organ"),
        {
            "piano": "comp",
            "guitar": "comp",
            "organ": "comp",
            "brass": "stabs",
            "strings": "sustain",
            "pad": "sustain",
            "lead": "arp",
        },
        "walking",
        0.6,
        0.3,
        0.0,
        {"calm": 2, "happy": 1, "sad": 1, "dreamy": 1},
    ),
    "electronic": GenreStyle(
        "electronic",
        (118, 140),
        {"minor": 0.7, "major": 0.3},
        0.2,
        (4, 8),
        {"drums": 1, "bass": 1, "lead": 0.9, "pad": 0.9, "piano": 0.2, "strings": 0.2},
        ("lead", "piano", "strings"),
        {
            "piano": "offbeat",
            "pad": "sustain",
            "lead": "arp",
            "strings": "sustain",
            "guitar": "chop",
            "organ": "stabs",
            "brass": "stabs",
        },
        "offbeat",
        0.0,
        0.3,
        0.0,
        {"energetic": 3, "dark": 1, "dreamy": 1},
    ),
    "ambient": GenreStyle(
        "ambient",
        (60, 84),
        {"major": 0.5, "minor": 0.3, "dorian": 0.2},
        0.5,
        (8, 8, 4),
        {
            "pad": 1,
            "strings": 0.7,
            "piano": 0.7,
            "lead": 0.3,
            "bass": 0.5,
            "drums": 0.2,
            "guitar": 0.2,
        },
        ("piano", "lead", "guitar", "strings"),
        {
            "piano": "arpeggio",
            "pad": "sustain",
            "strings": "sustain",
            "guitar": "arpeggio",
            "organ": "sustain",
            "brass": "sustain",
            "lead": "arp",
        },
        "whole",
        0.0,
        0.7,
        0.0,
        {"calm": 3, "dreamy": 3, "sad": 1},
    ),
    "blues": GenreStyle(
        "blues",
        (64, 120),
        {"major": 0.7, "minor": 0.3},
        0.85,
        (4,),
        {"drums": 1, "bass": 1, "guitar": 1, "piano": 0.6, "organ": 0.5, "brass": 0.3},
        ("guitar", "brass", "piano", "organ"),
        {
            "guitar": "shuffle",
            "piano": "comp",
            "organ": "sustain",
            "brass": "stabs",
            "strings": "sustain",
            "pad": "sustain",
            "lead": "arp",
        },
        "walking",
        0.65,
        0.3,
        0.35,
        {"sad": 2, "calm": 1, "happy": 1, "dark": 1},
    ),
    "disco": GenreStyle(
        "disco",
        (110, 128),
        {"minor": 0.5, "major": 0.3, "dorian": 0.2},
        0.5,
        (4, 8),
        {"drums": 1, "bass": 1, "strings": 0.9, "guitar": 0.7, "piano": 0.5, "brass": 0.5},
        ("strings", "brass", "lead", "piano"),
        {
            "guitar": "chop",
            "piano": "offbeat",
            "strings": "sustain",
            "brass": "stabs",
            "organ": "stabs",
            "pad": "sustain",
            "lead": "arp",
        },
        "octaves",
        0.0,
        0.25,
        0.0,
        {"happy": 3, "energetic": 3},
    ),
}

assert set(STYLES) == set(GENRES), "every vocabulary genre needs a style"


def style(genre: str) -> GenreStyle:
    """Style of a canonical genre name."""
    return STYLES[genre]
