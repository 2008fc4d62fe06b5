"""The two plug-in points of the evaluation harness.

Anything that implements one of these protocols can be evaluated and compared with the
trivial baselines: the MusiCoT and InstructME pipelines, the baselines themselves, or a
researcher's own system wrapped in a few lines.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class GenerationSystem(Protocol):
    """Text (plus an optional style reference) to music.

    `refs[i]` is mono float32 audio at `sample_rate` or None; the result is one clip per
    prompt at `sample_rate`, mono `[samples]` or `[channels, samples]`.  A system may also
    set `last_thoughts`: per prompt, a list of `(start_s, end_s, label)` plan segments, which
    the report draws as a thought timeline (MusiCoT).
    """

    sample_rate: int

    def generate(self, prompts: list[str], refs: list[np.ndarray | None], duration: float,
                 seed: int) -> list[np.ndarray]: ...


@runtime_checkable
class EditSystem(Protocol):
    """Audio + instructions (applied in order, one round each) to edited audio.

    The output is at the system's `sample_rate` attribute if it declares one, else at the
    input's rate.
    """

    def edit(self, wav: np.ndarray, sample_rate: int, instructions: list[str], seed: int) -> np.ndarray: ...


def output_rate(system: object, input_rate: int) -> int:
    """The rate an edit system's output is at (see :class:`EditSystem`)."""
    rate = getattr(system, "sample_rate", None)
    return int(rate) if rate else int(input_rate)
