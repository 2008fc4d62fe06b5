"""Per-instrument presence margins of the per-instruction accuracy: the fit and the shipped values.

Why: :mod:`musigen.eval.metrics.per_instruction` counts an instrument as moved when its clip
presence changes by at least a margin.  The margin is the judge's own noise: how far its
presence moves on instruments an edit leaves alone (the exact target against its source,
clean and through the codec, and the source through the codec).  A movement inside that band
is not evidence of an edit; one beyond it is.  The fit reads a **dev** split only
(`musigen eval fit-margins`, :mod:`musigen.eval.studies.per_instruction_margins`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from musigen.errors import MusigenError
from musigen.eval.metrics.per_instruction import DEFAULT_MARGIN

#: The share of unchanged-instrument movements a margin must exceed.
QUANTILE = 0.8
#: No margin below this (a very steady instrument still needs a real movement).
FLOOR = 0.05
#: Fewer movements than this for an instrument: keep DEFAULT_MARGIN.
MIN_MOVEMENTS = 10

#: Margins fitted on the dev split for the shipped judges (judge name -> instrument -> margin):
#: `musigen eval make-sets --out DEV --n-gen 1 --n-edit 10 --split dev --fluidsynth no` then
#: `musigen eval fit-margins --set DEV/edit --codec checkpoints/codec_demo` (quantile 0.8;
#: 84-111 movements per instrument; see docs/evaluation.md).
SHIPPED: dict[str, dict[str, float]] = {
    "musigen-judge:judge_codec": {"bass": 0.05, "brass": 0.175, "drums": 0.05, "guitar": 0.231,
                                  "lead": 0.172, "organ": 0.156, "pad": 0.113, "piano": 0.266,
                                  "strings": 0.114},
}


def fit_margins(movements: Mapping[str, Sequence[float]], quantile: float = QUANTILE,
                floor: float = FLOOR, min_movements: int = MIN_MOVEMENTS) -> dict[str, float]:
    """Instrument -> the `quantile` of its absolute presence movements (at least `floor`).

    `movements`: per instrument, presence changes on clips where it should not have changed.
    Instruments with fewer than `min_movements` are left out (they get the default margin).
    """
    if not 0.0 < quantile < 1.0:
        raise MusigenError(f"quantile must be in (0, 1), got {quantile}")
    out: dict[str, float] = {}
    for name, values in movements.items():
        v = np.abs(np.asarray(values, dtype=np.float64))
        if v.size >= min_movements:
            out[name] = round(max(float(np.quantile(v, quantile)), floor), 3)
    return out


def margins_for(judge_name: str) -> dict[str, float]:
    """The shipped margins of a judge; empty (every instrument at DEFAULT_MARGIN) for others."""
    return dict(SHIPPED.get(judge_name, {}))


__all__ = ["DEFAULT_MARGIN", "FLOOR", "QUANTILE", "SHIPPED", "fit_margins", "margins_for"]
