"""Per-instrument decision thresholds for the instrument judge: the fit itself.

Why: instruction accuracy asks the judge a yes/no question per instrument on a whole clip,
and the clip presence is the *max* of the window probabilities, which runs above a single
window's calibrated probability (most for rare, soft instruments such as organ or pad).  A
fixed 0.5 then makes the judge fail exact targets.  Each instrument gets the threshold that
maximises its clip-level accuracy on clips with exact truth; which clips (a dev split of the
evaluation sets) is the caller's business: `musigen eval calibrate-judge` gathers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Fewer clips than this on either side (present / absent) of an instrument: keep 0.5.
MIN_PER_SIDE = 5
#: Thresholds are kept inside this range, so one odd clip cannot push a class to always-on.
LOW, HIGH = 0.05, 0.95


def judged_state(presence: Mapping[str, float], threshold: float | Mapping[str, float] = 0.5) -> dict[str, bool]:
    """Judge probabilities -> present / absent, with one threshold or one per instrument (missing: 0.5)."""
    if isinstance(threshold, Mapping):
        return {k: bool(v >= threshold.get(k, 0.5)) for k, v in presence.items()}
    return {k: bool(v >= threshold) for k, v in presence.items()}


@dataclass
class Observations:
    """Clip presence [N, I] and exact truth [N, I] (1 present, 0 absent, NaN ambiguous); numpy arrays."""

    presence: np.ndarray
    truth: np.ndarray
    instruments: list[str]


def best_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The threshold in [LOW, HIGH] with the best accuracy of `p >= t` against `y`; ties go to 0.5's side."""
    grid = np.sort(p)
    cands = np.unique(np.clip(np.concatenate([[0.5], (grid[1:] + grid[:-1]) / 2]), LOW, HIGH))
    acc = np.array([np.mean((p >= t) == y) for t in cands])
    best = cands[acc >= acc.max() - 1e-12]
    return float(best[np.argmin(np.abs(best - 0.5))])


def fit_thresholds(obs: Observations, min_per_side: int = MIN_PER_SIDE) -> dict[str, float]:
    """One threshold per instrument with enough clips on both sides; the rest stay at 0.5 (omitted)."""
    out: dict[str, float] = {}
    for c, name in enumerate(obs.instruments):
        known = ~np.isnan(obs.truth[:, c])
        p, y = obs.presence[known, c], obs.truth[known, c].astype(bool)
        if y.sum() < min_per_side or (~y).sum() < min_per_side:
            continue
        out[name] = round(best_threshold(p, y), 4)
    return out


def accuracy_table(obs: Observations, thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """Per instrument: clips, share present, accuracy at 0.5 and at the fitted threshold."""
    rows = []
    for c, name in enumerate(obs.instruments):
        known = ~np.isnan(obs.truth[:, c])
        p, y = obs.presence[known, c], obs.truth[known, c].astype(bool)
        t = thresholds.get(name, 0.5)
        rows.append({"instrument": name, "clips": int(known.sum()), "present": float(y.mean()) if len(y) else None,
                     "threshold": t, "acc_at_0.5": float(np.mean((p >= 0.5) == y)) if len(y) else None,
                     "acc_at_threshold": float(np.mean((p >= t) == y)) if len(y) else None})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The per-instrument rows as a Markdown table (what the command prints)."""

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["| instrument | clips | present | threshold | accuracy at 0.5 | accuracy at threshold |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['instrument']} | {r['clips']} | {f(r['present'])} | {r['threshold']:.3f} | "
              f"{f(r['acc_at_0.5'])} | {f(r['acc_at_threshold'])} |" for r in rows]
    return "\n".join(lines)
