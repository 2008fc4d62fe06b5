"""Per-instruction accuracy of edits: did the output do what *this* instruction asked?

Why: the all-instruments accuracy (:mod:`musigen.eval.metrics.instruction_accuracy`) needs
every one of the nine instruments judged right, so one judge slip on an instrument the edit
never touched fails the item; through the demo codec even the exact targets score 0.32.
That measures the judge and the codec as much as the edit.  Here each instruction is scored
on what it names, with room for one slip elsewhere:

- **named**: the instrument the instruction names is judged as asked: gone after
  `remove X`; present after `add X`; present after `extract X`; after `replace A with B`,
  A gone and B present; after a palette remix, its instruments present.  After a genre remix
  the judged genre is the target genre.
- **others**: every instrument the instructions do not name keeps its expected state, with
  at most `max_flips` (default one) judged otherwise.  The expected state is the source's,
  except where the instruction rewrites it: after `extract X` (or a palette remix) the
  others are expected absent, so "the only one" allows one stray instrument; after a genre
  remix the palette is the genre's choice and the others are not scored.  Instruments whose
  expected state is unknown (ambiguous in the source) are not scored.

Multi-round items apply the rules to the final output with the state every instruction
leaves (:func:`expected_state`).  The inputs are the output's judge verdicts, so this is
pure: the harness calls the judge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from musigen.errors import MusigenError
from musigen.eval.metrics.instruction_accuracy import Op, Truth, expected_state

#: At most this many instruments the instructions do not name may be judged otherwise.
MAX_FLIPS = 1


@dataclass(frozen=True)
class PerInstructionCheck:
    """The per-instruction verdict on one edit output."""

    named_ok: bool
    genre_ok: bool | None
    other_flips: int
    success: bool
    wrong_named: list[str] = field(default_factory=list)
    flipped: list[str] = field(default_factory=list)


def check_per_instruction(
    source_state: Truth,
    judged: Mapping[str, bool],
    ops: Sequence[Op],
    judged_genre: str | None = None,
    max_flips: int = MAX_FLIPS,
) -> PerInstructionCheck:
    """Score one output against its instructions (see the module docstring for the rules).

    `source_state`: each instrument's state in the source (None = unknown, not scored);
    `judged`: the judge's present/absent verdict per instrument on the output.
    """
    if not ops:
        raise MusigenError("a per-instruction check needs at least one instruction")
    if max_flips < 0:
        raise MusigenError(f"max_flips must be >= 0, got {max_flips}")
    instruments = list(judged)
    unknown = sorted(n for op in ops for n in op.named if n not in judged)
    if unknown:
        raise MusigenError(f"the judge gave no verdict on {', '.join(unknown)}")
    want = expected_state(source_state, ops, instruments)
    named = set().union(*(op.named for op in ops))
    wrong_named = sorted(k for k in named if want.get(k) is not None and judged[k] != want[k])
    flipped = sorted(k for k in instruments
                     if k not in named and want.get(k) is not None and judged[k] != want[k])
    genres = [op.genre for op in ops if op.task == "remix_genre"]
    genre_ok: bool | None = None
    if genres:
        if judged_genre is None:
            raise MusigenError("a genre remix needs the judged genre of the output")
        genre_ok = judged_genre == genres[-1]
    named_ok = not wrong_named
    success = named_ok and genre_ok is not False and len(flipped) <= max_flips
    return PerInstructionCheck(named_ok, genre_ok, len(flipped), success, wrong_named, flipped)


def summarise_per_instruction(checks: Sequence[PerInstructionCheck]) -> dict[str, float | None]:
    """Rates over a set of checks: the accuracy, its named part and the mean number of flips."""
    if not checks:
        return {"instruction_accuracy_per_instruction": None, "named_ok": None, "other_flips": None}
    return {
        "instruction_accuracy_per_instruction": float(np.mean([c.success for c in checks])),
        "named_ok": float(np.mean([c.named_ok for c in checks])),
        "other_flips": float(np.mean([c.other_flips for c in checks])),
    }
