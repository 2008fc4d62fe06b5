"""Slakh2100 in its native layout: ``TrackNNNNN/{mix.flac, stems/SNN.flac, metadata.yaml}``.

Track folders may sit directly under the root or one level down (``train/``,
``validation/``, ``test/``); folders under ``omitted/`` (the redux release's duplicates)
are skipped.  The split is always taken from the track number, by the official ranges.

Class map (``inst_class`` -> ours; any stem with ``is_drum: true`` is ``drums``):

==========================  ========  ===========================================
Piano                       piano
Organ                       organ
Guitar                      guitar
Bass                        bass
Strings, Strings (cont.)    strings   ensembles, synth strings and choirs too
Brass, Reed                 brass     saxophones play in the horn section
Pipe, Synth Lead            lead      flutes and whistles carry melodies
Synth Pad                   pad
Drums                       drums
==========================  ========  ===========================================

Every other class (Chromatic Percussion, Synth Effects, Ethnic, Percussive, Sound
Effects, anything new) is unmapped: its stems go to ``extra_stems`` under the class name
in lower case with underscores.  Stems with ``audio_rendered: false`` have no audio and
are left out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from musigen.data.stems import StemTrack, require_dir, slug
from musigen.errors import DataError

SLAKH_CLASSES: dict[str, str] = {
    "Piano": "piano",
    "Organ": "organ",
    "Guitar": "guitar",
    "Bass": "bass",
    "Strings": "strings",
    "Strings (continued)": "strings",
    "Brass": "brass",
    "Reed": "brass",
    "Pipe": "lead",
    "Synth Lead": "lead",
    "Synth Pad": "pad",
    "Drums": "drums",
}
#: Official splits by track number (inclusive ranges).
SPLITS: dict[str, tuple[int, int]] = {
    "train": (1, 1500),
    "validation": (1501, 1875),
    "test": (1876, 2100),
}
_TRACK_RE = re.compile(r"^Track(\d+)$")


def split_of(number: int) -> str | None:
    """The official split of track `number`, or None outside 1..2100."""
    for name, (lo, hi) in SPLITS.items():
        if lo <= number <= hi:
            return name
    return None


def _track_dirs(root: Path) -> list[Path]:
    """Track folders at the root and inside split folders (not inside ``omitted/``)."""
    found: dict[str, Path] = {}
    for d in sorted(root.iterdir()):
        if not d.is_dir():
            continue
        if _TRACK_RE.match(d.name):
            found.setdefault(d.name, d)
        elif d.name != "omitted":
            for t in sorted(d.iterdir()):
                if t.is_dir() and _TRACK_RE.match(t.name):
                    found.setdefault(t.name, t)
    return [found[k] for k in sorted(found)]


def _metadata(track_dir: Path) -> dict[str, Any]:
    import yaml

    path = track_dir / "metadata.yaml"
    if not path.is_file():
        raise DataError(f"Slakh track {track_dir} has no metadata.yaml (wrong layout?)")
    try:
        meta = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("stems"), dict):
        raise DataError(f"{path} has no 'stems' mapping (is this Slakh2100?)")
    return meta


def read_track(track_dir: Path) -> StemTrack:
    """One Slakh track as a :class:`StemTrack` (rendered stems only)."""
    meta = _metadata(track_dir)
    mix = track_dir / "mix.flac"
    if not mix.is_file():
        raise DataError(f"Slakh track {track_dir} has no mix.flac")
    audio_dir = track_dir / str(meta.get("audio_dir") or "stems")
    stems: dict[str, list[Path]] = {}
    extra: dict[str, list[Path]] = {}
    for stem_id, info in sorted(meta["stems"].items()):
        if not isinstance(info, dict):
            raise DataError(f"{track_dir}/metadata.yaml: stem {stem_id} is not a mapping")
        if not info.get("audio_rendered", False):
            continue
        path = audio_dir / f"{stem_id}.flac"
        if not path.is_file():
            raise DataError(f"Slakh stem {path} is marked rendered but missing")
        inst_class = str(info.get("inst_class", ""))
        ours = "drums" if info.get("is_drum") else SLAKH_CLASSES.get(inst_class)
        if ours is None:
            extra.setdefault(slug(inst_class or "unknown"), []).append(path)
        else:
            stems.setdefault(ours, []).append(path)
    number = int(_TRACK_RE.match(track_dir.name).group(1))  # type: ignore[union-attr]
    midi = track_dir / "all_src.mid"
    return StemTrack(
        source="slakh2100", track_id=track_dir.name, mix=mix, stems=stems, extra_stems=extra,
        split=split_of(number), midi=midi if midi.is_file() else None,
    )


def find_tracks(root: Path, split: str | None = None, out_dir: Path | None = None
                ) -> list[StemTrack]:
    """Every Slakh track under `root`, optionally only those of `split`."""
    root = require_dir(root, "Slakh2100")
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown Slakh2100 split {split!r}; use one of {', '.join(SPLITS)}")
    dirs = _track_dirs(root)
    if not dirs:
        raise DataError(
            f"no Slakh2100 track folders (TrackNNNNN with metadata.yaml) under {root}"
        )
    if split is not None:
        dirs = [d for d in dirs if split_of(int(d.name[5:])) == split]
    return [read_track(d) for d in dirs]
