"""Score the chord recogniser with `mir_eval.chord` on freshly rendered held-out corpus pieces.

Run as::

    musigen eval chords --n 50 --seed 90000 --renderer builtin --out report.json

Pieces are rebuilt from their seeds exactly as `musigen data synth` builds them, so labels
are exact and nothing is read from disk.  Scores are duration-weighted: pooled over all
pieces (each second counts once) and, for reference, the mean of per-piece scores.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

#: Metrics reported; `root` and `majmin` are the targets, the rest are for information.
METRICS: tuple[str, ...] = ("root", "majmin", "thirds", "sevenths", "mirex")


@dataclass
class PieceScore:
    """Duration-weighted comparison totals of one piece, kept per metric for pooling."""

    seed: int
    genre: str
    duration: float
    correct: dict[str, float]
    counted: dict[str, float]

    def score(self, metric: str) -> float | None:
        return self.correct[metric] / self.counted[metric] if self.counted[metric] > 0 else None


def score_piece(
    reference: list[tuple[float, float, str]], estimate: list[tuple[float, float, str]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Correct and counted seconds per metric, following mir_eval.chord.evaluate's alignment."""
    import mir_eval

    ref_iv = np.array([[s, e] for s, e, _ in reference], dtype=float)
    ref_lab = [lab for _, _, lab in reference]
    est_iv = np.array([[s, e] for s, e, _ in estimate], dtype=float).reshape(-1, 2)
    est_lab = [lab for _, _, lab in estimate]
    if not len(est_lab):
        est_iv, est_lab = ref_iv[:1].copy(), ["N"]
    est_iv, est_lab = mir_eval.util.adjust_intervals(
        est_iv,
        est_lab,
        ref_iv.min(),
        ref_iv.max(),
        mir_eval.chord.NO_CHORD,
        mir_eval.chord.NO_CHORD,
    )
    iv, ref_m, est_m = mir_eval.util.merge_labeled_intervals(ref_iv, ref_lab, est_iv, est_lab)
    durations = mir_eval.util.intervals_to_durations(iv)
    correct: dict[str, float] = {}
    counted: dict[str, float] = {}
    for metric in METRICS:
        comp = np.asarray(getattr(mir_eval.chord, metric)(ref_m, est_m), dtype=float)
        valid = comp >= 0
        correct[metric] = float(np.sum(durations[valid] * comp[valid]))
        counted[metric] = float(np.sum(durations[valid]))
    return correct, counted


def evaluate(
    n: int,
    seed: int,
    renderer: str,
    duration: float = 30.0,
    method: str = "auto",
    checkpoint: str | None = None,
    progress: bool = True,
) -> dict:
    """Render pieces `seed .. seed+n-1`, recognise their chords and score them."""
    from tqdm import tqdm

    from musigen.chords import recognize_chords
    from musigen.data.synth.corpus import piece_genre, render_seed
    from musigen.vocab import GENRES

    scores: list[PieceScore] = []
    t_render = t_recog = 0.0
    for s in tqdm(
        range(seed, seed + n), desc=f"chords/{renderer}", unit="piece", disable=not progress
    ):
        genre = piece_genre(s, list(GENRES))
        t0 = time.perf_counter()
        piece = render_seed(s, float(duration), genre, 16000, renderer)
        t1 = time.perf_counter()
        est = recognize_chords(piece.mix, piece.sample_rate, method=method, checkpoint=checkpoint)
        t2 = time.perf_counter()
        t_render += t1 - t0
        t_recog += t2 - t1
        ref = [(float(a), float(b), str(lab)) for a, b, lab in piece.chords]
        correct, counted = score_piece(ref, est)
        scores.append(PieceScore(s, genre, float(duration), correct, counted))
    pooled = {
        m: sum(p.correct[m] for p in scores) / max(sum(p.counted[m] for p in scores), 1e-9)
        for m in METRICS
    }
    mean = {}
    for m in METRICS:
        vals = [v for v in (p.score(m) for p in scores) if v is not None]
        mean[m] = float(np.mean(vals)) if vals else None
    genres = sorted({p.genre for p in scores})
    by_genre = {
        g: {
            m: sum(p.correct[m] for p in scores if p.genre == g)
            / max(sum(p.counted[m] for p in scores if p.genre == g), 1e-9)
            for m in ("root", "majmin")
        }
        for g in genres
    }
    return {
        "renderer": renderer,
        "n": n,
        "seeds": [seed, seed + n - 1],
        "duration": duration,
        "method": method,
        "checkpoint": checkpoint,
        "pooled": pooled,
        "mean_per_piece": mean,
        "by_genre": by_genre,
        "recognition_seconds": t_recog,
        "render_seconds": t_render,
        "pieces": [
            {"seed": p.seed, "genre": p.genre, **{m: p.score(m) for m in ("root", "majmin")}}
            for p in scores
        ],
    }


def run_from_args(args: argparse.Namespace) -> int:
    """`musigen eval chords`: print the pooled scores and write the JSON report atomically."""
    import torch

    from musigen.atomic import write_json
    from musigen.errors import ConfigError

    if args.n < 1:
        raise ConfigError(f"--n must be positive, got {args.n}")
    torch.set_num_threads(1)
    report = evaluate(args.n, args.seed, args.renderer, args.duration, args.method, args.checkpoint,
                      progress=not args.no_progress)
    p = report["pooled"]
    print(f"{args.renderer} n={args.n} seeds {args.seed}..{args.seed + args.n - 1} method={args.method}: "
          f"root {p['root']:.4f}  majmin {p['majmin']:.4f}  (sevenths {p['sevenths']:.4f})")
    if args.out is not None:
        write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0
