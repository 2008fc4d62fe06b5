"""Tag vocabulary and the texts that stand for each tag in an audio–text embedding space.

Zero-shot tagging ranks a few *prompt* texts against audio embeddings, so the prompt that
stands for a tag must be fixed and shared by training, evaluation and `musigen embed`.
Training also sees paraphrases of each tag (synonyms, templates) so that the text tower
generalises beyond the exact prompt.  All names come from :mod:`musigen.vocab`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from musigen.errors import VocabularyError
from musigen.vocab import GENRES, INSTRUMENT_SYNONYMS, INSTRUMENTS, MOODS, SECTIONS

#: Tag categories in a fixed order; the order is part of the shipped checkpoints' contract.
CATEGORIES: tuple[str, ...] = ("instrument", "genre", "mood", "section")

#: Which categories are multi-label (several can be true for one window).
MULTI_LABEL: dict[str, bool] = {"instrument": True, "genre": False, "mood": False, "section": False}

_NAMES: dict[str, tuple[str, ...]] = {
    "instrument": INSTRUMENTS,
    "genre": GENRES,
    "mood": MOODS,
    "section": SECTIONS,
}

#: The canonical prompt per category.  Instruments use the bare name, exactly the text
#: the zero-shot instrument-tagging evaluation ranks ("<instrument>").
_PROMPT: dict[str, str] = {
    "instrument": "{}",
    "genre": "{} music",
    "mood": "{} mood",
    "section": "the {} of a song",
}

#: Extra templates for training paraphrases; the canonical prompt is always included too.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "instrument": ("{}", "the sound of {}", "a track with {}", "{} playing", "music featuring {}"),
    "genre": ("{}", "{} music", "a {} song", "a {} track", "{} style"),
    "mood": ("{}", "{} mood", "a {} song", "{} music", "it sounds {}"),
    "section": ("{}", "the {} of a song", "{} section", "the {}", "this is the {}"),
}


@dataclass(frozen=True)
class Tag:
    """One tag: its category and canonical name."""

    category: str
    name: str

    @property
    def prompt(self) -> str:
        """The fixed text that stands for this tag at inference."""
        return _PROMPT[self.category].format(self.name)


def tag_names(category: str) -> tuple[str, ...]:
    """Canonical names of one category, in vocabulary order."""
    if category not in _NAMES:
        raise VocabularyError(f"unknown tag category {category!r}; known: {', '.join(CATEGORIES)}")
    return _NAMES[category]


def all_tags(categories: tuple[str, ...] = CATEGORIES) -> list[Tag]:
    """Every tag of the given categories, category by category in vocabulary order."""
    return [Tag(c, n) for c in categories for n in tag_names(c)]


def prompts(category: str) -> list[str]:
    """Canonical prompt texts of one category, aligned with :func:`tag_names`."""
    return [Tag(category, n).prompt for n in tag_names(category)]


def paraphrases(tag: Tag) -> list[str]:
    """Training texts for one tag: the prompt, templates, and synonyms for instruments."""
    names = [tag.name]
    if tag.category == "instrument":
        names += sorted(s for s, canon in INSTRUMENT_SYNONYMS.items() if canon == tag.name)
    texts = [tag.prompt]
    for name in names:
        for template in _TEMPLATES[tag.category]:
            text = template.format(name)
            if text not in texts:
                texts.append(text)
    return texts


def window_caption(instruments: list[str], genre: str, mood: str, section: str | None) -> str:
    """A caption for one window built from its own tags (used when no caption applies)."""
    parts = [f"{mood} {genre}"]
    if section:
        parts.append(section)
    if instruments:
        names = list(instruments)
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
        parts.append(f"with {listed}")
    return " ".join(parts)


@dataclass
class WindowLabels:
    """Tags of one window: instrument multi-hot and single-label indices (-1 = unknown)."""

    instruments: np.ndarray
    genre: int
    mood: int
    section: int

    def caption(self) -> str:
        """A caption built from this window's own tags."""
        names = [n for n, on in zip(INSTRUMENTS, self.instruments, strict=True) if on > 0]
        genre = GENRES[self.genre] if self.genre >= 0 else "music"
        mood = MOODS[self.mood] if self.mood >= 0 else ""
        section = SECTIONS[self.section] if self.section >= 0 else None
        return window_caption(names, genre, mood, section).strip()


def _index(names: tuple[str, ...], value: Any) -> int:
    return names.index(value) if isinstance(value, str) and value in names else -1


def window_labels(
    record: dict[str, Any], start_s: float, end_s: float, min_active_s: float = 1.0
) -> WindowLabels:
    """Tags of ``[start_s, end_s)`` of a manifest record.

    An instrument counts when it sounds for at least `min_active_s` inside the window (a
    note tail spilling 50 ms into a window is not "this window has piano"); windows shorter
    than that need half their length.  Without `stem_activity`, `instruments` applies.
    """
    need = min(min_active_s, 0.5 * (end_s - start_s))
    multi = np.zeros(len(INSTRUMENTS), np.float32)
    activity = record.get("stem_activity")
    for i, name in enumerate(INSTRUMENTS):
        if activity is not None:
            spans = activity.get(name, [])
            sounding = sum(max(0.0, min(e, end_s) - max(s, start_s)) for s, e in spans)
            multi[i] = float(sounding >= need)
        else:
            multi[i] = float(name in record.get("instruments", []))
    best, section = 0.0, -1
    for s, e, name in record.get("sections", []):
        overlap = min(e, end_s) - max(s, start_s)
        if overlap > best and name in SECTIONS:
            best, section = overlap, SECTIONS.index(name)
    return WindowLabels(
        multi, _index(GENRES, record.get("genre")), _index(MOODS, record.get("mood")), section
    )


@dataclass
class SegmentTags:
    """Zero-shot tags of one window: per category, (name, cosine) pairs, best first."""

    start: float
    end: float
    tags: dict[str, list[tuple[str, float]]]

    def line(self) -> str:
        parts = [
            f"{cat}: " + ", ".join(f"{n} {s:.2f}" for n, s in pairs)
            for cat, pairs in self.tags.items()
        ]
        return f"{self.start:6.1f}-{self.end:6.1f} s  " + " | ".join(parts)


def rank_tags(
    audio: Any, text_by_category: dict[str, Any], top_k: dict[str, int] | int = 3
) -> list[dict[str, list[tuple[str, float]]]]:
    """Rank each category's tags by cosine for every window; `audio` [S, D], texts [N_c, D]."""
    out: list[dict[str, list[tuple[str, float]]]] = [{} for _ in range(audio.shape[0])]
    for cat, text in text_by_category.items():
        k = top_k if isinstance(top_k, int) else top_k.get(cat, 1)
        scores = (audio @ text.T).cpu()
        names = tag_names(cat)
        for s, row in enumerate(scores):
            best = row.argsort(descending=True)[: max(1, min(k, len(names)))]
            out[s][cat] = [(names[int(i)], float(row[i])) for i in best]
    return out


def analyze_audio(
    embedder: Any,
    wav: Any,
    sample_rate: int,
    window_s: float = 10.0,
    hop_s: float | None = None,
    top_k: int = 3,
    categories: tuple[str, ...] = CATEGORIES,
    audio_embeddings: Any | None = None,
) -> list[SegmentTags]:
    """Per-window zero-shot tags of a recording: instruments (top `top_k`) and best genre,
    mood and section.  `embedder` is any AudioTextEmbedder; this is MusiCoT's analysis seed.
    Pass `audio_embeddings` (from `embed_audio` with the same windows) to skip re-embedding."""
    for cat in categories:
        tag_names(cat)  # validate names early
    audio = (
        audio_embeddings
        if audio_embeddings is not None
        else embedder.embed_audio(wav, sample_rate, window_s, hop_s)
    )
    texts = {cat: embedder.embed_text(prompts(cat)) for cat in categories}
    n = wav.shape[-1]
    segments = embedder.segments(n, sample_rate, window_s, hop_s)
    ranked = rank_tags(audio, texts, {c: (top_k if MULTI_LABEL[c] else 1) for c in categories})
    return [SegmentTags(seg.start, seg.end, r) for seg, r in zip(segments, ranked, strict=True)]
