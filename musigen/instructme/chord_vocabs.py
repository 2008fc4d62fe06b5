"""The chord vocabularies InstructME's chord condition is one-hot over, by name, and where
that condition's chords come from.

A pipeline folder and a pre-encoded edit folder record the name, so that training data and
inference build the same condition.
"""

from __future__ import annotations

from musigen.chords.labels import CHORD_VOCAB, MAJMIN_VOCAB
from musigen.errors import ConfigError

#: "majmin" (N + 24) is the default: it is what chord preservation is scored on, and the
#: recogniser's sevenths are its least reliable part.
CHORD_VOCABS: dict[str, tuple[str, ...]] = {"majmin": MAJMIN_VOCAB, "full": CHORD_VOCAB}

#: Chords of training data: the recogniser on the source (what inference sees, the default)
#: or the corpus's exact labels where known (an ablation).
CHORD_SOURCES: tuple[str, ...] = ("recognizer", "exact")


def chord_vocab(name: str) -> tuple[str, ...]:
    """The labels of vocabulary `name` (ConfigError listing the known names otherwise)."""
    if name not in CHORD_VOCABS:
        raise ConfigError(f"unknown chord vocabulary {name!r}; known: {', '.join(CHORD_VOCABS)}")
    return CHORD_VOCABS[name]
