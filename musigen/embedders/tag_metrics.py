"""Ranking quality of tag scores: average precision per class.

Why here: a contrastive embedder is validated by how well its audio-text similarities rank
the windows that hold an instrument, both while it trains (`training/clap_module`) and in
the held-out studies (`eval`); the two must not import each other, so the math sits with
the embedders they score.
"""

from __future__ import annotations

import math

import torch

from musigen.errors import DataError
from musigen.vocab import INSTRUMENTS


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """AP of one class: the mean precision at the rank of each positive (NaN without one)."""
    order = torch.argsort(scores, descending=True, stable=True)
    hits = labels[order] > 0
    if not hits.any():
        return math.nan
    precision = hits.cumsum(0).float() / torch.arange(1, len(hits) + 1, device=hits.device)
    return float(precision[hits].mean())


def instrument_aps(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """AP per instrument class for scores and multi-hot labels [N, I], over the classes that
    are both present and absent somewhere (AP is undefined otherwise)."""
    aps = {
        name: average_precision(scores[:, k], labels[:, k])
        for k, name in enumerate(INSTRUMENTS)
        if 0 < labels[:, k].sum() < len(labels)
    }
    if not aps:
        raise DataError("no instrument is both present and absent in the evaluated windows")
    return aps
