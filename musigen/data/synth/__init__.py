"""Procedural multitrack corpus: compose -> orchestrate -> render, with exact labels.

comp = compose(seed, duration, genre)            # key, tempo, sections, chords, melody, bass
orch = orchestrate(comp, genre, instruments, seed)  # palette, roles, voicings, grooves
piece = render(comp, orch, sample_rate, renderer)   # stems, mix, MIDI, labels, caption
record = write_piece(piece, out_dir, name)        # files + manifest record
"""

from musigen.data.synth.composition import Composition, compose
from musigen.data.synth.corpus import build_corpus, render_seed, write_piece
from musigen.data.synth.orchestration import Orchestration, orchestrate
from musigen.data.synth.render import RenderedPiece, render

__all__ = [
    "Composition",
    "Orchestration",
    "RenderedPiece",
    "build_corpus",
    "compose",
    "orchestrate",
    "render",
    "render_seed",
    "write_piece",
]
