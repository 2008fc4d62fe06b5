"""Plan adherence: does the generated audio sound like the plan it was generated from?

MusiCoT writes a plan (thought codes, one RVQ-quantised CLAP embedding per window) before
the audio. Re-analysing the audio with the same embedder over the same windows gives an
embedding per segment that can be set against the plan's dequantised embedding:

- cosine between the plan's embedding and the re-analysed one, per segment;
- top-1 instrument and genre tags of each (ranked against the tag prompts through the
  embedder's text tower), and whether they agree;
- whether the re-analysed embedding quantises to the plan's coarsest thought code.

Every figure is also computed against a shuffled plan (another item's) as the floor, and
the quantisation ceiling (re-analysis against its own RVQ reconstruction) as the best a
plan could reach. The re-analysed side is the raw embedding (what the audio is), not its
RVQ view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from musigen.errors import ConfigError

#: The tag categories compared between plan and audio (top-1 each).
TAG_CATEGORIES: tuple[str, ...] = ("instrument", "genre")


@dataclass(frozen=True)
class PlanComparison:
    """Per-segment agreement of one plan with one re-analysis (segments aligned by index)."""

    cosine: list[float]
    tag_agree: dict[str, list[bool]]
    code_agree: list[bool]  # the re-analysis quantises to the plan's level-0 code
    ceiling: list[float]  # cosine(re-analysis, its own RVQ reconstruction)

    @property
    def segments(self) -> int:
        return len(self.cosine)


def tag_texts(embedder: Any, categories: Sequence[str] = TAG_CATEGORIES) -> dict[str, torch.Tensor]:
    """The embedder's text vectors of every tag prompt, per category (computed once per run)."""
    from musigen.musicot.analysis import tag_embeddings

    return {c: t.cpu() for c, t in tag_embeddings(embedder, tuple(categories)).items()}


def top1_tags(vectors: torch.Tensor, texts: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Best tag per category for each of [S, D] vectors."""
    from musigen.embedders.tags import rank_tags

    unit = torch.nn.functional.normalize(vectors.float().cpu(), dim=-1)
    ranked = rank_tags(unit, texts, 1)
    return {c: [seg[c][0][0] for seg in ranked] for c in texts}


def plan_vectors(plan: Any, tokenizer: Any) -> torch.Tensor:
    """Thought codes [S, L] -> the plan's dequantised unit embeddings [S, D]."""
    codes = torch.as_tensor(plan).long()
    if codes.dim() != 2 or codes.shape[0] == 0:
        raise ConfigError(f"a plan must be non-empty [segments, levels] codes, got {tuple(codes.shape)}")
    return tokenizer.decode(codes, normalize=True).float().cpu()


def reanalyse(wav: np.ndarray, sample_rate: int, embedder: Any, tokenizer: Any) -> torch.Tensor:
    """The generated audio's own embeddings [S, D] over exactly the tokenizer's windows."""
    from musigen.musicot.analysis import window_embeddings

    vectors, _ = window_embeddings(wav, sample_rate, embedder, tokenizer)
    return torch.nn.functional.normalize(vectors.float().cpu(), dim=-1)


def compare_plan(plan: Any, audio_vectors: torch.Tensor, tokenizer: Any,
                 texts: dict[str, torch.Tensor]) -> PlanComparison:
    """Set a plan (thought codes [S, L]) against re-analysed embeddings [S', D].

    Segments are paired by index; if the counts differ (a rounding edge of the windows)
    only the common prefix is compared.
    """
    codes = torch.as_tensor(plan).long()
    planned = plan_vectors(codes, tokenizer)
    audio = torch.nn.functional.normalize(torch.as_tensor(audio_vectors).float().cpu(), dim=-1)
    if audio.dim() != 2 or audio.shape[-1] != planned.shape[-1]:
        raise ConfigError(f"re-analysed embeddings must be [S, {planned.shape[-1]}], got {tuple(audio.shape)}")
    s = min(planned.shape[0], audio.shape[0])
    if s == 0:
        raise ConfigError("nothing to compare: the plan or the re-analysis has no segments")
    planned, audio, codes = planned[:s], audio[:s], codes[:s]
    cosine = (planned * audio).sum(-1)
    tags_plan, tags_audio = top1_tags(planned, texts), top1_tags(audio, texts)
    agree = {c: [p == a for p, a in zip(tags_plan[c], tags_audio[c], strict=True)] for c in texts}
    own = tokenizer.encode(audio).cpu()
    rebuilt = tokenizer.decode(own, normalize=True).float().cpu()
    return PlanComparison(
        cosine=[float(v) for v in cosine],
        tag_agree=agree,
        code_agree=[bool(v) for v in (own[:, 0] == codes[:, 0])],
        ceiling=[float(v) for v in (rebuilt * audio).sum(-1)],
    )


def _mean(values: Sequence[float | bool]) -> float | None:
    return float(np.mean(np.asarray(values, dtype=np.float64))) if len(values) else None


def summarise_plans(matched: Sequence[PlanComparison],
                    shuffled: Sequence[PlanComparison]) -> dict[str, Any]:
    """Means over all segments of all items, matched plans next to the shuffled floor."""

    def side(comps: Sequence[PlanComparison]) -> dict[str, Any]:
        cats = list(comps[0].tag_agree) if comps else list(TAG_CATEGORIES)
        out: dict[str, Any] = {
            "items": len(comps), "segments": sum(c.segments for c in comps),
            "cosine": _mean([v for c in comps for v in c.cosine]),
            "code0_agreement": _mean([v for c in comps for v in c.code_agree]),
        }
        for cat in cats:
            out[f"{cat}_top1_agreement"] = _mean([v for c in comps for v in c.tag_agree.get(cat, [])])
        return out

    return {"matched": side(matched), "shuffled": side(shuffled),
            "quantisation_ceiling": _mean([v for c in matched for v in c.ceiling])}
