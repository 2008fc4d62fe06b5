"""Quality of an audio–text embedder on held-out corpus windows.

Works for any :class:`~musigen.embedders.clap.AudioTextEmbedder` (the demo musigen_clap or
a LAION CLAP), so numbers are comparable across embedders.  On the windows of every piece
(default 10 s every 5 s), it reports:

- text->audio retrieval R@1 / R@5: the query is the window's piece caption; the candidates
  are that window plus `n_candidates - 1` windows drawn at random from *other* pieces
  (windows of the same piece share the caption, so they would be ambiguous);
- zero-shot instrument tagging: AP of ranking all windows by cos(window, "<instrument>")
  per instrument class, averaged over classes that have positives and negatives (mAP);
- zero-shot genre (and mood) accuracy: argmax over the category's prompt texts.

Chance levels are reported beside each number.  Window labels come from
:func:`musigen.embedders.tags.window_labels`, as in training.

    musigen eval clap --model checkpoints/clap_demo \\
        --manifest data/corpus_clap_heldout/manifest.jsonl --out runs/clap_demo/eval.json
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musigen.embedders import tags as tagvocab
from musigen.embedders.clap import AudioTextEmbedder, segment_bounds
from musigen.embedders.tag_metrics import instrument_aps
from musigen.errors import DataError
from musigen.vocab import GENRES, INSTRUMENTS, MOODS


@dataclass
class ClapEvalResult:
    """All figures of one evaluation, with chance levels and the set's size."""

    embedder: str
    n_pieces: int
    n_windows: int
    window_s: float
    hop_s: float
    n_candidates: int
    r_at_1: float
    r_at_5: float
    instrument_map: float
    genre_accuracy: float
    mood_accuracy: float
    per_instrument_ap: dict[str, float] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        c = self.chance
        per_ap = " ".join(f"{k} {v:.2f}" for k, v in self.per_instrument_ap.items())
        lines = [
            f"{self.embedder}: {self.n_windows} windows of {self.n_pieces} pieces "
            f"({self.window_s:g} s, hop {self.hop_s:g} s)",
            f"  text->audio R@1 {self.r_at_1:.3f}  R@5 {self.r_at_5:.3f} "
            f"among {self.n_candidates} "
            f"(chance {c.get('r_at_1', 0):.3f} / {c.get('r_at_5', 0):.3f})",
            f"  instrument mAP {self.instrument_map:.3f} "
            f"(chance {c.get('instrument_map', 0):.3f})  {per_ap}",
            f"  genre accuracy {self.genre_accuracy:.3f} "
            f"(chance {c.get('genre_accuracy', 0):.3f})  "
            f"mood accuracy {self.mood_accuracy:.3f} "
            f"(chance {c.get('mood_accuracy', 0):.3f})",
        ]
        return "\n".join(lines)


def retrieval_recall(
    text: torch.Tensor,
    audio: torch.Tensor,
    pieces: torch.Tensor,
    n_candidates: int,
    seed: int,
    ks: tuple[int, ...] = (1, 5),
) -> dict[int, float]:
    """Recall@k of window i for query text i among itself + distractors from other pieces."""
    rng = np.random.default_rng(seed)
    hits = {k: 0 for k in ks}
    for i in range(len(audio)):
        others = torch.nonzero(pieces != pieces[i]).flatten().numpy()
        if len(others) < n_candidates - 1:
            raise DataError(
                f"retrieval among {n_candidates} needs {n_candidates - 1} windows from other "
                f"pieces, only {len(others)} exist; use more pieces or a smaller hop"
            )
        cand = np.concatenate([[i], rng.choice(others, n_candidates - 1, replace=False)])
        scores = audio[torch.from_numpy(cand)] @ text[i]
        rank = int((scores > scores[0]).sum())  # ties count in the query's favour
        for k in ks:
            hits[k] += rank < k
    return {k: hits[k] / len(audio) for k in ks}


def evaluate_clap(
    embedder: AudioTextEmbedder,
    manifest: str | os.PathLike[str],
    window_s: float = 10.0,
    hop_s: float = 5.0,
    n_candidates: int = 100,
    min_active_s: float = 1.0,
    seed: int = 0,
    name: str | None = None,
) -> ClapEvalResult:
    """Evaluate `embedder` on the windows of every piece in `manifest`."""
    from musigen.audio import load_audio
    from musigen.data.manifest import read_manifest

    manifest = Path(manifest)
    records = read_manifest(manifest)
    if not records:
        raise DataError(f"manifest {manifest} holds no records")
    sr = embedder.sample_rate
    audio, labels, pieces, captions = [], [], [], []
    for p, rec in enumerate(records):
        wav, _ = load_audio(manifest.parent / rec["path"], sample_rate=sr, channels=1)
        emb = embedder.embed_audio(wav, sr, window_s, hop_s)
        bounds = segment_bounds(wav.shape[-1], sr, window_s, hop_s)
        assert len(bounds) == len(emb), "embed_audio and segment_bounds disagree"
        audio.append(emb)
        for s, e in bounds:
            labels.append(tagvocab.window_labels(rec, s / sr, e / sr, min_active_s))
            pieces.append(p)
            captions.append(rec["caption"])
    a = torch.cat(audio).float()
    piece_t = torch.tensor(pieces)

    unique = list(dict.fromkeys(captions))
    cap_emb = embedder.embed_text(unique).float()
    text = cap_emb[torch.tensor([unique.index(c) for c in captions])]
    recall = retrieval_recall(text, a, piece_t, n_candidates, seed)

    inst = torch.from_numpy(np.stack([lab.instruments for lab in labels]))
    inst_scores = a @ embedder.embed_text(tagvocab.prompts("instrument")).float().T
    per_ap = instrument_aps(inst_scores, inst)
    inst_map = float(np.mean(list(per_ap.values())))
    chance_map = float(np.mean([inst[:, INSTRUMENTS.index(n)].mean().item() for n in per_ap]))

    def accuracy(category: str, names: tuple[str, ...], truth: list[int]) -> tuple[float, float]:
        t = torch.tensor(truth)
        known = t >= 0
        if not known.any():
            return math.nan, math.nan
        pred = (a @ embedder.embed_text(tagvocab.prompts(category)).float().T).argmax(-1)
        return float((pred[known] == t[known]).float().mean()), 1.0 / len(names)

    genre_acc, genre_chance = accuracy("genre", GENRES, [lab.genre for lab in labels])
    mood_acc, mood_chance = accuracy("mood", MOODS, [lab.mood for lab in labels])
    return ClapEvalResult(
        embedder=name or getattr(embedder, "name", "") or type(embedder).__name__,
        n_pieces=len(records),
        n_windows=len(a),
        window_s=window_s,
        hop_s=hop_s,
        n_candidates=n_candidates,
        r_at_1=recall[1],
        r_at_5=recall[5],
        instrument_map=inst_map,
        genre_accuracy=genre_acc,
        mood_accuracy=mood_acc,
        per_instrument_ap=per_ap,
        chance={
            "r_at_1": 1 / n_candidates,
            "r_at_5": 5 / n_candidates,
            "instrument_map": chance_map,
            "genre_accuracy": genre_chance,
            "mood_accuracy": mood_chance,
        },
    )


def run_from_args(args: argparse.Namespace) -> int:
    """`musigen eval clap`: evaluate, print the summary, optionally write the JSON."""
    from musigen.embedders.clap import load_embedder

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    result = evaluate_clap(load_embedder(args.model), args.manifest, args.window, args.hop, args.candidates,
                           seed=args.seed, name=None)
    print(result.summary())
    if args.out:
        from musigen.atomic import write_json

        write_json(args.out, result.as_dict())
        print(f"wrote {args.out}")
    return 0
