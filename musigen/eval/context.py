"""What every evaluation run shares: the judge, the optional CLAP and chord recogniser.

Building them once and caching the judge's view of the set's ground-truth audio means the
baselines and the model under test are scored by exactly the same ears, at little cost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from musigen.errors import MusigenError
from musigen.eval.judge import InstrumentJudge, JudgeAnalysis, load_judge
from musigen.eval.set_items import Chords

log = logging.getLogger(__name__)

ChordRecognizer = Callable[[np.ndarray, int], Chords]


@dataclass
class EvalContext:
    judge: InstrumentJudge
    clap: Any | None = None
    clap_note: str = "CLAP not requested"
    chords: ChordRecognizer | None = None
    chords_note: str = "chord recogniser not requested"
    _analyses: dict[str, JudgeAnalysis] = field(default_factory=dict)

    @property
    def judge_name(self) -> str:
        return self.judge.name

    @property
    def clap_name(self) -> str | None:
        return self.clap_note if self.clap is not None else None

    def analyze(self, wav: np.ndarray, sample_rate: int, key: str | None = None) -> JudgeAnalysis:
        """The judge's view of a clip, cached under `key` (for ground-truth audio)."""
        if key is not None and key in self._analyses:
            return self._analyses[key]
        result = self.judge.analyze(wav, sample_rate)
        if key is not None:
            self._analyses[key] = result
        return result

    def recognise(self, wav: np.ndarray, sample_rate: int) -> Chords | None:
        if self.chords is None:
            return None
        return [(float(s), float(e), str(lab)) for s, e, lab in self.chords(wav, sample_rate)]


def build_context(judge_dir: str | os.PathLike[str] | None = None, clap: str | None = "demo",
                  chords: bool = True) -> EvalContext:
    """Load the judge (required) and, where installed, the CLAP embedder and chord recogniser.

    A missing CLAP or recogniser is not an error: the report says which metric is missing
    and why, instead of failing the whole run.
    """
    ctx = EvalContext(judge=load_judge(judge_dir))
    if clap:
        try:
            from musigen.embedders.clap import load_embedder

            ctx.clap = load_embedder(clap)
            ctx.clap.eval()
            ctx.clap_note = getattr(ctx.clap, "name", None) or f"musigen CLAP ({clap})"
        except (ImportError, MusigenError, OSError) as exc:
            ctx.clap_note = f"CLAP unavailable ({exc})"
            log.warning("%s", ctx.clap_note)
    if chords:
        try:
            from musigen.chords import recognize_chords

            ctx.chords = recognize_chords
            ctx.chords_note = "musigen.chords.recognize_chords (auto: learned model if shipped, else templates)"
        except ImportError as exc:
            ctx.chords_note = f"chord recogniser unavailable ({exc})"
    return ctx
