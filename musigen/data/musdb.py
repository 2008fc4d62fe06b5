"""MUSDB18-HQ in its native layout.

``{train,test}/<Artist - Title>/{mixture,vocals,drums,bass,other}.wav``:

``drums`` and ``bass`` map to our classes.  ``vocals`` and ``other`` have no class of ours
(``other`` is everything else: guitars, keys, strings... pre-mixed), so they are kept as
``extra_stems`` and stay in the mix.  MUSDB18-HQ has two splits, ``train`` (100) and
``test`` (50); the compressed MUSDB18 (``.stem.mp4``) is refused with a hint.
"""

from __future__ import annotations

from pathlib import Path

from musigen.data.stems import StemTrack, require_dir
from musigen.errors import DataError

SPLITS: tuple[str, ...] = ("train", "test")
CLASS_STEMS: dict[str, str] = {"drums": "drums", "bass": "bass"}
EXTRA_STEMS: tuple[str, ...] = ("vocals", "other")


def read_track(track_dir: Path, split: str) -> StemTrack:
    """One MUSDB18-HQ track folder as a :class:`StemTrack`."""
    needed = ["mixture", *CLASS_STEMS, *EXTRA_STEMS]
    missing = [n for n in needed if not (track_dir / f"{n}.wav").is_file()]
    if missing:
        files = ", ".join(m + ".wav" for m in missing)
        raise DataError(f"MUSDB18-HQ track {track_dir} lacks {files}")
    artist, _, title = track_dir.name.partition(" - ")
    return StemTrack(
        source="musdb18hq", track_id=f"{split}/{track_dir.name}", mix=track_dir / "mixture.wav",
        stems={ours: [track_dir / f"{name}.wav"] for name, ours in CLASS_STEMS.items()},
        extra_stems={name: [track_dir / f"{name}.wav"] for name in EXTRA_STEMS},
        split=split, title=title or None, artist=artist if title else None,
    )


def find_tracks(root: Path, split: str | None = None, out_dir: Path | None = None
                ) -> list[StemTrack]:
    """Every MUSDB18-HQ track under `root` (``train/`` and ``test/``), or one split's."""
    root = require_dir(root, "MUSDB18-HQ")
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown MUSDB18-HQ split {split!r}; use one of {', '.join(SPLITS)}")
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        raise DataError(f"{root} has neither train/ nor test/ (is this MUSDB18-HQ?)")
    if any(root.glob("*/*.stem.mp4")):
        raise DataError(
            f"{root} holds MUSDB18 .stem.mp4 files; use MUSDB18-HQ (WAV) or decode them first"
        )
    wanted = present if split is None else [s for s in present if s == split]
    return [read_track(d, s) for s in wanted for d in sorted((root / s).iterdir()) if d.is_dir()]
