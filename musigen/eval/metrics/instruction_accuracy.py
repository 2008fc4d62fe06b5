"""Instruction accuracy of edits, judged by the instrument judge.

An edit follows its instruction when the instruments it names reach their target state
(after "remove X" X is absent; after "add X" / "extract X" X is present; after "replace A
with B" A is gone and B is there; after "remix to G" the judge hears genre G) and every
other instrument keeps its state.  States come from the exact stem activity of the set's
source and target; instruments that sound only briefly in a clip are ambiguous (None) and
are not scored, so judge errors on a few notes do not count against a system.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from musigen.errors import MusigenError
from musigen.judge.calibration import judged_state

Truth = Mapping[str, bool | None]

#: Edit tasks the checker understands (InstructME's tasks; two-round items chain them).
TASKS: tuple[str, ...] = ("add", "remove", "extract", "replace", "remix_genre", "remix_instruments")


@dataclass(frozen=True)
class Op:
    """One instruction in structured form (what the set builder writes beside the text)."""

    task: str
    instrument: str | None = None
    new_instrument: str | None = None
    genre: str | None = None
    instruments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise MusigenError(f"unknown edit task {self.task!r}; known: {', '.join(TASKS)}")

    @property
    def named(self) -> set[str]:
        """Instruments whose state the instruction speaks about."""
        return {n for n in (self.instrument, self.new_instrument, *self.instruments) if n}

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"task": self.task}
        for key in ("instrument", "new_instrument", "genre"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.instruments:
            d["instruments"] = list(self.instruments)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Op:
        return cls(task=str(d["task"]), instrument=d.get("instrument"),  # type: ignore[arg-type]
                   new_instrument=d.get("new_instrument"), genre=d.get("genre"),  # type: ignore[arg-type]
                   instruments=tuple(d.get("instruments", ())))  # type: ignore[arg-type]


@dataclass(frozen=True)
class InstructionCheck:
    """The verdict on one edit output."""

    target_ok: bool
    others_ok: bool
    genre_ok: bool | None
    success: bool
    wrong: list[str] = field(default_factory=list)


def expected_state(source: Truth, ops: Sequence[Op], instruments: Iterable[str]) -> dict[str, bool | None]:
    """Apply instructions to a source state: what the target should hold (None = unknown)."""
    state: dict[str, bool | None] = {k: source.get(k) for k in instruments}
    for op in ops:
        if op.task == "add":
            state[op.instrument] = True  # type: ignore[index]
        elif op.task == "remove":
            state[op.instrument] = False  # type: ignore[index]
        elif op.task == "extract":
            state = {k: (k == op.instrument) for k in state}
        elif op.task == "replace":
            state[op.instrument] = False  # type: ignore[index]
            state[op.new_instrument] = True  # type: ignore[index]
        elif op.task == "remix_instruments":
            state = {k: (k in op.instruments) for k in state}
        elif op.task == "remix_genre":
            state = {k: None for k in state}  # the new palette is the genre's choice
    return state


def check_instruction(
    source_truth: Truth,
    target_truth: Truth,
    presence: Mapping[str, float],
    ops: Sequence[Op],
    judged_genre: str | None = None,
    threshold: float | Mapping[str, float] = 0.5,
) -> InstructionCheck:
    """Score one output: the instruments the edit changes vs every other instrument.

    `changed` = instruments the instructions name plus those whose true state differs
    between source and target; they must reach the target state (`target_ok`).  The rest
    must match it too (`others_ok`).  For a genre remix the judged genre must be the target.
    """
    judged = judged_state(presence, threshold)
    changed = set().union(*(op.named for op in ops)) if ops else set()
    changed |= {k for k in target_truth if source_truth.get(k) is not None and target_truth[k] is not None
                and source_truth.get(k) != target_truth[k]}
    wrong_target, wrong_other = [], []
    for k, want in target_truth.items():
        if want is None or k not in judged:
            continue
        if judged[k] != want:
            (wrong_target if k in changed else wrong_other).append(k)
    target_genres = [op.genre for op in ops if op.task == "remix_genre"]
    genre_ok: bool | None = None
    if target_genres:
        if judged_genre is None:
            raise MusigenError("a genre remix needs the judged genre of the output")
        genre_ok = judged_genre == target_genres[-1]
    target_ok, others_ok = not wrong_target, not wrong_other
    success = target_ok and others_ok and genre_ok is not False
    return InstructionCheck(target_ok, others_ok, genre_ok, success, sorted(wrong_target + wrong_other))


def summarise_checks(checks: Sequence[InstructionCheck]) -> dict[str, float | None]:
    """Rates over a set of checks: overall success, target part, others part, genre part."""
    if not checks:
        return {"instruction_accuracy": None, "target_ok": None, "others_ok": None, "genre_ok": None}
    genre = [c.genre_ok for c in checks if c.genre_ok is not None]
    return {
        "instruction_accuracy": float(np.mean([c.success for c in checks])),
        "target_ok": float(np.mean([c.target_ok for c in checks])),
        "others_ok": float(np.mean([c.others_ok for c in checks])),
        "genre_ok": float(np.mean(genre)) if genre else None,
    }
