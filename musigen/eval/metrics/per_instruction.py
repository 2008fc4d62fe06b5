"""Per-instruction accuracy of edits: did the output do what *this* instruction asked?

Why: the all-instruments accuracy (:mod:`musigen.eval.metrics.instruction_accuracy`) asks an
absolute yes/no of the judge for every instrument, so one slip on an instrument the edit never
touched, or a timbre the judge always mishears, fails the item even for the exact target.
Here each output is judged **against the judge's view of its own source**, instrument by
instrument, with `p` the clip presence (max over windows) and `t` the judge's calibrated
per-instrument threshold:

- **moved**: an instrument counts as moved down / up when its presence changed by at least
  its margin `m` (per instrument, fitted on a dev split as the noise of the judge's presence
  on instruments an edit leaves alone, clean and through the codec:
  :mod:`musigen.eval.metrics.per_instruction_margins`).
- **named**: each instrument the instructions ask to change (in the source's exact truth)
  must move the asked way: after `remove X`, X gone, i.e. judged present in the source and
  absent now, or down by `m`; after `add X`, X judged absent before and present now, or up by
  `m`; after `replace A with B`, both.  A named instrument the instructions keep (`extract X`)
  must stay: judged present now, or down by less than `m`.  After a genre remix the judged
  genre is the target genre.
- **others**: every other instrument keeps the state the instructions leave on the source's
  *judged* state (not its truth, so a judge that always mishears one instrument in a piece
  does not fail the item): kept instruments count as flipped when they are judged otherwise
  than in the source *and* moved by at least `m`; instruments expected to go (the rest after
  `extract X` or a palette remix) count as flipped unless judged absent or down by `m`.  At
  most `max_flips` (default one) may flip.  After a genre remix the palette is free.

The do-nothing edit fails every named change (it moves nothing and crosses no threshold), and
fails `extract` when more than one other instrument is heard in the source.  Multi-round items
apply the rules to the final output with the state every instruction leaves.  Pure: the
harness calls the judge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from musigen.errors import MusigenError
from musigen.eval.metrics.instruction_accuracy import Op, Truth, expected_state
from musigen.judge.calibration import judged_state

#: At most this many instruments the instructions do not name may be judged otherwise.
MAX_FLIPS = 1
#: Margin on clip presence for instruments without a fitted one (and for judges without fits).
DEFAULT_MARGIN = 0.3


@dataclass(frozen=True)
class PerInstructionCheck:
    """The per-instruction verdict on one edit output."""

    named_ok: bool
    genre_ok: bool | None
    other_flips: int
    success: bool
    wrong_named: list[str] = field(default_factory=list)
    flipped: list[str] = field(default_factory=list)


def _moved(delta: float, margin: float, up: bool) -> bool:
    return delta >= margin if up else delta <= -margin


def check_per_instruction(
    source_truth: Truth,
    source_presence: Mapping[str, float],
    presence: Mapping[str, float],
    ops: Sequence[Op],
    thresholds: float | Mapping[str, float] = 0.5,
    judged_genre: str | None = None,
    margins: Mapping[str, float] | None = None,
    max_flips: int = MAX_FLIPS,
) -> PerInstructionCheck:
    """Score one output against its instructions and its source (rules: the module docstring).

    `source_truth`: each instrument's exact state in the source (None = unknown: a named
    instrument with an unknown state is not scored); `source_presence` / `presence`: the
    judge's clip presence on the source and on the output; `thresholds`: the judge's decision
    threshold(s); `margins`: per-instrument presence margins (missing: :data:`DEFAULT_MARGIN`).
    """
    if not ops:
        raise MusigenError("a per-instruction check needs at least one instruction")
    if max_flips < 0:
        raise MusigenError(f"max_flips must be >= 0, got {max_flips}")
    instruments = list(presence)
    unknown = sorted({n for op in ops for n in op.named if n not in presence}
                     | {k for k in instruments if k not in source_presence})
    if unknown:
        raise MusigenError(f"the judge gave no presence for {', '.join(unknown)}")
    margins = margins or {}
    was = judged_state({k: source_presence[k] for k in instruments}, thresholds)
    now = judged_state(presence, thresholds)
    asked = expected_state(source_truth, ops, instruments)  # what the truth says must change
    keep = expected_state(was, ops, instruments)  # what the judged source should become
    named = set().union(*(op.named for op in ops))
    wrong_named, flipped = [], []
    for k in instruments:
        delta, m = presence[k] - source_presence[k], float(margins.get(k, DEFAULT_MARGIN))
        if k in named:
            want, before = asked.get(k), source_truth.get(k)
            if want is None or before is None:
                continue
            if want != before:  # a change: cross the threshold the asked way, or move by m
                ok = (now[k] == want and was[k] != want) or _moved(delta, m, up=want)
            else:  # kept (extract X): still heard, or not moved away by m
                ok = now[k] == want or not _moved(delta, m, up=not want)
            if not ok:
                wrong_named.append(k)
            continue
        want = keep.get(k)
        if want is None:
            continue
        if want != was[k]:  # expected to go (the rest after extract): judged gone, or down by m
            ok = now[k] == want or _moved(delta, m, up=want)
        else:  # kept: a flip is a change of judged state that also moved by m
            ok = now[k] == want or abs(delta) < m
        if not ok:
            flipped.append(k)
    genres = [op.genre for op in ops if op.task == "remix_genre"]
    genre_ok: bool | None = None
    if genres:
        if judged_genre is None:
            raise MusigenError("a genre remix needs the judged genre of the output")
        genre_ok = judged_genre == genres[-1]
    named_ok = not wrong_named
    success = named_ok and genre_ok is not False and len(flipped) <= max_flips
    return PerInstructionCheck(named_ok, genre_ok, len(flipped), success, sorted(wrong_named),
                               sorted(flipped))


def summarise_per_instruction(checks: Sequence[PerInstructionCheck]) -> dict[str, float | None]:
    """Rates over a set of checks: the accuracy, its named part and the mean number of flips."""
    if not checks:
        return {"instruction_accuracy_per_instruction": None, "named_ok": None, "other_flips": None}
    return {
        "instruction_accuracy_per_instruction": float(np.mean([c.success for c in checks])),
        "named_ok": float(np.mean([c.named_ok for c in checks])),
        "other_flips": float(np.mean([c.other_flips for c in checks])),
    }
