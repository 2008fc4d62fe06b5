"""The on-disk schema of held-out evaluation sets and its loader.

A set is a folder with `items.jsonl` (one JSON object per item, audio paths relative to
the folder) and `set.json` (what it is and how it was built).  Items are plain dataclasses
so a researcher can also build a set by hand, e.g. from Slakh stems.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from musigen.errors import DataError

ITEMS_NAME = "items.jsonl"
SET_NAME = "set.json"
Chords = list[tuple[float, float, str]]


@dataclass
class GenItem:
    """A prompt with the held-out audio it describes and a style reference of the same genre."""

    id: str
    prompt: str
    target: str  # held-out audio for the prompt (relative path)
    ref: str | None  # another piece of the same genre (relative path)
    genre: str
    instruments: list[str]
    tempo: float
    key: str
    mood: str
    chords: Chords
    duration: float
    seed: int
    ref_seed: int | None = None


@dataclass
class EditItem:
    """A (source, instructions, target) triplet with the truth needed to judge an edit.

    `source_truth` / `target_truth` map every instrument class to True (sounds for at least
    a second), False (silent) or None (only briefly: not scored).
    """

    id: str
    task: str  # add | remove | extract | replace | remix | two_round
    instructions: list[str]
    ops: list[dict[str, Any]]
    source: str
    target: str
    stems: dict[str, str]  # source stems, summing to the source
    source_truth: dict[str, bool | None]
    target_truth: dict[str, bool | None]
    genre: str
    target_genre: str
    target_caption: str
    chords: Chords
    duration: float
    seed: int
    intermediate: list[str] = field(default_factory=list)  # outputs of earlier rounds


@dataclass
class EvalSet:
    """A loaded set: its folder, its description and its items."""

    root: Path
    info: dict[str, Any]
    items: list[Any]

    @property
    def kind(self) -> str:
        return str(self.info["kind"])

    @property
    def sample_rate(self) -> int:
        return int(self.info["sample_rate"])

    def path(self, rel: str) -> Path:
        return self.root / rel

    def audio(self, rel: str) -> np.ndarray:
        """Mono float32 audio of an item file at the set's rate."""
        from musigen.audio import load_audio

        wav, _ = load_audio(self.path(rel), sample_rate=self.sample_rate, channels=1)
        return wav[0]


def item_to_json(item: GenItem | EditItem) -> dict[str, Any]:
    return asdict(item)


def _from_json(cls: type, row: dict[str, Any], where: str) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(row) - names)
    if unknown:
        raise DataError(f"{where}: unknown keys {unknown} for a {cls.__name__}")
    try:
        item = cls(**row)
    except TypeError as exc:
        raise DataError(f"{where}: not a valid {cls.__name__}: {exc}") from None
    item.chords = [(float(s), float(e), str(lab)) for s, e, lab in item.chords]
    return item


def load_set(directory: str | os.PathLike[str]) -> EvalSet:
    """Load a set folder written by :func:`musigen.eval.harness.sets.make_sets` (or by hand)."""
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"evaluation set folder not found: {root}")
    info_path, items_path = root / SET_NAME, root / ITEMS_NAME
    if not info_path.is_file() or not items_path.is_file():
        raise DataError(f"{root} is not an evaluation set: it needs {SET_NAME} and {ITEMS_NAME} "
                        "(build one with `musigen eval make-sets --out DIR`)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"corrupt {info_path}: {exc.msg}") from None
    kind = info.get("kind") if isinstance(info, dict) else None
    if kind not in ("gen", "edit"):
        raise DataError(f"{info_path}: 'kind' must be 'gen' or 'edit', got {kind!r}")
    cls = GenItem if kind == "gen" else EditItem
    items = []
    for n, line in enumerate(items_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{items_path}:{n}: bad JSON ({exc.msg})") from None
        items.append(_from_json(cls, row, f"{items_path}:{n}"))
    if not items:
        raise DataError(f"{items_path} holds no items")
    for it in items:
        for rel in ([it.target] + ([it.ref] if kind == "gen" and it.ref else [])
                    + ([it.source, *it.stems.values(), *it.intermediate] if kind == "edit" else [])):
            if not (root / rel).is_file():
                raise DataError(f"{root}: item {it.id} points to a missing file {rel}")
    return EvalSet(root, info, items)


def resolve_set(directory: str | os.PathLike[str], kind: str, variant: str = "builtin") -> Path:
    """Accept a set folder itself or the root written by make-sets (then pick kind + variant)."""
    root = Path(directory)
    if (root / SET_NAME).is_file():
        return root
    name = kind if variant == "builtin" else f"{kind}-{variant}"
    if (root / name / SET_NAME).is_file():
        return root / name
    raise DataError(f"no {kind!r} evaluation set ({variant}) in {root}; build one with "
                    "`musigen eval make-sets --out DIR`")
