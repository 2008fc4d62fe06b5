"""How well `find_sections` hits reference sections: mir_eval's boundary detection.

Why: the section heuristic is untrained, so its figures on pieces with exact sections (the
procedural corpus) are what tells a user how far to trust "in the chorus".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musigen.errors import ConfigError
from musigen.structure.sections import find_sections, section_intervals


@dataclass(frozen=True)
class SectionScores:
    """Means over the pieces: boundary precision/recall/F at `window` seconds, and the
    fraction of time whose found label equals the reference label."""

    pieces: int
    window: float
    precision: float
    recall: float
    f_measure: float
    label_accuracy: float

    def line(self) -> str:
        return (f"{self.pieces} pieces, boundaries within {self.window:g} s: "
                f"P {self.precision:.2f} R {self.recall:.2f} F {self.f_measure:.2f}; "
                f"label accuracy (time) {self.label_accuracy:.2f}")


def label_accuracy(ref: list[tuple[float, float, str]], est: list[tuple[float, float, str]],
                   step: float = 0.1) -> float:
    """Fraction of `step`-second frames where the labels agree."""
    end = max(ref[-1][1], est[-1][1])
    t = np.arange(0.0, end, step) + step / 2

    def at(secs: list[tuple[float, float, str]]) -> list[str]:
        return [next((lab for s, e, lab in secs if s <= x < e), "") for x in t]

    return float(np.mean([a == b for a, b in zip(at(ref), at(est))]))


def score_pieces(items: list[tuple[np.ndarray, int, list[tuple[float, float, str]]]],
                 window: float = 3.0) -> SectionScores:
    """Scores over (wav, sample_rate, reference sections) items."""
    import mir_eval

    if not items:
        raise ConfigError("no pieces to score")
    rows = []
    for wav, sr, ref in items:
        est = [s.as_tuple() for s in find_sections(wav, sr)]
        ri, _ = section_intervals(ref)
        ei, _ = section_intervals(est)
        p, r, f = mir_eval.segment.detection(ri, ei, window=window, trim=True)
        rows.append((p, r, f, label_accuracy(ref, est)))
    m = np.mean(np.array(rows, dtype=np.float64), axis=0)
    return SectionScores(len(items), window, *map(float, m))


def score_manifest(manifest: Path, window: float = 3.0) -> SectionScores:
    """Scores over a manifest's items that carry `sections` (paths relative to it)."""
    from musigen.audio import load_audio

    items = []
    for line in Path(manifest).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if not row.get("sections"):
            continue
        wav, sr = load_audio(Path(manifest).parent / row["path"])
        items.append((wav.mean(axis=0), sr, [(float(s), float(e), str(lab))
                                             for s, e, lab in row["sections"]]))
    if not items:
        raise ConfigError(f"{manifest} has no items with sections")
    return score_pieces(items, window)
