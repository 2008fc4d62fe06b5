"""JSONL manifests and the crop dataset that every trainer reads.

One line per piece.  Required keys: ``path`` (the mix, relative to the manifest's folder),
``duration`` (s), ``sample_rate`` and ``caption``.  Optional keys and their types:

- ``stems``: instrument class (one of :data:`musigen.vocab.INSTRUMENTS`) -> a relative
  path, or a *list* of relative paths when several source stems share one class (real
  datasets: two guitars in Slakh).  Readers sum a list sample by sample.
- ``extra_stems``: same value types, keyed by free names (``vocals``, ``other``...): parts
  of the mix that have no class of ours.  The mix still contains them.
- ``chords`` ``[[start_s, end_s, harte]]``, ``sections`` ``[[start_s, end_s, name]]``,
  ``stem_activity`` ``{instrument: [[start_s, end_s], ...]}``, ``instruments`` [names],
  ``genre``, ``tempo``, ``key``, ``mood``, ``seed``, ``midi``, ``split``, ``source``.

Validation happens on read and on write, with errors that name the file and line, so a
bad record fails when the manifest is built rather than hours into training.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from musigen.errors import DataError
from musigen.vocab import INSTRUMENTS

REQUIRED_KEYS: tuple[str, ...] = ("path", "duration", "sample_rate", "caption")
_INSTRUMENT_INDEX: dict[str, int] = {name: i for i, name in enumerate(INSTRUMENTS)}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_paths(value: Any, key: str, name: str) -> str | None:
    if isinstance(value, str) and value:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return None
    return f"{key}[{name!r}] must be a path or a non-empty list of paths"


def _check_intervals(value: Any, key: str, labelled: bool) -> str | None:
    width = 3 if labelled else 2
    if not isinstance(value, list):
        return f"{key} must be a list"
    for item in value:
        ok = (isinstance(item, list) and len(item) == width and _is_number(item[0])
              and _is_number(item[1]) and item[1] >= item[0]
              and (not labelled or isinstance(item[2], str)))
        if not ok:
            shape = "[start_s, end_s, label]" if labelled else "[start_s, end_s]"
            return f"{key} entries must be {shape} with end >= start, got {item!r}"
    return None


def _record_problem(rec: Any) -> str | None:
    """Why `rec` is not a valid manifest record, or None."""
    if not isinstance(rec, dict):
        return f"expected a JSON object, got {type(rec).__name__}"
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    if missing:
        return f"missing required key(s) {', '.join(missing)}"
    if not isinstance(rec["path"], str) or not rec["path"]:
        return "path must be a non-empty string"
    if not _is_number(rec["duration"]) or rec["duration"] <= 0:
        return f"duration must be a positive number, got {rec['duration']!r}"
    sr = rec["sample_rate"]
    if not isinstance(sr, int) or isinstance(sr, bool) or sr <= 0:
        return f"sample_rate must be a positive integer, got {sr!r}"
    if not isinstance(rec["caption"], str):
        return "caption must be a string"
    for key, check_class in (("stems", True), ("extra_stems", False)):
        if key not in rec:
            continue
        if not isinstance(rec[key], dict):
            return f"{key} must be an object"
        for name, value in rec[key].items():
            if check_class and name not in _INSTRUMENT_INDEX:
                return f"stems has unknown instrument {name!r}; known: {', '.join(INSTRUMENTS)}"
            problem = _check_paths(value, key, name)
            if problem:
                return problem
    if "instruments" in rec:
        inst = rec["instruments"]
        if not isinstance(inst, list) or any(i not in _INSTRUMENT_INDEX for i in inst):
            return f"instruments must be a list of {', '.join(INSTRUMENTS)}, got {inst!r}"
    if "stem_activity" in rec:
        act = rec["stem_activity"]
        if not isinstance(act, dict):
            return "stem_activity must be an object"
        for name, spans in act.items():
            if name not in _INSTRUMENT_INDEX:
                return f"stem_activity has unknown instrument {name!r}"
            problem = _check_intervals(spans, f"stem_activity[{name!r}]", labelled=False)
            if problem:
                return problem
    for key in ("chords", "sections"):
        if key in rec:
            problem = _check_intervals(rec[key], key, labelled=True)
            if problem:
                return problem
    return None


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and validate a JSONL manifest; blank lines are skipped."""
    p = Path(path)
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "not found"
        raise DataError(f"manifest {p} {what}")
    records: list[dict[str, Any]] = []
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read manifest {p}: {exc}") from exc
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{p} line {lineno}: not valid JSON ({exc.msg})") from None
        problem = _record_problem(rec)
        if problem:
            raise DataError(f"{p} line {lineno}: {problem}")
        records.append(rec)
    return records


def write_manifest(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> Path:
    """Validate and write `records` as JSONL, atomically; returns the path."""
    from musigen.atomic import write_text

    lines = []
    for i, rec in enumerate(records):
        problem = _record_problem(rec)
        if problem:
            raise DataError(f"manifest record {i} for {Path(path)}: {problem}")
        lines.append(json.dumps(rec, ensure_ascii=False))
    return write_text(path, "".join(line + "\n" for line in lines))


def resolve_paths(root: Path, value: str | list[str]) -> list[Path]:
    """A stems entry (one path or a list) as absolute paths under `root`."""
    return [root / v for v in ([value] if isinstance(value, str) else value)]


def active_instruments(record: dict[str, Any], start_s: float, end_s: float) -> list[str]:
    """Classes that sound inside ``[start_s, end_s)``.

    Uses ``stem_activity`` when the record has it, else ``instruments``, else the stem keys
    (real datasets often lack activity, so a class counts as present everywhere).
    """
    if "stem_activity" in record:
        return [name for name, spans in record["stem_activity"].items()
                if any(s < end_s and e > start_s for s, e in spans)]
    if "instruments" in record:
        return list(record["instruments"])
    return list(record.get("stems", {}))


def crop_intervals(items: Sequence[Sequence[Any]], start_s: float, end_s: float
                   ) -> list[list[Any]]:
    """Labelled intervals overlapping the crop, clipped to it and shifted to start at 0."""
    out = []
    for s, e, *rest in items:
        if s < end_s and e > start_s:
            out.append([round(max(s, start_s) - start_s, 6), round(min(e, end_s) - start_s, 6),
                        *rest])
    return out


class ManifestDataset(Dataset):
    """Fixed-length crops of the pieces in a manifest, with their metadata.

    Item ``i`` is a dict: ``wav`` float32 [channels, samples] (zero-padded when the piece is
    short), ``stems`` {instrument: tensor} and ``extra_stems`` (only with
    ``with_stems=True``; only the classes the piece has), ``caption``, ``genre``, ``key``,
    ``tempo``, ``start_s``, ``index``, ``instruments_active`` (float multi-hot over
    INSTRUMENTS within the crop), ``chords`` and ``sections`` within the crop in times
    relative to its start.

    Crops are a pure function of ``(seed, epoch, index)``, so they are the same in every
    DataLoader worker and across restarts; call :meth:`set_epoch` to draw new ones.
    ``random_crop=False`` always starts at 0 (for evaluation).
    """

    def __init__(
        self,
        manifest: str | Path,
        segment_s: float,
        sample_rate: int,
        channels: int = 1,
        with_stems: bool = False,
        random_crop: bool = True,
        seed: int = 0,
    ) -> None:
        from musigen.audio import MAX_CHANNELS, check_sample_rate

        if not _is_number(segment_s) or segment_s <= 0:
            raise DataError(f"segment_s must be a positive number of seconds, got {segment_s!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or not (
            1 <= channels <= MAX_CHANNELS
        ):
            raise DataError(f"channels must be an integer in 1..{MAX_CHANNELS}, got {channels!r}")
        self.manifest = Path(manifest)
        self.root = self.manifest.parent
        self.records = read_manifest(self.manifest)
        if not self.records:
            raise DataError(f"manifest {self.manifest} holds no records")
        self.segment_s = float(segment_s)
        self.sample_rate = check_sample_rate(sample_rate)
        self.channels = channels
        self.with_stems = with_stems
        self.random_crop = random_crop
        self.seed = int(seed)
        self.epoch = 0
        self.num_samples = int(round(self.segment_s * self.sample_rate))

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Choose the crops of `epoch` (call it at the start of each epoch)."""
        self.epoch = int(epoch)

    def crop_start(self, index: int) -> float:
        """Start of item `index`'s crop in seconds, on this dataset's sample grid."""
        duration = float(self.records[index]["duration"])
        room = duration - self.segment_s
        if not self.random_crop or room <= 0:
            return 0.0
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return int(rng.integers(0, int(room * self.sample_rate) + 1)) / self.sample_rate

    def _load(self, paths: list[Path], start_s: float) -> torch.Tensor:
        from musigen.audio import load_audio_segment

        total = None
        for p in paths:
            wav, _ = load_audio_segment(p, start_s, self.segment_s, self.sample_rate,
                                        self.channels)
            total = wav if total is None else total + wav
        assert total is not None
        return torch.from_numpy(np.ascontiguousarray(total, dtype=np.float32))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index = index % len(self)
        rec = self.records[index]
        start = self.crop_start(index)
        end = start + self.segment_s
        item: dict[str, Any] = {
            "wav": self._load([self.root / rec["path"]], start),
            "caption": rec["caption"],
            "genre": rec.get("genre"),
            "key": rec.get("key"),
            "tempo": rec.get("tempo"),
            "start_s": start,
            "index": index,
            "chords": crop_intervals(rec.get("chords", []), start, end),
            "sections": crop_intervals(rec.get("sections", []), start, end),
        }
        active = torch.zeros(len(INSTRUMENTS), dtype=torch.float32)
        for name in active_instruments(rec, start, end):
            active[_INSTRUMENT_INDEX[name]] = 1.0
        item["instruments_active"] = active
        if self.with_stems:
            for key in ("stems", "extra_stems"):
                item[key] = {name: self._load(resolve_paths(self.root, value), start)
                             for name, value in rec.get(key, {}).items()}
        return item


def collate_crops(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader collate: stacks ``wav`` and ``instruments_active``, keeps the rest as lists.

    Stems differ per piece, so ``stems``/``extra_stems`` stay a list of dicts.
    """
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        out[key] = torch.stack(values) if key in ("wav", "instruments_active") else values
    return out
