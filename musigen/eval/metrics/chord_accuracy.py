"""Chord agreement between two label sequences, scored by mir_eval.

Used two ways: an estimate against ground truth (the corpus labels are exact), and an edit
output's recognised chords against the source's (does the edit keep the harmony?).
Scores are duration-weighted, as in MIREX.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musigen.errors import MusigenError

ChordSegments = Sequence[tuple[float, float, str]] | Sequence[Sequence[object]]

#: mir_eval comparisons we report by default (root and major/minor, as the issue asks).
DEFAULT_METRICS: tuple[str, ...] = ("root", "majmin")


def _to_arrays(segments: ChordSegments, what: str) -> tuple[np.ndarray, list[str]]:
    rows = [(float(s), float(e), str(lab)) for s, e, lab in segments]  # type: ignore[misc]
    rows = [r for r in rows if r[1] > r[0]]
    if not rows:
        raise MusigenError(f"{what} chord sequence is empty")
    return np.array([[s, e] for s, e, _ in rows]), [lab for _, _, lab in rows]


def chord_scores(reference: ChordSegments, estimate: ChordSegments,
                 metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, float]:
    """Duration-weighted mir_eval scores of `estimate` against `reference` ([start, end, harte]).

    The estimate is clipped/padded with N to the reference's span, as mir_eval expects.
    """
    import mir_eval

    ref_int, ref_lab = _to_arrays(reference, "reference")
    est_int, est_lab = _to_arrays(estimate, "estimate")
    est_int, est_lab = mir_eval.util.adjust_intervals(
        est_int, est_lab, ref_int.min(), ref_int.max(), mir_eval.chord.NO_CHORD, mir_eval.chord.NO_CHORD
    )
    intervals, ref_m, est_m = mir_eval.util.merge_labeled_intervals(ref_int, ref_lab, est_int, est_lab)
    durations = mir_eval.util.intervals_to_durations(intervals)
    out: dict[str, float] = {}
    for name in metrics:
        compare = getattr(mir_eval.chord, name, None)
        if compare is None or not callable(compare):
            raise MusigenError(f"unknown mir_eval chord metric {name!r}")
        out[name] = float(mir_eval.chord.weighted_accuracy(compare(ref_m, est_m), durations))
    return out
