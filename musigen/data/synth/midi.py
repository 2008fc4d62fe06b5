"""MIDI export of an arranged piece, with chord and section markers as text events.

The MIDI file is the symbolic ground truth: its notes are exactly those the renderers
play, and its text events carry the same chord/section spans as the manifest.
"""

from __future__ import annotations

import pretty_midi

from musigen.data.synth.composition import Composition
from musigen.data.synth.orchestration import Orchestration

CHORD_PREFIX = "chord:"
SECTION_PREFIX = "section:"
#: GM instrument names that pretty_midi records in the file
_NAMES = {
    "drums": "drums",
    "bass": "bass",
    "piano": "piano",
    "guitar": "guitar",
    "organ": "organ",
    "strings": "strings",
    "brass": "brass",
    "lead": "lead",
    "pad": "pad",
}


def note_seconds(
    comp: Composition, start_beat: float, dur_beat: float
) -> tuple[float, float] | None:
    """Note span in seconds clipped to the piece, or None if it starts after the end."""
    spb = comp.seconds_per_beat
    start = start_beat * spb
    if start >= comp.duration:
        return None
    end = min((start_beat + dur_beat) * spb, comp.duration)
    return start, max(end, start + 1e-3)


def build_midi(comp: Composition, orch: Orchestration) -> pretty_midi.PrettyMIDI:
    """PrettyMIDI with one track per instrument class (GM programs) and text markers."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=comp.tempo)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    minor = comp.key.endswith(":min")
    pm.key_signature_changes.append(
        pretty_midi.KeySignature(comp.key_root + (12 if minor else 0), 0.0)
    )
    for inst in orch.instruments:
        part = orch.parts[inst]
        track = pretty_midi.Instrument(
            program=part.program, is_drum=inst == "drums", name=_NAMES[inst]
        )
        for n in part.notes:
            span = note_seconds(comp, n.start, n.duration)
            if span is None:
                continue
            track.notes.append(
                pretty_midi.Note(
                    velocity=int(n.velocity), pitch=int(n.pitch), start=span[0], end=span[1]
                )
            )
        pm.instruments.append(track)
    for s, _, name in comp.section_times():
        pm.text_events.append(pretty_midi.Text(SECTION_PREFIX + name, s))
    for s, _, label in comp.chord_times():
        pm.text_events.append(pretty_midi.Text(CHORD_PREFIX + label, s))
    pm.text_events.sort(key=lambda e: e.time)
    return pm


def markers(pm: pretty_midi.PrettyMIDI, prefix: str, end: float) -> list[tuple[float, float, str]]:
    """Read back chord or section spans from the text events of a MIDI file."""
    evs = sorted(
        (e.time, e.text[len(prefix) :]) for e in pm.text_events if e.text.startswith(prefix)
    )
    return [(t, evs[i + 1][0] if i + 1 < len(evs) else end, lab) for i, (t, lab) in enumerate(evs)]
