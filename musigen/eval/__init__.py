"""Evaluation: metrics, the harness that runs systems on held-out sets, and studies.

- :mod:`musigen.eval.metrics`: pure functions on arrays or embeddings (FAD, KL, CLAP
  score, SI-SDR, chords, instruction accuracy, copying, plan adherence); every metric is
  also importable from here (`from musigen.eval import fad_from_embeddings`).
- :mod:`musigen.eval.harness`: sets, systems, the runner and its reports.
- :mod:`musigen.eval.studies`: sweeps and one-off analyses behind `musigen eval ...`.

The instrument judge is a model: :mod:`musigen.judge`.  Eval never imports training.
"""

from __future__ import annotations

from typing import Any

from musigen.eval import metrics as _metrics

__all__ = list(_metrics.__all__)


def __getattr__(name: str) -> Any:
    return getattr(_metrics, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_metrics.__all__])
