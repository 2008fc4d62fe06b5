"""The standard three-column ``.lab`` chord file (start end label), read and written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from musigen.errors import DataError, VocabularyError


def write_lab(path: str | os.PathLike[str], chords: list[tuple[float, float, str]]) -> Path:
    """Write the standard three-column .lab file (start end label), atomically."""
    from musigen.atomic import write_text

    lines = []
    for start, end, label in chords:
        if not (np.isfinite(start) and np.isfinite(end)) or end < start:
            raise ValueError(f"bad chord segment ({start}, {end}, {label!r})")
        if not label or any(ch.isspace() for ch in label):
            raise VocabularyError(f"chord label must be one non-empty word, got {label!r}")
        lines.append(f"{start:.6f}\t{end:.6f}\t{label}\n")
    return write_text(path, "".join(lines))


def read_lab(path: str | os.PathLike[str]) -> list[tuple[float, float, str]]:
    """Read a three-column .lab file (whitespace separated; blank and '#' lines skipped)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"chord .lab file not found: {p}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read chord .lab file {p}: {exc}") from None
    chords: list[tuple[float, float, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise DataError(f"{p}:{lineno}: expected 'start end label', got {line.strip()!r}")
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise DataError(
                f"{p}:{lineno}: start and end must be numbers, got {line.strip()!r}"
            ) from None
        if not (np.isfinite(start) and np.isfinite(end)) or end < start:
            raise DataError(f"{p}:{lineno}: bad interval {start}..{end}")
        chords.append((start, end, parts[2]))
    return chords
