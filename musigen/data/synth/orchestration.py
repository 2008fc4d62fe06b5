"""Orchestration: a genre's palette, roles, voicings, comping patterns and grooves.

Kept apart from :mod:`composition` so the same composition can be re-rendered in another
genre or with instruments added, removed or replaced (InstructME triplets). Each part is
realised from its own seed stream, so adding an instrument never changes the others' notes
(unless it takes over the melody role).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musigen.data.synth.composition import Composition
from musigen.data.synth.events import BEATS_PER_BAR, Note
from musigen.data.synth.drums import SECTION_DENSITY, groove_notes, swing_beat
from musigen.data.synth.genres import GenreStyle, style
from musigen.data.synth.theory import QUALITIES, Chord, nearest_pitch, voice_chord
from musigen.errors import ConfigError, VocabularyError
from musigen.vocab import INSTRUMENTS, MOODS, canonical_genre, canonical_instrument

#: General MIDI programs (0-based) for the MIDI file and the FluidSynth backend.
GM_PROGRAMS: dict[str, int] = {
    "drums": 0,
    "bass": 33,
    "piano": 0,
    "guitar": 27,
    "organ": 16,
    "strings": 48,
    "brass": 61,
    "lead": 80,
    "pad": 89,
}
#: per-genre General MIDI program choices (FluidSynth timbres and MIDI metadata)
GENRE_PROGRAMS: dict[str, dict[str, int]] = {
    "rock": {"guitar": 29},
    "blues": {"guitar": 26, "organ": 16},
    "jazz": {"guitar": 26, "brass": 56},
    "funk": {"piano": 4, "organ": 17},
    "disco": {"piano": 4, "strings": 49},
    "electronic": {"bass": 38, "lead": 81, "pad": 88},
    "ambient": {"pad": 91, "strings": 49},
}
#: instruments that may carry the melody when the genre's own choice is absent
_MELODY_FALLBACK = ("lead", "brass", "guitar", "piano", "strings", "organ")
#: register centre (MIDI pitch) of each chord instrument's voicing
_CENTER = {
    "piano": 62,
    "guitar": 57,
    "organ": 62,
    "strings": 64,
    "brass": 65,
    "lead": 72,
    "pad": 60,
}


@dataclass(frozen=True)
class Part:
    """One instrument's realised notes (in beats) and its role in the arrangement."""

    instrument: str
    role: str  # drums | bass | melody | chords
    program: int
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class Orchestration:
    """How a composition is played: genre, instruments, per-section activity and parts."""

    genre: str
    seed: int
    mood: str
    instruments: tuple[str, ...]
    parts: dict[str, Part]
    #: section name -> instruments playing in it
    active: dict[str, tuple[str, ...]]
    swing: float
    reverb: float
    drive: float


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A seed stream per (seed, key...) so parts are independent of each other."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF] + [zlib.crc32(k.encode()) for k in keys])


def pick_palette(genre: str, seed: int) -> list[str]:
    """The genre's instrument set for this seed: core instruments plus optional colours."""
    st = style(genre)
    rng = _rng(seed, "palette", genre)
    chosen = [i for i, p in st.palette.items() if p >= 1 or rng.random() < p]
    harmonic = [i for i in chosen if i not in ("drums", "bass")]
    if not harmonic:  # every piece needs something carrying the chords
        opts = [i for i in st.palette if i not in ("drums", "bass")]
        chosen.append(opts[int(rng.integers(len(opts)))])
    return [i for i in INSTRUMENTS if i in chosen]


def assign_roles(instruments: Sequence[str], st: GenreStyle) -> dict[str, str]:
    """drums/bass keep their role; the first melody-capable instrument gets the melody."""
    roles = {
        i: ("drums" if i == "drums" else "bass" if i == "bass" else "chords") for i in instruments
    }
    for cand in tuple(st.melody_priority) + _MELODY_FALLBACK:
        if cand in roles and roles[cand] == "chords" and cand != "pad":
            # keep at least one chord instrument when there are only two harmonic ones
            harmonic = [i for i in instruments if roles[i] == "chords"]
            if len(harmonic) >= 2 or cand == "lead":
                roles[cand] = "melody"
            break
    return roles


def _activity(
    comp: Composition, roles: dict[str, str], genre: str, seed: int
) -> dict[str, tuple[str, ...]]:
    """Which instruments play in each section: sparse intros/outros, full choruses."""
    names = list(dict.fromkeys(s.name for s in comp.sections))
    dense = max(names, key=lambda n: (SECTION_DENSITY[n], n == "chorus"))
    active: dict[str, list[str]] = {n: [] for n in names}
    for inst, role in roles.items():
        rng = _rng(seed, "activity", inst)
        for n in names:
            if n == dense:
                on = True
            elif n in ("intro", "outro"):
                on = (
                    role == "chords"
                    and rng.random() < 0.7
                    or role in ("bass", "drums")
                    and rng.random() < (0.6 if genre in ("electronic", "disco", "funk") else 0.35)
                )
            elif n == "bridge":
                on = role != "drums" or rng.random() < 0.5
            else:  # verse
                on = role in ("drums", "bass", "melody") or rng.random() < 0.6
            if on:
                active[n].append(inst)
    order = {i: k for k, i in enumerate(INSTRUMENTS)}
    for n in names:
        if not active[n]:  # never a silent section
            chords = [i for i, r in roles.items() if r == "chords"] or list(roles)
            active[n].append(chords[0])
        active[n].sort(key=order.__getitem__)
    return {n: tuple(v) for n, v in active.items()}


def _chord_events(comp: Composition, sections_on: set[str]):
    for ev in comp.chords:
        sec = comp.section_at(ev.start)
        if sec in sections_on:
            yield ev, SECTION_DENSITY[sec]


def _comp_rhythm(
    kind: str, density: int, length: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """(onset, duration) pairs in beats within one chord span for a comping style."""
    hits: list[tuple[float, float]]
    if kind == "sustain" or density == 0 and kind not in ("arpeggio", "arp"):
        return [(0.0, length)]
    if kind == "block8":
        grid = [0, 1.5, 2, 3] if density == 1 else [i * 0.5 for i in range(8)]
        hits = [(t, 0.45 if density == 2 else 0.9) for t in grid]
        hits[0] = (0.0, 1.4 if density == 1 else 0.45)
    elif kind == "strum":
        hits = [(t, 0.45) for t in ([0, 1, 1.5, 2.5, 3, 3.5] if density == 2 else [0, 1.5, 2, 3])]
    elif kind == "power":
        hits = [(i * 0.5, 0.4) for i in range(8)]
    elif kind == "chop":
        hits = [(t, 0.15) for t in (0.5, 1.5, 2.5, 3.5)]
        if density == 2:
            hits += [(t, 0.12) for t in (0.75, 2.25, 3.75)]
    elif kind == "offbeat":
        hits = [(t + 0.5, 0.3) for t in range(4)]
    elif kind == "comp":
        patterns = [
            [(0, 1.0), (1.5, 0.5)],
            [(0.5, 0.4), (2.5, 1.0)],
            [(1.5, 0.4), (3, 0.8)],
            [(0, 0.4), (2.5, 0.5), (3.5, 0.4)],
        ]
        hits = list(patterns[int(rng.integers(len(patterns)))])
    elif kind == "stabs":
        hits = [(0, 0.3), (1.5, 0.25), (3.5, 0.25)] if density == 2 else [(0, 0.9), (2.5, 0.4)]
    elif kind == "shuffle":
        hits = [(i * 0.5, 0.45) for i in range(8)]
    elif kind in ("arpeggio", "arp"):
        step = (
            0.25
            if kind == "arp" and density == 2
            else 0.5 if density >= 1 or kind == "arpeggio" else 1.0
        )
        hits = [
            (i * step, step * (2.5 if kind == "arpeggio" else 0.8)) for i in range(int(4 / step))
        ]
    else:
        raise ConfigError(f"unknown comping style {kind!r}")
    out = []
    for bar in range(int(np.ceil(length / BEATS_PER_BAR))):
        for t, d in hits:
            on = bar * BEATS_PER_BAR + t
            if on < length - 1e-9:
                out.append((on, min(d, length - on)))
    return out


def _voicing(inst: str, kind: str, chord: Chord, prev: list[int] | None) -> list[int]:
    center = _CENTER[inst]
    if kind == "power":  # E-shape barre chord: R 5 R 3 5, so distortion keeps the quality
        root = nearest_pitch(chord.root, 45)
        ivs = QUALITIES[chord.quality]
        return [root, root + ivs[2], root + 12, root + 12 + ivs[1], root + 12 + ivs[2]]
    if kind == "shuffle":
        root = nearest_pitch(chord.root, 45)
        return [root, root + QUALITIES[chord.quality][2]]
    n_voices = {"guitar": 5, "pad": 4, "strings": 4, "piano": 4, "organ": 4, "brass": 3, "lead": 3}[
        inst
    ]
    if kind == "strum":
        low = voice_chord(chord, center - 3, 3, prev)
        return sorted(set([nearest_pitch(chord.root, 43)] + low + [low[0] + 12]))[:6]
    return voice_chord(chord, center, n_voices, prev)


def _chord_part(
    comp: Composition,
    inst: str,
    kind: str,
    sections_on: set[str],
    swing: float,
    rng: np.random.Generator,
) -> list[Note]:
    notes: list[Note] = []
    prev: list[int] | None = None
    for ev, density in _chord_events(comp, sections_on):
        voicing = _voicing(inst, kind, ev.chord, prev)
        prev = voicing
        rhythm = _comp_rhythm(kind, density, ev.duration, rng)
        for k, (t, d) in enumerate(rhythm):
            on = swing_beat(ev.start + t, swing)
            base_vel = 70 + 12 * density + (8 if t % 1 == 0 else 0)
            if kind in ("arpeggio", "arp"):
                seq = voicing + [voicing[0] + 12] + voicing[-2:0:-1]
                pitches = [seq[k % len(seq)]]
            elif kind == "shuffle":
                alt = 9 if (k // 2) % 2 else QUALITIES[ev.chord.quality][2]
                pitches = [voicing[0], voicing[0] + alt]
            else:
                pitches = voicing
            strum = 0.012 if kind in ("strum",) else 0.0
            up = kind == "strum" and (t % 1) != 0
            for j, p in enumerate(sorted(pitches, reverse=up)):
                vel = int(np.clip(base_vel + rng.normal(0, 5), 30, 120))
                jitter = float(rng.normal(0, 0.006))
                notes.append(Note(max(0.0, on + j * strum + jitter), d, int(p), vel))
    return notes


def _bass_part(
    comp: Composition, kind: str, sections_on: set[str], swing: float, rng: np.random.Generator
) -> list[Note]:
    """Re-phrase the composition's bass roots in the genre's bass style."""
    if kind == "line":
        return [
            Note(swing_beat(n.start, swing), n.duration, n.pitch, n.velocity)
            for n in comp.bass
            if comp.section_at(n.start) in sections_on
        ]
    notes: list[Note] = []
    evs = list(_chord_events(comp, sections_on))
    for i, (ev, density) in enumerate(evs):
        root = nearest_pitch(ev.chord.root, 40)
        fifth = root + QUALITIES[ev.chord.quality][2]
        third = root + QUALITIES[ev.chord.quality][1]
        L = ev.duration
        if kind == "whole" or density == 0 and kind != "offbeat":
            pat = [(0.0, L * 0.95, root)]
        elif kind == "eighths":
            pat = [(k * 0.5, 0.42, root) for k in range(int(L * 2))]
        elif kind == "octaves":
            pat = [(k * 0.5, 0.3, root + (12 if k % 2 else 0)) for k in range(int(L * 2))]
        elif kind == "offbeat":
            pat = [(k + 0.5, 0.35, root) for k in range(int(L))]
        elif kind == "funk":
            cells = [
                (0, 0.3, root),
                (0.75, 0.2, root + 12),
                (1.5, 0.2, root),
                (2.0, 0.3, fifth),
                (2.75, 0.2, root + 10),
                (3.25, 0.2, root + 12),
                (3.5, 0.3, root),
            ]
            pat = [
                (b * 4 + t, d, p)
                for b in range(int(np.ceil(L / 4)))
                for t, d, p in cells
                if b * 4 + t < L
            ]
        elif kind == "walking":
            nxt = nearest_pitch(evs[i + 1][0].chord.root, 40) if i + 1 < len(evs) else root
            walk = [root, third, fifth, root + 12, fifth, third]
            pat = [(float(k), 0.9, walk[k % len(walk)]) for k in range(int(L))]
            if int(L) >= 2 and nxt != root:
                pat[-1] = (float(int(L) - 1), 0.9, nxt + (1 if nxt < root else -1))
        else:
            raise ConfigError(f"unknown bass style {kind!r}")
        for t, d, p in pat:
            vel = int(np.clip(92 + 8 * (t == 0) + rng.normal(0, 5), 40, 120))
            notes.append(Note(swing_beat(ev.start + t, swing), d, int(p), vel))
    return notes


def _melody_part(comp: Composition, inst: str, sections_on: set[str], swing: float) -> list[Note]:
    shift = -12 if inst == "guitar" else 0
    return [
        Note(swing_beat(n.start, swing), n.duration, n.pitch + shift, n.velocity)
        for n in comp.melody
        if comp.section_at(n.start) in sections_on
    ]


def _mood(comp: Composition, st: GenreStyle, seed: int) -> str:
    """Mood from genre weights, nudged by mode (minor -> sad/dark) and tempo."""
    w = {m: float(st.moods.get(m, 0.2)) for m in MOODS}
    minor = comp.mode in ("minor", "dorian")
    for m, f in (("sad", 2.5), ("dark", 2.5)) if minor else (("happy", 2.0), ("calm", 1.2)):
        w[m] *= f
    if minor:
        w["happy"] *= 0.3
    if comp.tempo > 120:
        w["energetic"] *= 2.0
        w["calm"] *= 0.3
    if comp.tempo < 85:
        w["calm"] *= 2.0
        w["energetic"] *= 0.2
    rng = _rng(seed, "mood")
    p = np.array([w[m] for m in MOODS])
    return MOODS[int(rng.choice(len(MOODS), p=p / p.sum()))]


def orchestrate(
    composition: Composition,
    genre: str,
    instruments: Sequence[str] | None = None,
    seed: int = 0,
) -> Orchestration:
    """Arrange `composition` for `genre` with `instruments` (None: the genre's palette)."""
    genre = canonical_genre(genre)
    st = style(genre)
    if instruments is None:
        insts = pick_palette(genre, seed)
    else:
        insts = list(dict.fromkeys(canonical_instrument(i) for i in instruments))
        if not insts:
            raise VocabularyError("orchestrate needs at least one instrument")
    insts = [i for i in INSTRUMENTS if i in insts]
    roles = assign_roles(insts, st)
    active = _activity(composition, roles, genre, seed)
    parts: dict[str, Part] = {}
    for inst in insts:
        on = {n for n, v in active.items() if inst in v}
        rng = _rng(seed, "part", inst, genre)
        role = roles[inst]
        if role == "drums":
            notes = groove_notes(composition, genre, on, st.swing, rng)
        elif role == "bass":
            notes = _bass_part(composition, st.bass_style, on, st.swing, rng)
        elif role == "melody":
            notes = _melody_part(composition, inst, on, st.swing)
        else:
            kind = "sustain" if inst == "pad" else st.comp[inst]
            notes = _chord_part(composition, inst, kind, on, st.swing, rng)
        program = GENRE_PROGRAMS.get(genre, {}).get(inst, GM_PROGRAMS[inst])
        parts[inst] = Part(
            inst, role, program, tuple(sorted(notes, key=lambda n: (n.start, n.pitch)))
        )
    return Orchestration(
        genre=genre,
        seed=int(seed),
        mood=_mood(composition, st, seed),
        instruments=tuple(insts),
        parts=parts,
        active=active,
        swing=st.swing,
        reverb=st.reverb,
        drive=st.drive if "guitar" in insts else 0.0,
    )
