"""Training the learned chord recogniser on the procedural corpus (`musigen train chords`).

The corpus renders every piece from its arrangement, so chord labels are exact; pieces are
rendered once into cached features and fitted with random crops.  The result is a
:class:`~musigen.chords.model.ChordRecognizer` folder, the shipped ``checkpoints/chords``
(and the ``chords/`` component of InstructME pipelines).  Plain PyTorch, no Lightning: the
model is ~70 k parameters and trains in minutes on one CPU thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from musigen.chords.features import FRAME_RATE, ChordFeatures, chord_features
from musigen.chords.matrix import chord_matrix
from musigen.chords.model import ChordModelConfig, ChordNet, ChordRecognizer, model_input
from musigen.errors import ConfigError, DataError

#: Default training seeds; keep them disjoint from the evaluation seeds (90000 and up).
DEFAULT_SEEDS = range(1000, 1200)
RENDERERS: tuple[str, ...] = ("builtin", "fluidsynth")


@dataclass
class ChordTrainConfig:
    """Optimisation settings; defaults fit ~20 minutes on one (shared) CPU thread."""

    steps: int = 1500
    batch_size: int = 12
    crop_frames: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0  # the un-normalised conv stack spikes at the peak lr without it
    seed: int = 0
    log_every: int = 100

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "crop_frames", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


def frame_targets(
    chords: list[tuple[float, float, str]], n_frames: int, frame_rate: float, vocab: tuple[str, ...]
) -> np.ndarray:
    """Integer class per frame from exact corpus labels (labels outside vocab reduce, then N)."""
    return chord_matrix(chords, frame_rate, n_frames, vocab).argmax(axis=1).astype(np.int64)


def train_chord_model(
    examples: list[tuple[np.ndarray, np.ndarray]],
    config: ChordModelConfig,
    train: ChordTrainConfig,
    log: bool = True,
) -> ChordRecognizer:
    """Fit a ChordNet on (model_input [T, 72], targets [T]) pairs with random crops."""
    if not examples:
        raise DataError("no chord training examples")
    rng = np.random.default_rng(train.seed)
    torch.manual_seed(train.seed)
    net = ChordNet(config)
    opt = torch.optim.AdamW(net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=train.lr, total_steps=train.steps, pct_start=0.1
    )
    lengths = np.array([len(y) for _, y in examples])
    weights = lengths / lengths.sum()
    net.train()
    running = 0.0
    for step in range(1, train.steps + 1):
        xs, ys = [], []
        for i in rng.choice(len(examples), size=train.batch_size, p=weights):
            x, y = examples[i]
            n = min(train.crop_frames, len(y))
            s = int(rng.integers(0, len(y) - n + 1))
            xb = np.zeros((train.crop_frames, x.shape[1]), np.float32)
            yb = np.full(train.crop_frames, -100, np.int64)
            xb[:n], yb[:n] = x[s : s + n], y[s : s + n]
            xs.append(xb)
            ys.append(yb)
        logits = net(torch.from_numpy(np.stack(xs)))
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            torch.from_numpy(np.stack(ys)).reshape(-1),
            ignore_index=-100,
        )
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), train.grad_clip)
        opt.step()
        sched.step()
        running += float(loss.detach())
        if log and step % train.log_every == 0:
            print(f"step {step}/{train.steps} loss {running / train.log_every:.4f}", flush=True)
            running = 0.0
    net.eval()
    return ChordRecognizer(config, net)


def corpus_examples(
    seeds: Sequence[int],
    renderers: list[str],
    duration: float,
    vocab: tuple[str, ...],
    cache: Path | None = None,
    progress: bool = True,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Render corpus pieces (as `musigen data synth` would) into (model_input, targets) pairs.

    Features are cached per (renderer, seed) as .npz with the exact labels, so re-training
    with another vocabulary or architecture does not re-render.
    """
    import json

    from tqdm import tqdm

    from musigen.atomic import atomic_path
    from musigen.data.synth.corpus import piece_genre, render_seed
    from musigen.vocab import GENRES

    out: list[tuple[np.ndarray, np.ndarray]] = []
    jobs = [(r, s) for r in renderers for s in seeds]
    for renderer, seed in tqdm(jobs, desc="features", unit="piece", disable=not progress):
        path = cache / f"{renderer}_{seed}_{duration:g}s.npz" if cache is not None else None
        if path is not None and path.is_file():
            data = np.load(path)
            feats = ChordFeatures(
                data["logcqt"].astype(np.float32), FRAME_RATE, duration, data["silent"]
            )
            chords = json.loads(str(data["chords"]))
        else:
            piece = render_seed(seed, duration, piece_genre(seed, list(GENRES)), 16000, renderer)
            feats = chord_features(piece.mix, piece.sample_rate)
            chords = [[float(a), float(b), str(c)] for a, b, c in piece.chords]
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    np.savez(
                        tmp,
                        logcqt=feats.logcqt.astype(np.float16),
                        silent=feats.silent,
                        chords=json.dumps(chords),
                    )
        x = model_input(feats)
        y = frame_targets([tuple(c) for c in chords], len(x), FRAME_RATE, vocab)
        out.append((x, y))
    return out


def train_from_corpus(
    out: str | os.PathLike[str],
    seeds: Sequence[int] = DEFAULT_SEEDS,
    renderers: Sequence[str] = RENDERERS,
    duration: float = 30.0,
    config: ChordModelConfig | None = None,
    train: ChordTrainConfig | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Render `seeds` with each renderer, train a recogniser and save it to `out`.

    What ``musigen train chords`` runs; returns the saved folder.
    """
    config = config or ChordModelConfig()
    train = train or ChordTrainConfig()
    unknown = [r for r in renderers if r not in RENDERERS]
    if unknown or not renderers:
        raise ConfigError(f"renderers must be among {', '.join(RENDERERS)}, got {list(renderers)}")
    if not len(seeds):
        raise ConfigError("no training seeds")
    if not duration > 0:
        raise ConfigError(f"duration must be positive, got {duration!r}")
    t0 = time.perf_counter()
    examples = corpus_examples(list(seeds), list(renderers), duration, config.vocab,
                               Path(cache) if cache is not None else None, progress)
    t1 = time.perf_counter()
    hours = sum(len(y) for _, y in examples) / FRAME_RATE / 3600
    print(f"{len(examples)} pieces, {hours:.2f} h of audio prepared in {t1 - t0:.0f} s", flush=True)
    model = train_chord_model(examples, config, train, log=progress)
    n_params = sum(p.numel() for p in model.net.parameters())
    print(f"trained {n_params} parameters in {time.perf_counter() - t1:.0f} s", flush=True)
    return model.save_pretrained(out)
