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
from musigen.eval.harness.set_items import Chords
from musigen.judge.model import InstrumentJudge, JudgeAnalysis, load_judge

log = logging.getLogger(__name__)

ChordRecognizer = Callable[[np.ndarray, int], Chords]


def _content_key(wav: np.ndarray, sample_rate: int) -> str:
    """A cache key for audio by content: equal samples at an equal rate, equal key."""
    from musigen.eval.harness.baselines import fingerprint

    return f"content:{sample_rate}:{fingerprint(wav)}"


@dataclass
class EvalContext:
    judge: InstrumentJudge
    clap: Any | None = None
    clap_note: str = "CLAP not requested"
    chords: ChordRecognizer | None = None
    chords_note: str = "chord recogniser not requested"
    _analyses: dict[str, JudgeAnalysis] = field(default_factory=dict)
    _chords: dict[str, Chords] = field(default_factory=dict)

    @property
    def judge_name(self) -> str:
        return self.judge.name

    @property
    def clap_name(self) -> str | None:
        return self.clap_note if self.clap is not None else None

    def analyze(self, wav: np.ndarray, sample_rate: int, key: str | None = None) -> JudgeAnalysis:
        """The judge's view of a clip, cached under `key` or, without one, under its content.

        Content keys let a baseline that returns a set's own audio (identity, target) reuse
        the analysis of that audio instead of running the judge again.
        """
        key = key or _content_key(wav, sample_rate)
        if key not in self._analyses:
            self._analyses[key] = self.judge.analyze(wav, sample_rate)
        return self._analyses[key]

    def recognise(self, wav: np.ndarray, sample_rate: int, key: str | None = None) -> Chords | None:
        """Recognised chords of a clip, cached like :meth:`analyze` (the identity edit reuses the source's)."""
        if self.chords is None:
            return None
        key = key or _content_key(wav, sample_rate)
        if key not in self._chords:
            self._chords[key] = [(float(s), float(e), str(lab)) for s, e, lab in self.chords(wav, sample_rate)]
        return self._chords[key]


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
            from musigen.chords import default_checkpoint, recognize_chords

            ctx.chords = recognize_chords
            ckpt = default_checkpoint()
            ctx.chords_note = ("musigen.chords.recognize_chords: " + (f"learned model {ckpt}"
                               if (ckpt / "model.safetensors").is_file() else "templates (no learned model shipped)"))
        except ImportError as exc:
            ctx.chords_note = f"chord recogniser unavailable ({exc})"
    return ctx
