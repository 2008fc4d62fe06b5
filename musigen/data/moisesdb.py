"""MoisesDB in its native layout: ``<song uuid>/data.json`` and ``<uuid>/<stemName>/<id>.<ext>``.

The root may be the folder holding the song folders (``moisesdb_v0.1``) or the one above
it.  ``data.json`` gives ``song``, ``artist``, ``genre`` and ``stems: [{stemName, tracks:
[{trackType, id, extension}]}]``.

MoisesDB ships no mixture, so one is rendered per song as the sample-wise sum of all its
tracks (shorter ones zero-padded), written beside the manifest under ``moisesdb_mixes/``:
24-bit FLAC when the sum stays within full scale, float WAV otherwise (both lossless
enough that the stems still sum to the mix).  It has no official split.

Class map (stemName, refined by trackType where the stem is a family):

- drums -> drums; percussion -> drums, except pitched percussion (mallets) -> extra;
- bass -> bass; guitar -> guitar; piano -> piano (electric pianos included);
- other_keys -> organ / pad / lead by trackType ("organ", "pad", "lead"), else extra;
- bowed_strings -> strings;
- wind -> brass for brass and reeds (saxophones play in the horn section), lead for
  flutes, else extra;
- vocals, other, other_plucked (and anything new) -> ``extra_stems`` under the stemName.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from musigen.data.stems import StemTrack, require_dir, slug
from musigen.errors import DataError

DIRECT_CLASSES: dict[str, str] = {
    "drums": "drums",
    "bass": "bass",
    "guitar": "guitar",
    "piano": "piano",
    "bowed_strings": "strings",
}
MIX_FOLDER = "moisesdb_mixes"


def class_of(stem_name: str, track_type: str) -> str | None:
    """Our class for a MoisesDB track, or None when it has none (see module docstring)."""
    stem, kind = slug(stem_name), track_type.lower()
    if stem in DIRECT_CLASSES:
        return DIRECT_CLASSES[stem]
    if stem == "percussion":
        return None if "pitched" in kind and "a-tonal" not in kind else "drums"
    if stem == "other_keys":
        for word, ours in (("organ", "organ"), ("pad", "pad"), ("lead", "lead")):
            if word in kind:
                return ours
        return None
    if stem == "wind":
        if "brass" in kind or "reed" in kind or "sax" in kind:
            return "brass"
        if "flute" in kind:
            return "lead"
    return None


def _song_files(root: Path) -> list[Path]:
    files = sorted(root.glob("*/data.json"))
    return files or sorted(root.glob("*/*/data.json"))


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("stems"), list):
        raise DataError(f"{path} has no 'stems' list (is this MoisesDB?)")
    return data


def render_mix(paths: list[Path], out_dir: Path, song_id: str) -> Path:
    """Sum every track of a song into one mixture file (see module docstring)."""
    from musigen.audio import load_audio, save_audio

    total: np.ndarray | None = None
    rate = 0
    for p in paths:
        wav, sr = load_audio(p)
        if rate and sr != rate:
            raise DataError(
                f"MoisesDB song {song_id}: {p} is at {sr} Hz, other tracks at {rate} Hz"
            )
        rate = sr
        if total is None:
            total = wav.astype(np.float64)
            continue
        if wav.shape[0] != total.shape[0]:  # mono track in a stereo song: duplicate it
            channels = max(wav.shape[0], total.shape[0])
            wav = np.repeat(wav, channels // wav.shape[0], axis=0)
            total = np.repeat(total, channels // total.shape[0], axis=0)
        n = max(total.shape[1], wav.shape[1])
        total = np.pad(total, ((0, 0), (0, n - total.shape[1])))
        total[:, : wav.shape[1]] += wav
    assert total is not None
    suffix = ".flac" if np.abs(total).max() <= 1.0 else ".wav"
    target = out_dir / MIX_FOLDER / f"{song_id}{suffix}"
    for stale in (target.with_suffix(".flac"), target.with_suffix(".wav")):
        if stale != target and stale.exists():
            stale.unlink()
    return save_audio(target, total.astype(np.float32), rate)


def read_song(data_json: Path, out_dir: Path) -> StemTrack:
    """One MoisesDB song as a :class:`StemTrack`, rendering its mixture."""
    data = _load_json(data_json)
    song_dir = data_json.parent
    stems: dict[str, list[Path]] = {}
    extra: dict[str, list[Path]] = {}
    every: list[Path] = []
    for stem in data["stems"]:
        name = stem.get("stemName") if isinstance(stem, dict) else None
        if not isinstance(name, str) or not isinstance(stem.get("tracks"), list):
            raise DataError(f"{data_json}: every stem needs a stemName and a tracks list")
        for track in stem["tracks"]:
            try:
                path = song_dir / name / f"{track['id']}.{track['extension']}"
            except (KeyError, TypeError):
                raise DataError(
                    f"{data_json}: a track of {name} lacks its id or extension"
                ) from None
            if not path.is_file():
                raise DataError(f"MoisesDB track {path} listed in {data_json} is missing")
            ours = class_of(name, str(track.get("trackType", "")))
            (stems.setdefault(ours, []) if ours else extra.setdefault(slug(name), [])).append(path)
            every.append(path)
    if not every:
        raise DataError(f"{data_json} lists no tracks")
    return StemTrack(
        source="moisesdb", track_id=song_dir.name, mix=render_mix(every, out_dir, song_dir.name),
        stems=stems, extra_stems=extra, genre=data.get("genre") or None,
        title=data.get("song") or None, artist=data.get("artist") or None,
    )


def find_tracks(root: Path, split: str | None = None, out_dir: Path | None = None
                ) -> list[StemTrack]:
    """Every MoisesDB song under `root`; mixtures are rendered into `out_dir`."""
    root = require_dir(root, "MoisesDB")
    if split is not None:
        raise DataError("MoisesDB has no official split; leave --split out")
    if out_dir is None:
        raise DataError("MoisesDB import needs an output folder for its rendered mixtures")
    files = _song_files(root)
    if not files:
        raise DataError(f"no MoisesDB songs (<uuid>/data.json) under {root}")
    return [read_song(f, out_dir) for f in files]
