"""Training and measurement data for the instrument judge: log-mel windows with exact labels.

Labels come from the corpus' stem activity: an instrument is present in a window when its
stem sounds there for at least `min_on_s`; a shorter overlap (a decaying tail, a single
pickup note) is ambiguous and masked out of the loss and the metrics.  Besides the full
mix, each piece yields random sub-mixes of its stems, so the judge hears instruments in
every combination, including alone, as edited audio will present them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from musigen.errors import ConfigError, DataError
from musigen.vocab import GENRES, INSTRUMENTS

Spans = list[tuple[float, float]]
#: (mono audio, sample rate, rng) -> the same audio through a codec (`ThroughCodec`)
RoundTrip = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


@dataclass
class View:
    """One rendering of a piece for the judge: a mix of some of its stems, as log-mel."""

    features: torch.Tensor  # float16 [n_mels, frames]
    activity: dict[str, Spans]  # only the stems in this view
    genre: int
    n_stems: int
    piece: int


def window_labels(activity: dict[str, Spans], t0: float, t1: float, instruments: Sequence[str],
                  min_on_s: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(labels, mask) per instrument for the window [t0, t1]; mask=0 where ambiguous."""
    labels = np.zeros(len(instruments), np.float32)
    mask = np.ones(len(instruments), np.float32)
    for i, name in enumerate(instruments):
        overlap = sum(max(0.0, min(e, t1) - max(s, t0)) for s, e in activity.get(name, []))
        if overlap >= min_on_s:
            labels[i] = 1.0
        elif overlap > 0:
            mask[i] = 0.0
    return labels, mask


def _load_mono(path: Path, sample_rate: int) -> np.ndarray:
    from musigen.audio import load_audio

    wav, _ = load_audio(path, sample_rate=sample_rate, channels=1)
    return wav[0]


@torch.no_grad()
def build_views(manifest: str | os.PathLike[str], frontend: nn.Module, sample_rate: int, subsets: int,
                seed: int, max_pieces: int | None = None, full_mix: bool = True,
                round_trip: RoundTrip | None = None, round_trip_fraction: float = 0.0,
                round_trip_only: bool = False) -> list[View]:
    """Full mix (optional) plus `subsets` random stem sub-mixes per piece, as log-mel.

    With `round_trip` (audio through a codec, :mod:`musigen.codec_round_trip`), each
    view also gets a round-tripped copy with probability `round_trip_fraction` (training a
    judge for codec outputs), or, with `round_trip_only`, every view is the round trip
    instead (measuring a judge on codec audio). The labels are the clean stems'.
    """
    if not 0.0 <= round_trip_fraction <= 1.0:
        raise ConfigError(f"round_trip_fraction must be in [0, 1], got {round_trip_fraction}")
    if round_trip is None and (round_trip_only or round_trip_fraction > 0):
        raise ConfigError("codec views need a codec (round_trip)")
    from musigen.data.manifest import read_manifest, resolve_paths

    path = Path(manifest)
    records = read_manifest(path)[:max_pieces] if max_pieces else read_manifest(path)
    rng = np.random.default_rng(seed)
    views: list[View] = []
    for p, rec in enumerate(records):
        if "stem_activity" not in rec or "stems" not in rec or "genre" not in rec:
            raise DataError(f"{path}: the judge needs stems, stem_activity and genre in every record")
        stems = {k: sum(_load_mono(q, sample_rate) for q in resolve_paths(path.parent, v))
                 for k, v in rec["stems"].items() if k in INSTRUMENTS}
        activity = {k: [(float(s), float(e)) for s, e in v] for k, v in rec["stem_activity"].items()}
        genre = GENRES.index(rec["genre"]) if rec["genre"] in GENRES else -1
        names = sorted(stems)
        choices: list[list[str]] = [names] if full_mix else []
        for _ in range(subsets if len(names) > 1 else 0):
            k = int(rng.integers(1, len(names)))
            choices.append(sorted(str(x) for x in rng.choice(names, size=k, replace=False)))
        for chosen in choices:
            mix = np.sum([stems[k] for k in chosen], axis=0).astype(np.float32)
            mixes = [] if round_trip_only else [mix]
            if round_trip is not None and (round_trip_only or (round_trip_fraction > 0
                                                     and rng.random() < round_trip_fraction)):
                mixes.append(round_trip(mix, sample_rate, rng))
            for audio in mixes:
                feats = frontend(torch.from_numpy(audio)[None])[0].to(torch.float16)
                views.append(View(feats, {k: activity.get(k, []) for k in chosen}, genre, len(chosen), p))
    if not views:
        raise DataError(f"{path} gave no judge training views")
    return views


def view_weights(views: Sequence[View]) -> np.ndarray:
    """Sampling weights that favour views holding rare instruments (inverse sqrt frequency)."""
    counts: dict[str, int] = {}
    for v in views:
        for k, spans in v.activity.items():
            if spans:
                counts[k] = counts.get(k, 0) + 1
    w = [max([1.0 / np.sqrt(counts[k]) for k, s in v.activity.items() if s] or [1.0 / np.sqrt(len(views))])
         for v in views]
    return np.asarray(w, np.float64)


class RandomWindows(Dataset):
    """Random windows from random views, with gain and light SpecAugment; `length` per epoch."""

    def __init__(self, views: list[View], frames: int, seconds_per_frame: float, length: int,
                 instruments: Sequence[str], min_on_s: float = 0.3, augment: bool = True, seed: int = 0,
                 view_weights: np.ndarray | None = None) -> None:
        self.views, self.frames, self.spf, self.length = views, frames, seconds_per_frame, length
        self.instruments, self.min_on_s, self.augment = list(instruments), min_on_s, augment
        self.seed = seed
        self.p = None if view_weights is None else np.asarray(view_weights, np.float64) / np.sum(view_weights)
        self._rng: np.random.Generator | None = None
        self._rng_key: object = "unset"

    @property
    def rng(self) -> np.random.Generator:
        """A generator per DataLoader worker (workers would otherwise draw identical windows)."""
        info = torch.utils.data.get_worker_info()
        key = (info.id, info.seed) if info is not None else None
        if self._rng is None or key != self._rng_key:
            self._rng = np.random.default_rng([self.seed, (info.seed if info is not None else 0) % 2**32])
            self._rng_key = key
        return self._rng

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        v = self.views[int(self.rng.choice(len(self.views), p=self.p))]
        total = v.features.shape[-1]
        f0 = int(self.rng.integers(0, max(1, total - self.frames + 1)))
        x = v.features[:, f0:f0 + self.frames].float()
        if x.shape[-1] < self.frames:
            x = nn.functional.pad(x, (0, self.frames - x.shape[-1]), value=float(np.log(1e-5)))
        if self.augment:
            x = x + float(self.rng.uniform(-1.4, 1.4))  # about +-6 dB of gain
            if self.rng.random() < 0.5:
                w = int(self.rng.integers(1, 9))
                s = int(self.rng.integers(0, x.shape[0] - w))
                x[s:s + w] = x.mean()
            if self.rng.random() < 0.5:
                w = int(self.rng.integers(1, 21))
                s = int(self.rng.integers(0, max(1, x.shape[1] - w)))
                x[:, s:s + w] = x.mean()
        labels, mask = window_labels(v.activity, f0 * self.spf, (f0 + self.frames) * self.spf,
                                     self.instruments, self.min_on_s)
        genre_mask = float(v.genre >= 0 and v.n_stems >= 2)
        return {"mel": x, "labels": torch.from_numpy(labels), "mask": torch.from_numpy(mask),
                "genre": torch.tensor(max(v.genre, 0)), "genre_mask": torch.tensor(genre_mask)}


class FixedWindows(Dataset):
    """Every window at a fixed hop, for validation and measurement."""

    def __init__(self, views: list[View], frames: int, seconds_per_frame: float, hop_frames: int,
                 instruments: Sequence[str], min_on_s: float = 0.3) -> None:
        self.index = [(i, f0) for i, v in enumerate(views)
                      for f0 in range(0, max(1, v.features.shape[-1] - frames + 1), hop_frames)]
        self.inner = RandomWindows(views, frames, seconds_per_frame, 0, instruments, min_on_s, augment=False)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, f0 = self.index[index]
        v = self.inner.views[i]
        x = v.features[:, f0:f0 + self.inner.frames].float()
        labels, mask = window_labels(v.activity, f0 * self.inner.spf, (f0 + self.inner.frames) * self.inner.spf,
                                     self.inner.instruments, self.inner.min_on_s)
        return {"mel": x, "labels": torch.from_numpy(labels), "mask": torch.from_numpy(mask),
                "genre": torch.tensor(max(v.genre, 0)), "genre_mask": torch.tensor(float(v.genre >= 0 and v.n_stems >= 2))}


def tagging_metrics(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Per-class average precision and ROC AUC over unmasked windows, and their means.

    A class with no positive (or no negative) window has no AP/AUC and is left out of the means.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    per: dict[str, dict[str, float | int | None]] = {}
    for i, name in enumerate(names):
        keep = mask[:, i] > 0
        y, p = labels[keep, i], probs[keep, i]
        pos = int(y.sum())
        ok = 0 < pos < len(y)
        per[name] = {"ap": float(average_precision_score(y, p)) if ok else None,
                     "auc": float(roc_auc_score(y, p)) if ok else None, "positives": pos, "windows": int(len(y))}
    aps = [v["ap"] for v in per.values() if v["ap"] is not None]
    aucs = [v["auc"] for v in per.values() if v["auc"] is not None]
    return {"mAP": float(np.mean(aps)) if aps else None, "mean_auc": float(np.mean(aucs)) if aucs else None,
            "per_class": per}


@torch.no_grad()
def measure_judge(judge: Any, manifest: str | os.PathLike[str], subsets: int = 0, full_mix: bool = True,
                  hop_s: float = 1.5, seed: int = 1234, max_pieces: int | None = None,
                  round_trip: RoundTrip | None = None) -> dict[str, Any]:
    """Per-class AP/AUC, mAP and genre accuracy of a judge on a corpus manifest's windows
    (with `round_trip`: on those windows sent through a codec and back)."""
    cfg = judge.config
    judge.eval()
    views = build_views(manifest, judge.frontend, cfg.sample_rate, subsets, seed, max_pieces, full_mix,
                        round_trip=round_trip, round_trip_only=round_trip is not None)
    spf = cfg.hop_length / cfg.sample_rate
    frames = int(round(cfg.window_s / spf))
    ds = FixedWindows(views, frames, spf, max(1, int(round(hop_s / spf))), cfg.instruments)
    probs, labels, masks, gp, gl, gm = [], [], [], [], [], []
    for b in range(0, len(ds), 64):
        batch = [ds[i] for i in range(b, min(len(ds), b + 64))]
        out = judge(torch.stack([x["mel"] for x in batch]))
        probs.append(torch.sigmoid(out.instrument_logits).numpy())
        gp.append(out.genre_logits.argmax(-1).numpy())
        labels.append(np.stack([x["labels"].numpy() for x in batch]))
        masks.append(np.stack([x["mask"].numpy() for x in batch]))
        gl.append(np.array([int(x["genre"]) for x in batch]))
        gm.append(np.array([float(x["genre_mask"]) for x in batch]))
    result = tagging_metrics(np.concatenate(probs), np.concatenate(labels), np.concatenate(masks), cfg.instruments)
    g_pred, g_true, g_mask = np.concatenate(gp), np.concatenate(gl), np.concatenate(gm) > 0
    result["genre_acc"] = float((g_pred[g_mask] == g_true[g_mask]).mean()) if g_mask.any() else None
    result["n_windows"] = len(ds)
    result["n_pieces"] = len({v.piece for v in views})
    return result


def format_judge_metrics(result: dict[str, Any], title: str) -> str:
    """A Markdown table of per-class AP/AUC with the means and genre accuracy."""
    lines = [f"### {title}", "", f"{result['n_pieces']} pieces, {result['n_windows']} windows", "",
             "| class | AP | AUC | positive windows |", "|---|---|---|---|"]
    for name, v in result["per_class"].items():
        ap = "n/a" if v["ap"] is None else f"{v['ap']:.3f}"
        auc = "n/a" if v["auc"] is None else f"{v['auc']:.3f}"
        lines.append(f"| {name} | {ap} | {auc} | {v['positives']}/{v['windows']} |")
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    lines.append(f"| **mean** | **{fmt(result['mAP'])}** | **{fmt(result['mean_auc'])}** | |")
    lines += ["", f"genre accuracy: {fmt(result['genre_acc'])}", ""]
    return "\n".join(lines)
