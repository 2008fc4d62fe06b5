"""A small learned chord recogniser: a pitch-equivariant temporal CNN over octave-wise chroma.

Why this shape: a chord's quality is the same pattern whatever its root, so one network
scores "is there a <quality> chord rooted at pitch class 0?" and is applied to all 12
rotations of the input.  That shares every weight across the 12 roots (12x the data for
free, and no key bias from the training corpus) and keeps the model tiny (~70 k parameters,
well under the 5 MB checkpoint budget).  Dilated temporal convolutions give it about one
second of context; the Viterbi pass in :mod:`musigen.chords` does the long-range smoothing.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from musigen.chords import (
    FRAME_RATE,
    N_OCTAVES,
    QUALITIES,
    ROOTS,
    ChordFeatures,
    semitone_spectrum,
)
from musigen.errors import CheckpointError


@dataclass
class ChordModelConfig:
    """Architecture and decoding settings, saved as the checkpoint's config.json."""

    qualities: tuple[str, ...] = QUALITIES
    n_octaves: int = N_OCTAVES
    hidden: int = 64
    kernel_size: int = 5
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    time_stride: int = 2  # the body runs at FRAME_RATE / time_stride (cheaper, longer context)
    self_transition: float = 0.95
    feature: str = "logcqt-c1-6oct-centred-semitone-max"

    def __post_init__(self) -> None:
        self.qualities = tuple(self.qualities)
        self.dilations = tuple(int(d) for d in self.dilations)
        unknown = [q for q in self.qualities if q not in QUALITIES]
        if unknown:
            raise CheckpointError(f"chord model config has unknown qualities {unknown}")
        if self.feature != ChordModelConfig.feature:
            raise CheckpointError(
                f"chord model was trained on features {self.feature!r}; this build computes "
                f"{ChordModelConfig.feature!r}"
            )

    @property
    def vocab(self) -> tuple[str, ...]:
        """Output order: N, then root-major (r:q for every root, every quality)."""
        return ("N",) + tuple(f"{r}:{q}" for r in ROOTS for q in self.qualities)


class ChordNet(nn.Module):
    """Frame logits [B, T, 1 + 12 * Q] from octave-wise chroma [B, T, n_octaves * 12]."""

    def __init__(self, config: ChordModelConfig) -> None:
        super().__init__()
        self.config = config
        c_in, h = config.n_octaves * 12, config.hidden
        stride = config.time_stride
        layers: list[nn.Module] = [nn.Conv1d(c_in, h, stride, stride=stride), nn.GELU()]
        for d in config.dilations:
            layers += [
                nn.Conv1d(
                    h, h, config.kernel_size, dilation=d, padding=d * (config.kernel_size - 1) // 2
                ),
                nn.GELU(),
            ]
        self.body = nn.Sequential(*layers)
        self.quality_head = nn.Conv1d(h, len(config.qualities), 1)
        self.no_chord_head = nn.Conv1d(h, 1, 1)
        rot = (
            torch.arange(12)[None, :] + torch.arange(12)[:, None]
        ) % 12  # rot[r, k] = (k + r) % 12
        self.register_buffer("rotation", rot, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t_in, _ = x.shape
        o, stride = self.config.n_octaves, self.config.time_stride
        pad = (-t_in) % stride
        if pad:
            x = nn.functional.pad(x, (0, 0, 0, pad))
        t = x.shape[1]
        chroma = x.reshape(b, t, o, 12)[..., self.rotation]  # [B, T, O, 12 roots, 12 pcs]
        z = chroma.permute(0, 3, 2, 4, 1).reshape(b * 12, o * 12, t)  # root pc first in each octave
        hid = self.body(z)  # [B*12, H, T / stride]
        t = hid.shape[-1]
        quality = self.quality_head(hid).reshape(b, 12, -1, t)  # [B, 12, Q, T]
        invariant = hid.reshape(b, 12, -1, t).mean(dim=1)  # same for every rotation
        no_chord = self.no_chord_head(invariant)  # [B, 1, T]
        roots_first = quality.permute(0, 3, 1, 2).reshape(b, t, -1)  # [B, T, 12 * Q], root-major
        logits = torch.cat([no_chord.permute(0, 2, 1), roots_first], dim=-1)
        return logits.repeat_interleave(stride, dim=1)[:, :t_in]


def model_input(features: ChordFeatures) -> np.ndarray:
    """The network's input for one piece: semitone-pooled log-CQT [T, 72]."""
    return semitone_spectrum(features.logcqt).astype(np.float32)


class ChordRecognizer:
    """A trained ChordNet plus its config: what :func:`musigen.chords.recognize_chords` calls."""

    def __init__(self, config: ChordModelConfig, net: ChordNet | None = None) -> None:
        self.config = config
        self.net = net if net is not None else ChordNet(config)
        self.net.eval()

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.config.vocab

    @torch.no_grad()
    def frame_probabilities(self, features: ChordFeatures) -> np.ndarray:
        """Per-frame probabilities [T, V] over :attr:`vocab`; silent frames are forced to N."""
        x = torch.from_numpy(model_input(features))[None]
        probs = torch.softmax(self.net(x)[0].float(), dim=-1).numpy()
        probs[features.silent] = 0.0
        probs[features.silent, 0] = 1.0
        return probs

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """config.json + fp16 model.safetensors (the shipped form)."""
        from musigen.hub import save_config, save_weights

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_config(out, self.config)
        save_weights(out, self.net.state_dict(), dtype=torch.float16)
        return out


def load_chord_model(directory: str | os.PathLike[str]) -> ChordRecognizer:
    """Load a recogniser saved by `ChordRecognizer.save_pretrained` (CheckpointError if broken)."""
    from musigen.hub import load_config, load_state_into, load_weights, resolve_dir

    folder = resolve_dir(directory, kind="chord model")
    config = load_config(folder, ChordModelConfig)
    net = ChordNet(config)
    load_state_into(net, load_weights(folder), str(folder))
    return ChordRecognizer(config, net)


# ----------------------------------------------------------------------------- training


@dataclass
class ChordTrainConfig:
    """Optimisation settings; defaults fit ~20 minutes on one (shared) CPU thread."""

    steps: int = 1500
    batch_size: int = 12
    crop_frames: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    grad_clip: float = (
        1.0  # the un-normalised conv stack spikes at the peak learning rate without it
    )
    seed: int = 0
    log_every: int = 100


def frame_targets(
    chords: list[tuple[float, float, str]], n_frames: int, frame_rate: float, vocab: tuple[str, ...]
) -> np.ndarray:
    """Integer class per frame from exact corpus labels (labels outside vocab reduce, then N)."""
    from musigen.chord_matrix import chord_matrix

    return chord_matrix(chords, frame_rate, n_frames, vocab).argmax(axis=1).astype(np.int64)


def train_chord_model(
    examples: list[tuple[np.ndarray, np.ndarray]],
    config: ChordModelConfig,
    train: ChordTrainConfig,
    log: bool = True,
) -> ChordRecognizer:
    """Fit a ChordNet on (model_input [T, 72], targets [T]) pairs with random crops."""
    if not examples:
        raise ValueError("no training examples")
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
    seeds: range,
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
    from musigen.chords import chord_features
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


def _seed_range(text: str) -> range:
    start, _, stop = text.partition(":")
    return range(int(start), int(stop))


def main(argv: list[str] | None = None) -> int:
    """Train the shipped recogniser: `python -m musigen.chord_model --seeds 1000:1200 --out DIR`."""
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m musigen.chord_model", description=main.__doc__)
    parser.add_argument(
        "--seeds",
        type=_seed_range,
        default=_seed_range("1000:1200"),
        help="training seeds start:stop (keep disjoint from eval seeds 90000+)",
    )
    parser.add_argument("--renderers", default="builtin,fluidsynth")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    parser.add_argument("--out", type=Path, required=True)
    for f in dataclasses.fields(ChordTrainConfig):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default
        )
    parser.add_argument("--hidden", type=int, default=ChordModelConfig.hidden)
    parser.add_argument("--self-transition", type=float, default=ChordModelConfig.self_transition)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    config = ChordModelConfig(hidden=args.hidden, self_transition=args.self_transition)
    train = ChordTrainConfig(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(ChordTrainConfig)}
    )
    t0 = time.perf_counter()
    examples = corpus_examples(
        args.seeds, args.renderers.split(","), args.duration, config.vocab, args.cache
    )
    t1 = time.perf_counter()
    print(
        f"{len(examples)} pieces, {sum(len(y) for _, y in examples) / FRAME_RATE / 3600:.2f} h "
        f"of audio prepared in {t1 - t0:.0f} s",
        flush=True,
    )
    model = train_chord_model(examples, config, train)
    print(
        f"trained {sum(p.numel() for p in model.net.parameters())} parameters in "
        f"{time.perf_counter() - t1:.0f} s",
        flush=True,
    )
    model.save_pretrained(args.out)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
