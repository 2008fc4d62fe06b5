"""Composition: key, tempo, sections, chords (functional-harmony grammar), melody, bass line.

A composition is everything that stays fixed when a piece is re-orchestrated in another
genre or with other instruments: InstructME's remix/add/replace triplets rely on it keeping
the same chords, length and section times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from musigen.data.synth.events import BEATS_PER_BAR, ChordEvent, Note, Section
from musigen.data.synth.genres import style
from musigen.data.synth.melody import melody_line
from musigen.data.synth.theory import (
    DIATONIC_TRIADS,
    QUALITIES,
    Chord,
    diatonic_chord,
    key_label,
    nearest_pitch,
)
from musigen.errors import ConfigError
from musigen.vocab import GENRES, canonical_genre

MIN_TEMPO, MAX_TEMPO = 60.0, 180.0


@dataclass(frozen=True)
class Composition:
    """A genre-independent piece: harmony, form, melody and bass line on a beat grid."""

    seed: int
    genre_hint: str
    key_root: int
    mode: str
    tempo: float
    n_bars: int
    duration: float
    sections: tuple[Section, ...]
    chords: tuple[ChordEvent, ...]
    melody: tuple[Note, ...]
    bass: tuple[Note, ...]

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.tempo

    @property
    def key(self) -> str:
        return key_label(self.key_root, self.mode)

    def seconds(self, beat: float) -> float:
        """Beat position -> seconds, clipped to the piece's duration."""
        return min(beat * self.seconds_per_beat, self.duration)

    def chord_times(self) -> list[tuple[float, float, str]]:
        """Chord spans in seconds with Harte labels (merged when a label repeats)."""
        out: list[tuple[float, float, str]] = []
        for ev in self.chords:
            s, e = self.seconds(ev.start), self.seconds(ev.start + ev.duration)
            if e <= s:
                continue
            if out and out[-1][2] == ev.chord.label and abs(out[-1][1] - s) < 1e-9:
                out[-1] = (out[-1][0], e, ev.chord.label)
            else:
                out.append((s, e, ev.chord.label))
        return out

    def section_times(self) -> list[tuple[float, float, str]]:
        """Section spans in seconds."""
        out = []
        for sec in self.sections:
            s, e = self.seconds(sec.start), self.seconds(sec.start + sec.duration)
            if e > s:
                out.append((s, e, sec.name))
        return out

    def section_at(self, beat: float) -> str:
        for sec in self.sections:
            if sec.start <= beat < sec.start + sec.duration:
                return sec.name
        return self.sections[-1].name


# ----------------------------------------------------------------------------- tempo & form


def _fit_tempo(
    duration: float, lo: float, hi: float, rng: np.random.Generator
) -> tuple[float, int]:
    """Pick a tempo in the genre range such that a whole number of bars fills `duration`.

    A whole number of bars lets the piece end on its final cadence instead of mid-bar.
    """
    nominal = float(rng.uniform(lo, hi))
    bar = BEATS_PER_BAR * 60.0
    best = round(duration * nominal / bar)
    for bars in (best, best + 1, best - 1):
        if bars < 1:
            continue
        tempo = bars * bar / duration
        if max(MIN_TEMPO, lo * 0.92) <= tempo <= min(MAX_TEMPO, hi * 1.08):
            return tempo, bars
    nominal = min(max(nominal, MIN_TEMPO), MAX_TEMPO)
    return nominal, max(1, math.ceil(duration * nominal / bar - 1e-9))


def plan_sections(n_bars: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """Form in bars: intro, verse/chorus alternation (bridge in longer pieces), outro."""
    if n_bars <= 3:
        return [("verse", n_bars)]
    intro = 0 if n_bars < 6 else 1 if n_bars < 14 else 2 if n_bars < 32 else 4
    outro = 0 if n_bars < 9 else 1 if n_bars < 14 else 2 if n_bars < 32 else 4
    if n_bars >= 6 and rng.random() < 0.25:
        intro = 2 if n_bars >= 10 else intro
    body = n_bars - intro - outro
    chunk = 8 if body >= 40 else 4
    cycle = ["verse", "chorus", "verse", "chorus", "bridge", "chorus"]
    if rng.random() < 0.2:
        cycle = ["verse", "verse", "chorus", "bridge", "chorus"]
    plan: list[tuple[str, int]] = [("intro", intro)] if intro else []
    i = 0
    while body > 0:
        name = cycle[i] if i < len(cycle) else ("verse", "chorus")[(i - len(cycle)) % 2]
        n = chunk if name != "bridge" else 4
        n = min(n, body)
        if 0 < body - n < 2:  # never leave a one-bar scrap
            n = body
        plan.append((name, n))
        body -= n
        i += 1
    if outro:
        plan.append(("outro", outro))
    return plan


# ----------------------------------------------------------------------------- harmony

#: harmonic functions -> (scale degree, weight) per mode; no diminished triad as tonic
_FUNCTIONS: dict[str, dict[str, tuple[tuple[int, float], ...]]] = {
    "major": {
        "T": ((0, 0.6), (5, 0.3), (2, 0.1)),
        "S": ((3, 0.65), (1, 0.35)),
        "D": ((4, 0.92), (6, 0.08)),
    },
    "minor": {
        "T": ((0, 0.6), (5, 0.3), (2, 0.1)),
        "S": ((3, 0.75), (1, 0.1), (5, 0.15)),
        "D": ((4, 0.7), (6, 0.3)),
    },
    "dorian": {"T": ((0, 0.7), (2, 0.3)), "S": ((3, 0.6), (1, 0.4)), "D": ((6, 0.6), (4, 0.4))},
    "mixolydian": {"T": ((0, 0.7), (5, 0.3)), "S": ((3, 0.6), (1, 0.4)), "D": ((6, 0.7), (4, 0.3))},
}
_TRANSITIONS = {
    "T": {"T": 0.2, "S": 0.5, "D": 0.3},
    "S": {"S": 0.2, "D": 0.6, "T": 0.2},
    "D": {"T": 0.85, "S": 0.15},
}
#: idiomatic loops as scale degrees, per genre (the grammar covers everything else)
_IDIOMS: dict[str, list[tuple[int, ...]]] = {
    "pop": [(0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 0, 4)],
    "rock": [(0, 6, 3, 0), (0, 3, 4, 3), (0, 4, 5, 3)],
    "funk": [(0, 3), (0, 3, 0, 4), (1, 4)],
    "jazz": [(1, 4, 0, 5), (0, 5, 1, 4), (2, 5, 1, 4)],
    "electronic": [(0, 5, 2, 6), (0, 5, 3, 4), (5, 3, 0, 4)],
    "ambient": [(0, 3), (0, 5, 3, 0), (3, 0)],
    "blues": [(0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4)],
    "disco": [(0, 3), (1, 4, 0, 5), (0, 6, 5, 4)],
}


def _choose(rng: np.random.Generator, items: list, weights: list[float]):
    w = np.asarray(weights, dtype=float)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


def _grammar_degrees(
    n: int, start: str, close: bool, mode: str, rng: np.random.Generator
) -> list[int]:
    """Degrees of an n-chord phrase from the T -> S -> D -> T grammar, with a cadence."""
    funcs = [start]
    for _ in range(n - 1):
        t = _TRANSITIONS[funcs[-1]]
        funcs.append(_choose(rng, list(t), list(t.values())))
    if n >= 2:
        funcs[-1] = "T" if close else "D"
        if close and n >= 3:
            funcs[-2] = "D"
    table = _FUNCTIONS[mode]
    degrees: list[int] = []
    for i, f in enumerate(funcs):
        opts = [d for d, _ in table[f]]
        weights = [w for _, w in table[f]]
        if degrees and len(opts) > 1 and degrees[-1] in opts:  # avoid immediate repeats
            j = opts.index(degrees[-1])
            weights[j] *= 0.1
        degrees.append(_choose(rng, opts, weights))
    if close:
        degrees[-1] = 0
    return degrees


def _spell(degree: int, key_root: int, mode: str, genre: str, rng: np.random.Generator) -> Chord:
    st = style(genre)
    seventh = bool(rng.random() < st.seventh_prob)
    if genre in ("jazz", "blues") and degree == 4:
        seventh = True
    chord = diatonic_chord(key_root, mode, degree, seventh)
    if genre == "blues" and degree in (0, 3, 4):
        chord = Chord(chord.root, "7")
    return chord


def _section_progression(
    name: str,
    n_beats: int,
    rhythm: int,
    key_root: int,
    mode: str,
    genre: str,
    rng: np.random.Generator,
) -> list[tuple[int, Chord]]:
    """(duration_beats, chord) list for one section type; it is looped over its bars."""
    n = max(1, n_beats // rhythm)
    idioms = _IDIOMS[genre]
    if genre == "blues" and n_beats >= 48:
        degrees = list(idioms[0])
        rhythm = n_beats // len(degrees)
    elif rng.random() < 0.5 and (
        usable := [i for i in idioms if all(DIATONIC_TRIADS[mode][d] != "dim" for d in i)]
    ):
        degrees = list(usable[int(rng.integers(len(usable)))])
    else:
        start = {
            "verse": "T",
            "chorus": _choose(rng, ["T", "S"], [0.6, 0.4]),
            "bridge": "S",
            "intro": "T",
            "outro": "S",
        }[name]
        degrees = _grammar_degrees(
            min(n, 4), start, close=name in ("chorus", "outro"), mode=mode, rng=rng
        )
    chords = [_spell(d, key_root, mode, genre, rng) for d in degrees]
    if rng.random() < 0.15 and rhythm >= 4:  # a sus4 suspension on a dominant
        for i, d in enumerate(degrees):
            if d == 4:
                chords[i] = Chord(chords[i].root, "sus4")
                break
    return [(rhythm, c) for c in chords]


def _harmonize(
    plan: list[tuple[str, int]],
    key_root: int,
    mode: str,
    genre: str,
    rng: np.random.Generator,
) -> tuple[list[Section], list[ChordEvent]]:
    st = style(genre)
    rhythm = int(rng.choice(st.harmonic_rhythm))
    progressions: dict[str, list[tuple[int, Chord]]] = {}
    sections: list[Section] = []
    events: list[ChordEvent] = []
    beat = 0.0
    tonic = _spell(0, key_root, mode, genre, rng)
    for name, bars in plan:
        n_beats = bars * BEATS_PER_BAR
        sections.append(Section(name, beat, float(n_beats)))
        if name not in progressions:
            src = "verse" if name == "intro" and "verse" in progressions else name
            progressions[name] = progressions.get(src) or _section_progression(
                name, max(n_beats, 4 * BEATS_PER_BAR), rhythm, key_root, mode, genre, rng
            )
        prog = progressions[name]
        t, i = 0, 0
        while t < n_beats:
            dur, chord = prog[i % len(prog)]
            dur = min(dur, n_beats - t)
            events.append(ChordEvent(beat + t, float(dur), chord))
            t += dur
            i += 1
        beat += n_beats
    # the piece ends home: the last chord of the last section becomes the tonic
    last = events[-1]
    if last.chord.root != key_root:
        events[-1] = ChordEvent(last.start, last.duration, tonic)
    return sections, events


# ----------------------------------------------------------------------------- melody & bass


def _bass_line(
    events: list[ChordEvent], key_root: int, mode: str, rng: np.random.Generator
) -> list[Note]:
    """Root-based quarter-note bass with fifths and approach notes into the next chord."""
    notes: list[Note] = []
    for i, ev in enumerate(events):
        root = nearest_pitch(ev.chord.root, 40)
        fifth = root + QUALITIES[ev.chord.quality][2]
        nxt = nearest_pitch(events[i + 1].chord.root, 40) if i + 1 < len(events) else root
        n_q = int(ev.duration)
        for q in range(n_q):
            if q == 0:
                p, v = root, 100
            elif q == n_q - 1 and n_q >= 2 and nxt != root and rng.random() < 0.6:
                p, v = nxt + (1 if nxt < root else -1), 84  # chromatic approach
            else:
                p, v = (fifth if rng.random() < 0.35 else root), 88
            notes.append(Note(ev.start + q, 0.9, p, v))
    return notes


def compose(seed: int, duration: float, genre: str | None = None) -> Composition:
    """A deterministic composition for `seed` lasting exactly `duration` seconds.

    `genre` sets the tempo range and harmonic flavour; None picks one from the seed.
    """
    if not isinstance(duration, (int, float)) or not math.isfinite(duration) or duration <= 0:
        raise ConfigError(f"duration must be a positive number of seconds, got {duration!r}")
    if duration > 3600:
        raise ConfigError(f"duration {duration} s is too long; at most 3600 s per piece")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xC0])
    genre = canonical_genre(genre) if genre is not None else GENRES[int(rng.integers(len(GENRES)))]
    st = style(genre)
    mode = _choose(rng, list(st.modes), list(st.modes.values()))
    key_root = int(rng.integers(12))
    tempo, n_bars = _fit_tempo(float(duration), *st.tempo, rng)
    plan = plan_sections(n_bars, rng)
    sections, events = _harmonize(plan, key_root, mode, genre, rng)
    melody = melody_line(sections, events, key_root, mode, tempo, rng)
    bass = _bass_line(events, key_root, mode, rng)
    return Composition(
        seed=int(seed),
        genre_hint=genre,
        key_root=key_root,
        mode=mode,
        tempo=float(tempo),
        n_bars=n_bars,
        duration=float(duration),
        sections=tuple(sections),
        chords=tuple(events),
        melody=tuple(melody),
        bass=tuple(bass),
    )
