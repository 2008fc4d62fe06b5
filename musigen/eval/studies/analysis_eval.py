"""How well `musigen analyze` reads a piece: per-segment tags against the exact stems.

`musigen analyze` embeds each window of the thought tokenizer with the pipeline's CLAP,
passes the embedding through the RVQ (the thought tokens) and ranks tag prompts through the
text tower.  This module scores exactly that path on held-out corpus pieces, whose stems say
which instrument sounds in which segment:

- instrument mAP per segment (AP per instrument over all segments, averaged over the
  instruments that are both present and absent somewhere), with its chance level;
- precision and recall of the top-k instruments the timeline prints (k = the pipeline's
  `analysis_top_k`);
- genre and mood accuracy of the top tag;
- each at every RVQ level count (1..L) and on the raw embedding, so the cost of quantising
  the thoughts is visible beside the thought fidelity (cosine, original vs dequantised).

    musigen eval analysis --model checkpoints/musicot_demo \\
        --manifest data/corpus_clap_heldout/manifest.jsonl --json runs/eval/analysis.json
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musigen.errors import CheckpointError, ConfigError, DataError
from musigen.vocab import GENRES, INSTRUMENTS, MOODS

if TYPE_CHECKING:
    import torch

# numpy and torch are imported inside the functions, so `musigen eval --help` stays fast


@dataclass
class ViewScores:
    """The analysis figures of one view of the segment embeddings (raw, or through n levels)."""

    view: str
    instrument_map: float
    per_instrument_ap: dict[str, float]
    top_k_precision: float
    top_k_recall: float
    genre_accuracy: float
    mood_accuracy: float
    levels: int = 0  # RVQ levels the embeddings went through; 0 = the raw embedding


@dataclass
class AnalysisEvalResult:
    """Every view's scores, the thought fidelity on these segments, and chance levels."""

    model: str
    n_pieces: int
    n_segments: int
    window_s: float
    top_k: int
    fidelity: list[float]
    views: list[ViewScores] = field(default_factory=list)
    chance: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A markdown table, one row per view, with the chance row last."""
        k = self.top_k
        lines = [
            f"{self.model}: {self.n_pieces} pieces, {self.n_segments} segments of {self.window_s:g} s",
            "",
            f"| view | fidelity (cos) | instrument mAP | top-{k} precision | top-{k} recall | genre acc | mood acc |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in self.views:
            fid = f"{self.fidelity[v.levels - 1]:.3f}" if v.levels else "1"
            lines.append(f"| {v.view} | {fid} | {v.instrument_map:.3f} | {v.top_k_precision:.3f} | "
                         f"{v.top_k_recall:.3f} | {v.genre_accuracy:.3f} | {v.mood_accuracy:.3f} |")
        c = self.chance
        lines.append(f"| chance | | {c['instrument_map']:.3f} | {c['top_k_precision']:.3f} | "
                     f"{c['top_k_recall']:.3f} | {c['genre_accuracy']:.3f} | {c['mood_accuracy']:.3f} |")
        return "\n".join(lines)


def _accuracy(scores: torch.Tensor, truth: torch.Tensor) -> float:
    known = truth >= 0
    if not known.any():
        return math.nan
    return float((scores.argmax(-1)[known] == truth[known]).float().mean())


def score_view(
    name: str,
    vectors: torch.Tensor,
    instruments: torch.Tensor,
    genres: torch.Tensor,
    moods: torch.Tensor,
    texts: dict[str, torch.Tensor],
    top_k: int,
    levels: int = 0,
) -> ViewScores:
    """Score segment embeddings [N, D] against multi-hot instruments [N, I] and genre/mood indices.

    `texts` holds each category's tag vectors (as :func:`~musigen.musicot.analysis.tag_embeddings`
    returns them); ranking is by cosine, as the printed timeline ranks.
    """
    import numpy as np
    import torch

    from musigen.embedders.tag_metrics import instrument_aps

    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    v = torch.nn.functional.normalize(vectors.float(), dim=-1)
    norm = {c: torch.nn.functional.normalize(t.float(), dim=-1) for c, t in texts.items()}
    inst = v @ norm["instrument"].T
    per_ap = instrument_aps(inst, instruments)
    top = inst.topk(min(top_k, inst.shape[1]), dim=-1).indices
    hits = instruments.gather(1, top).sum(1)
    present = instruments.sum(1)
    has = present > 0
    return ViewScores(
        view=name,
        instrument_map=float(np.mean(list(per_ap.values()))),
        per_instrument_ap=per_ap,
        top_k_precision=float((hits / top.shape[1]).mean()),
        top_k_recall=float((hits[has] / present[has]).mean()) if has.any() else math.nan,
        genre_accuracy=_accuracy(v @ norm["genre"].T, genres),
        mood_accuracy=_accuracy(v @ norm["mood"].T, moods),
        levels=levels,
    )


def evaluate_analysis(
    embedder: Any,
    tokenizer: Any,
    manifest: str | os.PathLike[str],
    top_k: int = 3,
    min_active_s: float = 1.0,
    name: str = "",
) -> AnalysisEvalResult:
    """Score the analysis path of (embedder, thought tokenizer) on every piece of `manifest`."""
    import numpy as np
    import torch

    from musigen.audio import load_audio
    from musigen.data.manifest import read_manifest
    from musigen.embedders.tags import window_labels
    from musigen.musicot.analysis import tag_embeddings, window_embeddings

    manifest = Path(manifest)
    records = read_manifest(manifest)
    if not records:
        raise DataError(f"manifest {manifest} holds no records")
    sr = embedder.sample_rate
    vectors, labels = [], []
    for rec in records:
        wav, _ = load_audio(manifest.parent / rec["path"], sample_rate=sr, channels=1)
        emb, spans = window_embeddings(wav, sr, embedder, tokenizer)
        vectors.append(emb)
        labels += [window_labels(rec, s, e, min_active_s) for s, e in spans]
    x = torch.cat(vectors).float()
    instruments = torch.from_numpy(np.stack([lab.instruments for lab in labels])).float()
    genres = torch.tensor([lab.genre for lab in labels])
    moods = torch.tensor([lab.mood for lab in labels])
    texts = tag_embeddings(embedder, ("instrument", "genre", "mood"))

    with torch.no_grad():
        codes = tokenizer.encode(x)
        views = [score_view("raw CLAP", x, instruments, genres, moods, texts, top_k)]
        for n in range(1, tokenizer.config.levels + 1):
            deq = tokenizer.decode(codes[:, :n], normalize=True)
            views.append(score_view(f"{n} level{'s' if n > 1 else ''}", deq, instruments, genres,
                                    moods, texts, top_k, levels=n))
        fidelity = tokenizer.fidelity(x)

    scored = [INSTRUMENTS.index(n) for n in views[0].per_instrument_ap]
    prevalence = instruments[:, scored].mean(0)
    present = instruments.sum(1)
    k = min(top_k, instruments.shape[1])
    return AnalysisEvalResult(
        model=name,
        n_pieces=len(records),
        n_segments=len(x),
        window_s=tokenizer.config.window_s,
        top_k=top_k,
        fidelity=[round(f, 4) for f in fidelity],
        views=views,
        chance={
            "instrument_map": float(prevalence.mean()),
            # k instruments drawn at random: precision = density, recall = k / I
            "top_k_precision": float((present / instruments.shape[1]).mean()),
            "top_k_recall": k / instruments.shape[1],
            "genre_accuracy": 1.0 / len(GENRES),
            "mood_accuracy": 1.0 / len(MOODS),
        },
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `musigen eval analysis`."""
    p.add_argument("--model", default=None,
                   help="a MusiCoT pipeline folder (default: the shipped checkpoints/musicot_demo)")
    p.add_argument("--manifest", type=Path, required=True, help="held-out corpus manifest.jsonl")
    p.add_argument("--top-k", type=int, default=None,
                   help="instruments the timeline prints (default: the pipeline's analysis_top_k)")
    p.add_argument("--min-active", type=float, default=1.0,
                   help="seconds an instrument must sound inside a segment to count as present")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")


def run_from_args(args: argparse.Namespace) -> int:
    """Load the pipeline's analysis parts, score them, print the table (and write JSON).

    Arguments and the manifest are checked before any model loads, so mistakes fail fast.
    """
    from musigen import hub
    from musigen.atomic import write_json
    from musigen.checkpoints import default_checkpoint
    from musigen.data.manifest import read_manifest
    from musigen.musicot.pipeline import (DEMO_NAME, PIPELINE_NAME, MusiCoTPipelineConfig,
                                          load_analyzer)

    if args.top_k is not None and args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
    if not args.min_active >= 0:
        raise ConfigError(f"--min-active must be >= 0 seconds, got {args.min_active}")
    if not read_manifest(args.manifest):
        raise DataError(f"manifest {args.manifest} holds no records")
    folder = Path(args.model) if args.model else default_checkpoint(DEMO_NAME, "pass --model DIR")
    if not folder.is_dir():
        raise CheckpointError(f"MusiCoT model folder not found: {folder}")
    if not (folder / PIPELINE_NAME).is_file():
        raise ConfigError(f"{folder} is not a MusiCoT pipeline folder (no {PIPELINE_NAME}); "
                          "the analysis is scored through its thought tokenizer")
    embedder, tokenizer = load_analyzer(folder)
    top_k = args.top_k or hub.load_config(folder, MusiCoTPipelineConfig, PIPELINE_NAME).analysis_top_k
    result = evaluate_analysis(embedder, tokenizer, args.manifest, top_k, args.min_active, str(folder))
    print(result.table())
    if args.json:
        write_json(args.json, result.as_dict())
    return 0
