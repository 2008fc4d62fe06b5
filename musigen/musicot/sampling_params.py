"""Sampling settings of MusiCoT, in one validated dataclass (the CLI, Python and the demo app
share it, and a pipeline saves its defaults as one).

Every number is checked when the object is made: NaN, infinity, wrong types and absurd values
are one-line ConfigErrors, so a bad setting never reaches the decode loop.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from musigen.errors import ConfigError, shorten


@dataclass
class SamplingParams:
    """Dual sampling settings; temperature 0 means greedy, top_k 0 / top_p 0 mean off."""

    thought_temperature: float = 1.0
    audio_temperature: float = 1.0
    thought_cfg: float = 3.0
    audio_cfg: float = 3.0
    thought_top_k: int = 0
    thought_top_p: float = 0.0
    top_k: int = 250
    top_p: float = 0.0
    ref_cfg: float = 0.0  # plan guidance toward the reference alone (0 = off)
    plan_cfg: float = 0.0  # audio guidance toward the plan (0 = off; needs plan dropout)
    ref_audio_cfg: float = 0.0  # audio guidance toward the reference (0 = off)

    #: fields the shipped demo pipeline.json predates (they take their default)
    OPTIONAL_KEYS = frozenset({"plan_cfg", "ref_audio_cfg"})

    def __post_init__(self) -> None:
        for name in ("thought_temperature", "audio_temperature"):
            _check_number(self, name, 0.0, MAX_TEMPERATURE, "(0 = greedy)")
        for name in ("thought_cfg", "audio_cfg"):
            _check_number(self, name, 0.0, MAX_CFG, "(1 = no guidance)")
        for name in ("ref_cfg", "plan_cfg", "ref_audio_cfg"):
            _check_number(self, name, 0.0, MAX_CFG, "(0 = off)", high_open=True)
        for name in ("thought_top_p", "top_p"):
            _check_number(self, name, 0.0, 1.0, "(0 = off)")
        for name in ("thought_top_k", "top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0 (0 = off), got "
                                  f"{shorten(value, 40)}")
            setattr(self, name, int(value))


#: Largest sampling temperature and guidance scale accepted (larger ones are typos: the
#: distribution is uniform, or the guided logits overflow, long before).
MAX_TEMPERATURE: float = 100.0
MAX_CFG: float = 100.0


def _check_number(params: SamplingParams, name: str, low: float, high: float, note: str,
                  high_open: bool = False) -> None:
    """A finite real in [low, high] (or [low, high) with `high_open`); NaN, inf, strings and
    bools are one-line errors."""
    value = getattr(params, name)
    below = (lambda v: v < high) if high_open else (lambda v: v <= high)
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not (math.isfinite(value) and low <= value and below(value))):
        raise ConfigError(f"{name} must be a number in [{low:g}, {high:g}{')' if high_open else ']'} "
                          f"{note}, got {shorten(value, 40)}")
    setattr(params, name, float(value))
