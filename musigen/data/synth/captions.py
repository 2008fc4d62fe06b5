"""Natural, varied English captions naming genre, tempo, key, mood and instruments.

Text-to-music and CLAP models learn the text side from these, so the same facts are
phrased many ways (templates, synonyms, word order) but every caption states all five.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

INSTRUMENT_WORDS: dict[str, tuple[str, ...]] = {
    "drums": ("drums", "a drum kit", "live drums", "punchy drums"),
    "bass": ("bass", "bass guitar", "electric bass", "a bassline"),
    "piano": ("piano", "acoustic piano", "keys"),
    "guitar": ("guitar", "electric guitar", "a guitar"),
    "organ": ("organ", "a Hammond-style organ", "drawbar organ"),
    "strings": ("strings", "a string section", "lush strings"),
    "brass": ("brass", "a horn section", "brass stabs"),
    "lead": ("synth lead", "a lead synth", "a square-wave lead"),
    "pad": ("synth pad", "warm pads", "an ambient pad"),
}
GENRE_WORDS: dict[str, tuple[str, ...]] = {
    "pop": ("pop", "pop", "modern pop"),
    "rock": ("rock", "rock", "hard-edged rock"),
    "funk": ("funk", "funk", "groovy funk"),
    "jazz": ("jazz", "jazz", "swinging jazz"),
    "electronic": ("electronic", "electronic dance", "club electronic"),
    "ambient": ("ambient", "ambient", "atmospheric ambient"),
    "blues": ("blues", "blues", "electric blues"),
    "disco": ("disco", "disco", "retro disco"),
}
MOOD_WORDS: dict[str, tuple[str, ...]] = {
    "happy": ("happy", "cheerful", "upbeat", "joyful"),
    "sad": ("sad", "melancholic", "wistful", "somber"),
    "energetic": ("energetic", "driving", "high-energy", "lively"),
    "calm": ("calm", "relaxed", "peaceful", "laid-back"),
    "dark": ("dark", "brooding", "moody", "ominous"),
    "dreamy": ("dreamy", "floaty", "ethereal", "hazy"),
}
_TEMPLATES: tuple[str, ...] = (
    "A {mood} {genre} track at {bpm} BPM in {key}, featuring {insts}.",
    "{Mood} {genre} in {key} at {bpm} bpm with {insts}.",
    "{Insts} play a {mood} {genre} piece in {key}, {bpm} beats per minute.",
    "This {genre} tune in {key} moves at {bpm} BPM; {insts} set a {mood} mood.",
    "Instrumental {genre} with {insts}. Key: {key}. Tempo: {bpm} BPM. Mood: {mood}.",
    "A {tempo_word} {genre} groove ({bpm} BPM, {key}) with {insts}, {mood} in feel.",
    "{Mood} and {tempo_word}: a {genre} song in {key} at {bpm} BPM built on {insts}.",
    "{bpm} BPM {genre} in {key} - {insts} - with a {mood} atmosphere.",
)


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _tempo_word(bpm: float) -> str:
    return "slow" if bpm < 80 else "mid-tempo" if bpm < 110 else "fast" if bpm > 140 else "brisk"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def make_caption(
    genre: str,
    tempo: float,
    key_root_name: str,
    mode: str,
    mood: str,
    instruments: list[str],
    seed: int,
) -> str:
    """A caption for one piece; deterministic from `seed` and the facts."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(genre.encode()), 7])
    insts = [_pick(rng, INSTRUMENT_WORDS[i]) for i in instruments]
    order = rng.permutation(len(insts))
    insts = [insts[i] for i in order]
    # the canonical mood word half of the time, so tag-matching models see it often
    mood_w = mood if rng.random() < 0.5 else _pick(rng, MOOD_WORDS[mood])
    key = f"{key_root_name} {mode}"
    fields = {
        "mood": mood_w,
        "Mood": _cap(mood_w),
        "genre": _pick(rng, GENRE_WORDS[genre]),
        "bpm": str(int(round(tempo))),
        "key": key,
        "insts": _join(insts),
        "Insts": _cap(_join(insts)),
        "tempo_word": _tempo_word(tempo),
    }
    text = _pick(rng, _TEMPLATES).format(**fields)
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)  # a energetic -> an energetic
