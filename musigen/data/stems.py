"""Real stem datasets -> musigen manifests (the entry point of `musigen data import`).

Each adapter (:mod:`~musigen.data.slakh`, :mod:`~musigen.data.musdb`,
:mod:`~musigen.data.moisesdb`) reads its dataset's native layout and yields
:class:`StemTrack` objects; this module turns them into manifest records of the same schema
as the procedural corpus (see :mod:`musigen.data.manifest`).

How source stems become our classes (:data:`musigen.vocab.INSTRUMENTS`):

- several source stems of one class (two guitars) are kept as a *list of paths* under that
  class in ``stems``; :class:`~musigen.data.manifest.ManifestDataset` sums them when
  loading, so nothing is pre-mixed and no audio is copied;
- source stems with no class of ours (vocals, sound effects...) go to ``extra_stems``
  under a lower-case name; they are still part of the mix;
- captions are built from what is known: the genre when the dataset has one, the
  instruments (ours and the extra ones), in one of a few fixed sentence shapes picked by a
  hash of the track id, so a rebuild gives the same captions;
- ``genre`` is set only when the dataset's genre maps onto :data:`musigen.vocab.GENRES`;
  the original text is kept in ``source_genre`` either way;
- ``stem_activity`` is measured from the stem audio only with ``activity=True`` (it decodes
  every stem, which takes a while on a full dataset); without it a class counts as
  present throughout the piece.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musigen.errors import DataError, VocabularyError
from musigen.vocab import INSTRUMENTS, canonical_genre

DATASETS: tuple[str, ...] = ("slakh", "musdb", "moisesdb")

#: How extra (unclassed) stem names read in captions; None keeps them out of the caption.
_EXTRA_WORDS: dict[str, str | None] = {
    "other": None,
    "vocals": "vocals",
    "other_plucked": "plucked strings",
    "other_keys": "keyboards",
    "wind": "winds",
    "chromatic_percussion": "mallet percussion",
    "ethnic": "ethnic instruments",
    "percussive": "percussion",
    "synth_effects": "synth effects",
    "sound_effects": "sound effects",
}
#: Caption sentence shapes, with and without a known genre (same index = same shape).
_CAPTION_SHAPES: tuple[tuple[str, str], ...] = (
    ("{A} {genre} track with {inst}.", "A track with {inst}."),
    ("{Genre} music featuring {inst}.", "Music featuring {inst}."),
    ("{A} {genre} recording of {inst}.", "A recording of {inst}."),
    ("{A} {genre} piece with {inst}.", "A piece with {inst}."),
)
#: Activity detection: 100 ms frames louder than -50 dBFS RMS, gaps under 0.5 s bridged.
ACTIVITY_HOP_S: float = 0.1
ACTIVITY_THRESHOLD_DB: float = -50.0
ACTIVITY_MAX_GAP_S: float = 0.5


@dataclass
class StemTrack:
    """One piece as an adapter found it: mix, stems per class, extras and what is known."""

    source: str
    track_id: str
    mix: Path
    stems: dict[str, list[Path]]
    extra_stems: dict[str, list[Path]] = field(default_factory=dict)
    genre: str | None = None
    split: str | None = None
    title: str | None = None
    artist: str | None = None
    midi: Path | None = None


def slug(name: str) -> str:
    """A stem or class name as a manifest key: lower case, words joined by underscores."""
    words = "".join(c if c.isalnum() else " " for c in name.lower()).split()
    return "_".join(words) or "unnamed"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def make_caption(track_id: str, instruments: list[str], extras: Iterable[str],
                 genre: str | None) -> str:
    """A plain English caption from the genre (if known) and the instruments present."""
    words = list(instruments)
    for name in extras:
        word = _EXTRA_WORDS.get(name, name.replace("_", " "))
        if word and word not in words:
            words.append(word)
    inst = _join(words) if words else "an unknown ensemble"
    with_genre, without = _CAPTION_SHAPES[zlib.crc32(track_id.encode()) % len(_CAPTION_SHAPES)]
    g = " ".join(genre.lower().split()) if genre else ""
    if not g:
        return without.format(inst=inst)
    article = "An" if g[0] in "aeiou" else "A"
    return with_genre.format(A=article, genre=g, Genre=g[0].upper() + g[1:], inst=inst)


def stem_activity(paths: list[Path]) -> list[list[float]]:
    """Where the sum of `paths` sounds, as ``[[start_s, end_s], ...]`` (see ACTIVITY_*)."""
    from musigen.audio import load_audio

    total: np.ndarray | None = None
    sr = 0
    for p in paths:
        wav, sr = load_audio(p, channels=1)
        if total is None:
            total = wav[0].astype(np.float64)
        else:
            n = max(total.size, wav.shape[1])
            total = np.pad(total, (0, n - total.size))
            total[: wav.shape[1]] += wav[0]
    assert total is not None
    hop = max(1, int(round(ACTIVITY_HOP_S * sr)))
    frames = math.ceil(total.size / hop)
    padded = np.pad(total, (0, frames * hop - total.size)).reshape(frames, hop)
    with np.errstate(divide="ignore"):
        level = 10.0 * np.log10(np.mean(padded**2, axis=1))
    spans: list[list[float]] = []
    for i in np.flatnonzero(level > ACTIVITY_THRESHOLD_DB):
        start, end = i * hop / sr, min((i + 1) * hop, total.size) / sr
        if spans and start - spans[-1][1] <= ACTIVITY_MAX_GAP_S:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return [[round(s, 4), round(e, 4)] for s, e in spans]


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def _paths_value(paths: list[Path], base: Path) -> str | list[str]:
    rel = [_rel(p, base) for p in paths]
    return rel[0] if len(rel) == 1 else rel


def track_record(track: StemTrack, base: Path, activity: bool = False) -> dict[str, Any]:
    """The manifest record of `track`, paths relative to `base` (the manifest's folder)."""
    from musigen.audio import audio_info

    info = audio_info(track.mix)
    instruments = [name for name in INSTRUMENTS if track.stems.get(name)]
    try:
        genre = canonical_genre(track.genre) if track.genre else None
    except VocabularyError:
        genre = None
    rec: dict[str, Any] = {
        "path": _rel(track.mix, base),
        "duration": round(info.duration, 6),
        "sample_rate": info.sample_rate,
        "caption": make_caption(track.track_id, instruments, sorted(track.extra_stems),
                                track.genre),
        "instruments": instruments,
        "stems": {name: _paths_value(track.stems[name], base) for name in instruments},
        "source": track.source,
        "track_id": track.track_id,
    }
    if track.extra_stems:
        rec["extra_stems"] = {k: _paths_value(v, base)
                              for k, v in sorted(track.extra_stems.items())}
    if genre:
        rec["genre"] = genre
    if track.genre:
        rec["source_genre"] = track.genre
    for key in ("split", "title", "artist"):
        if getattr(track, key):
            rec[key] = getattr(track, key)
    if track.midi is not None:
        rec["midi"] = _rel(track.midi, base)
    if activity:
        rec["stem_activity"] = {name: stem_activity(track.stems[name]) for name in instruments}
    return rec


def require_dir(root: Path, dataset: str) -> Path:
    """`root` as a Path, or a DataError saying it is missing."""
    root = Path(root)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DataError(f"{dataset} root {root} {what}")
    return root


def build_manifest(dataset: str, root: Path, out: Path, split: str | None = None,
                   activity: bool = False) -> int:
    """Write a manifest for `dataset` ("slakh", "musdb", "moisesdb") found at `root`.

    Returns the number of records written.  A missing root, a wrong layout, an unknown
    split or a dataset with no tracks raises DataError; paths in the manifest are relative
    to `out`'s folder.
    """
    from musigen.data.manifest import write_manifest

    out = Path(out)
    base = out.parent if str(out.parent) else Path(".")
    if dataset == "slakh":
        from musigen.data.slakh import find_tracks
    elif dataset == "musdb":
        from musigen.data.musdb import find_tracks
    elif dataset == "moisesdb":
        from musigen.data.moisesdb import find_tracks
    else:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    tracks = find_tracks(Path(root), split=split, out_dir=base)
    if not tracks:
        where = f" in split {split!r}" if split else ""
        raise DataError(f"no {dataset} tracks{where} under {root}")
    records = [track_record(t, base, activity=activity) for t in tracks]
    write_manifest(out, records)
    return len(records)
