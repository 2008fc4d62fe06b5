"""Reading a piece (or a generated plan) back as a per-segment timeline of tags and chords.

MusiCoT's thoughts live in the audio–text embedding space, so any window embedding,
whether measured from audio or dequantised from plan tokens, can be ranked against the
fixed tag prompts of :mod:`musigen.embedders.tags` through the embedder's text tower.

Two paths share one output type:
- audio: windows of the thought tokenizer (or plain `window_s` windows) -> CLAP; with a
  tokenizer the embeddings also pass through its RVQ, so the timeline shows what the
  model's thought tokens can express;
- plan: thought codes [S, L] -> RVQ decode -> the same ranking (no audio needed).
Chords come from :func:`musigen.chords.recognize_chords` on the audio, cut per segment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musigen.audio import require_duration
from musigen.embedders.tags import CATEGORIES, MULTI_LABEL, prompts, rank_tags
from musigen.errors import ConfigError


@dataclass
class SegmentAnalysis:
    """One segment: per tag category, (name, cosine) pairs best first, and its chords."""

    start: float
    end: float
    tags: dict[str, list[tuple[str, float]]]
    chords: list[tuple[float, float, str]] = field(default_factory=list)

    def line(self) -> str:
        """A one-line summary for terminals: time span, tags per category, chord labels."""
        parts = [
            f"{cat}: " + ", ".join(f"{n} {s:.2f}" for n, s in pairs)
            for cat, pairs in self.tags.items()
        ]
        chords = " ".join(dict.fromkeys(lab for _, _, lab in self.chords if lab != "N"))
        text = f"{self.start:6.1f}-{self.end:6.1f} s  " + " | ".join(parts)
        return text + (f" | chords: {chords}" if chords else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "tags": {c: [[n, round(s, 4)] for n, s in p] for c, p in self.tags.items()},
            "chords": [[round(s, 4), round(e, 4), lab] for s, e, lab in self.chords],
        }


def _mono(wav: np.ndarray | torch.Tensor, sr: int) -> np.ndarray:
    from musigen.embedders.clap import to_mono

    return to_mono(wav, sr)


def window_embeddings(
    wav: np.ndarray | torch.Tensor, sr: int, embedder: Any, tokenizer: Any
) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Embed exactly the thought tokenizer's windows: [S, D] and their spans in seconds.

    The tokenizer's tail rule (min_last_s) decides the windows, so the reference, the
    pre-encoded corpus and the analysis all agree on S for a given length.
    """
    mono = _mono(wav, sr)
    bounds = tokenizer.window_bounds(mono.shape[-1], sr)
    window_s = tokenizer.config.window_s
    vecs = [embedder.embed_audio(mono[s:e], sr, window_s=window_s)[:1] for s, e in bounds]
    return torch.cat(vecs).float(), [(s / sr, e / sr) for s, e in bounds]


def tag_embeddings(embedder: Any, categories: tuple[str, ...] = CATEGORIES) -> dict[str, torch.Tensor]:
    """The text-tower vectors of every category's canonical tag prompts."""
    return {cat: embedder.embed_text(prompts(cat)).float() for cat in categories}


def _rank(vectors: torch.Tensor, embedder: Any, top_k: int,
          categories: tuple[str, ...]) -> list[dict[str, list[tuple[str, float]]]]:
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    texts = tag_embeddings(embedder, categories)
    vectors = torch.nn.functional.normalize(vectors.float().cpu(), dim=-1)
    texts = {c: t.cpu() for c, t in texts.items()}
    return rank_tags(vectors, texts, {c: (top_k if MULTI_LABEL[c] else 1) for c in categories})


def _cut(chords: list[tuple[float, float, str]], start: float, end: float) -> list[tuple[float, float, str]]:
    return [(max(s, start), min(e, end), lab) for s, e, lab in chords if s < end and e > start]


def segment_chords(wav: np.ndarray | torch.Tensor, sr: int,
                   spans: list[tuple[float, float]]) -> list[list[tuple[float, float, str]]]:
    """Chords of the whole piece, cut into each span."""
    from musigen.chords import recognize_chords

    chords = recognize_chords(_mono(wav, sr), sr)
    return [_cut(chords, s, e) for s, e in spans]


def analyze(
    wav: np.ndarray | torch.Tensor,
    sr: int,
    embedder: Any,
    tokenizer: Any | None = None,
    window_s: float = 10.0,
    top_k: int = 3,
    chords: bool = True,
    categories: tuple[str, ...] = CATEGORIES,
) -> list[SegmentAnalysis]:
    """Per-segment top tags (and chords) of a recording.

    With `tokenizer`, its windows are used and each embedding is quantised and decoded by
    its RVQ first (the thought view); otherwise plain `window_s` windows, embedded directly.
    """
    require_duration(wav, sr)
    if tokenizer is not None:
        vectors, spans = window_embeddings(wav, sr, embedder, tokenizer)
        vectors = tokenizer.decode(tokenizer.encode(vectors), normalize=True)
    else:
        mono = _mono(wav, sr)
        vectors = embedder.embed_audio(mono, sr, window_s=window_s)
        spans = [(g.start, g.end) for g in embedder.segments(mono.shape[-1], sr, window_s)]
    ranked = _rank(vectors, embedder, top_k, categories)
    cut = segment_chords(wav, sr, spans) if chords else [[] for _ in spans]
    return [SegmentAnalysis(s, e, r, c) for (s, e), r, c in zip(spans, ranked, cut, strict=True)]


def plan_spans(tokenizer: Any, num_segments: int, duration_s: float) -> list[tuple[float, float]]:
    """Time spans of a plan's segments for a piece of `duration_s` seconds."""
    hop, win = tokenizer.config.hop_s, tokenizer.config.window_s
    return [(i * hop, min(i * hop + win, duration_s)) for i in range(num_segments)]


def analyze_plan(
    plan: torch.Tensor,
    tokenizer: Any,
    embedder: Any,
    duration_s: float,
    top_k: int = 3,
    categories: tuple[str, ...] = CATEGORIES,
) -> list[SegmentAnalysis]:
    """Thought codes [S, n] of one piece -> per-segment tags through the text tower."""
    if plan.dim() != 2:
        raise ConfigError(f"a plan must be [segments, levels] thought codes, got {tuple(plan.shape)}")
    if plan.shape[0] == 0:
        return []
    vectors = tokenizer.decode(plan, normalize=True)
    ranked = _rank(vectors, embedder, top_k, categories)
    spans = plan_spans(tokenizer, plan.shape[0], duration_s)
    return [SegmentAnalysis(s, e, r) for (s, e), r in zip(spans, ranked, strict=True)]


def plot_timeline(segments: list[SegmentAnalysis], path: str | os.PathLike[str],
                  title: str = "") -> Path:
    """Draw the timeline as a PNG: one row of score bars per tag, chord labels on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from musigen.atomic import atomic_path

    if not segments:
        raise ConfigError("nothing to plot: the analysis has no segments")
    rows: list[tuple[str, str]] = []
    for seg in segments:
        for cat, pairs in seg.tags.items():
            for name, _ in pairs:
                if (cat, name) not in rows:
                    rows.append((cat, name))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(segments) + 3), 0.35 * len(rows) + 1.8))
    cmap = plt.get_cmap("viridis")
    for seg in segments:
        for cat, pairs in seg.tags.items():
            for name, score in pairs:
                y = rows.index((cat, name))
                ax.barh(y, seg.end - seg.start, left=seg.start, height=0.8,
                        color=cmap(float(np.clip((score + 1) / 2, 0, 1))))
        labels = list(dict.fromkeys(lab for _, _, lab in seg.chords if lab != "N"))[:4]
        if labels:
            ax.text((seg.start + seg.end) / 2, len(rows) - 0.2, " ".join(labels),
                    ha="center", va="bottom", fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{c}: {n}" for c, n in rows], fontsize=8)
    ax.set_ylim(-0.6, len(rows) + 0.6)
    ax.set_xlim(0, segments[-1].end)
    ax.set_xlabel("time (s)")
    ax.set_title(title or "musigen analysis: top tags per segment")
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return target
