"""The shared vocabularies: instrument classes, genres, moods, sections and synonyms.

Every part of the library (corpus, dataset adapters, instruction parser, judge, CLAP tags)
speaks these names, so they live in one place.
"""

from __future__ import annotations

from musigen.errors import VocabularyError, shorten

#: Instrument classes of the procedural corpus and the target of every stem adapter.
INSTRUMENTS: tuple[str, ...] = (
    "drums",
    "bass",
    "piano",
    "guitar",
    "organ",
    "strings",
    "brass",
    "lead",
    "pad",
)

#: Genres with their own palette, tempo range and groove in the corpus.
GENRES: tuple[str, ...] = (
    "pop",
    "rock",
    "funk",
    "jazz",
    "electronic",
    "ambient",
    "blues",
    "disco",
)

MOODS: tuple[str, ...] = ("happy", "sad", "energetic", "calm", "dark", "dreamy")

SECTIONS: tuple[str, ...] = ("intro", "verse", "chorus", "bridge", "outro")

#: Free-text names a user may type, mapped to the canonical class.
INSTRUMENT_SYNONYMS: dict[str, str] = {
    "drum": "drums",
    "drum kit": "drums",
    "drumkit": "drums",
    "kit": "drums",
    "percussion": "drums",
    "beat": "drums",
    "bass guitar": "bass",
    "bassline": "bass",
    "bass line": "bass",
    "keys": "piano",
    "keyboard": "piano",
    "keyboards": "piano",
    "electric piano": "piano",
    "guitars": "guitar",
    "electric guitar": "guitar",
    "acoustic guitar": "guitar",
    "hammond": "organ",
    "string": "strings",
    "string section": "strings",
    "violin": "strings",
    "violins": "strings",
    "horn": "brass",
    "horns": "brass",
    "trumpet": "brass",
    "brass section": "brass",
    "synth lead": "lead",
    "lead synth": "lead",
    "melody": "lead",
    "synth": "lead",
    "synth pad": "pad",
    "pads": "pad",
}

GENRE_SYNONYMS: dict[str, str] = {
    "edm": "electronic",
    "techno": "electronic",
    "house": "electronic",
    "dance": "electronic",
    "ambient music": "ambient",
    "rock and roll": "rock",
    "rock'n'roll": "rock",
    "jazzy": "jazz",
    "funky": "funk",
    "bluesy": "blues",
}


def canonical_instrument(name: str) -> str:
    """Map a user-typed instrument name to its class, or raise with the known names."""
    key = " ".join(name.strip().lower().replace("_", " ").split())
    if key in INSTRUMENTS:
        return key
    if key in INSTRUMENT_SYNONYMS:
        return INSTRUMENT_SYNONYMS[key]
    if key.endswith("s") and key[:-1] in INSTRUMENTS:
        return key[:-1]
    raise VocabularyError(
        f"unknown instrument {shorten(name)}; known instruments: {', '.join(INSTRUMENTS)}"
    )


def canonical_genre(name: str) -> str:
    """Map a user-typed genre name to its canonical genre, or raise with the known genres."""
    key = " ".join(name.strip().lower().split())
    if key in GENRES:
        return key
    if key in GENRE_SYNONYMS:
        return GENRE_SYNONYMS[key]
    raise VocabularyError(f"unknown genre {shorten(name)}; known genres: {', '.join(GENRES)}")
