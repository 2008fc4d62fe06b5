"""Edit triplets from manifests with stems: the real-data path (Slakh2100, MUSDB18-HQ,
MoisesDB through :mod:`musigen.data.stems`, or the corpus written to disk).

Add, remove and extract are exact stem arithmetic on one crop:

- remove X: source = all stems, target = all stems but X;
- add X: the same pair the other way round;
- extract X: source = all stems, target = X alone.

The source is the *sum of the stems* (classes and extra stems such as vocals), not the
mix file, so the arithmetic holds even where a dataset's mix was mastered separately.
Extra stems stay in every mix but are never edited (they have no class of ours).

Replace is not built here: these datasets hold one performance of each part and no
stand-in; re-rendering Slakh's MIDI with our synthesiser would put a synthetic timbre
next to real ones and teach a timbre jump.  Replace and the remixes come from the corpus
(:mod:`musigen.data.triplets`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from musigen.data.synth.render import activity
from musigen.data.triplets import Triplet
from musigen.errors import ConfigError
from musigen.edits import EditOp, render_instruction
from musigen.vocab import INSTRUMENTS

#: Tasks this path can build exactly.
STEM_TASKS: tuple[str, ...] = ("add", "remove", "extract")


@dataclass
class StemTripletConfig:
    """Crops and tasks for manifest triplets."""

    segment_s: float = 10.0
    sample_rate: int = 16000
    tasks: tuple[str, ...] = STEM_TASKS
    crops_per_track: int = 1
    min_active_s: float = 1.0  # a stem "sounds" in a crop when active this long
    paraphrase: float = 0.7
    synonyms: float = 0.3
    headroom: float = 0.95

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        bad = [t for t in self.tasks if t not in STEM_TASKS]
        if bad or not self.tasks:
            raise ConfigError(
                f"stem triplets support {', '.join(STEM_TASKS)} only (replace and remixes need "
                f"the corpus renderer), got {list(self.tasks)}"
            )
        if not (math.isfinite(self.segment_s) and self.segment_s > 0) or self.crops_per_track < 1:
            raise ConfigError("segment_s must be positive and crops_per_track at least 1")
        if not 0 < self.headroom <= 1:
            raise ConfigError("headroom must be in (0, 1]")


class StemTriplets:
    """Triplets from the crops of a stems manifest; item i is a pure function of (seed, i).

    Item ``i`` uses track ``i % n_tracks`` and crop ``i // n_tracks``; :meth:`triplet`
    returns None when that crop has fewer than two sounding classes (no edit is possible).
    """

    def __init__(
        self, manifest: str | os.PathLike[str], config: StemTripletConfig | None = None,
        seed: int = 0,
    ) -> None:
        from musigen.data.manifest import ManifestDataset

        self.config = c = config or StemTripletConfig()
        self.seed = int(seed)
        self.crops = [
            ManifestDataset(manifest, c.segment_s, c.sample_rate, channels=1, with_stems=True,
                            random_crop=True, seed=self.seed * 1009 + r)
            for r in range(c.crops_per_track)
        ]

    def __len__(self) -> int:
        return len(self.crops[0]) * len(self.crops)

    def _sounding(self, stems: dict[str, np.ndarray]) -> list[str]:
        sr = self.config.sample_rate
        return [k for k in INSTRUMENTS if k in stems
                and sum(e - s for s, e in activity(stems[k], sr)) >= self.config.min_active_s]

    def triplet(self, index: int) -> Triplet | None:
        """The triplet of item `index`, or None if its crop cannot be edited."""
        c = self.config
        n = len(self.crops[0])
        dataset = self.crops[(index // n) % len(self.crops)]
        item = dataset[index % n]
        record = dataset.records[index % n]
        stems = {k: v[0].numpy() for k, v in item["stems"].items()}
        extras = {k: v[0].numpy() for k, v in item.get("extra_stems", {}).items()}
        on = self._sounding(stems)
        if len(on) < 2:
            return None
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, int(index)])
        task = c.tasks[int(rng.integers(len(c.tasks)))]
        x = on[int(rng.integers(len(on)))]
        full = {**stems, **extras}
        if task == "extract":
            src, tgt = full, {x: stems[x]}
        elif task == "remove":
            src, tgt = full, {k: v for k, v in full.items() if k != x}
        else:
            src, tgt = {k: v for k, v in full.items() if k != x}, full
        source, target = _sum(src), _sum(tgt)
        peak = max(float(np.max(np.abs(source))), float(np.max(np.abs(target))))
        gain = np.float32(min(1.0, c.headroom / peak) if peak > 0 else 1.0)
        op = EditOp(task, instrument=x)
        start = float(item["start_s"])
        chords = [(float(s), float(e), str(lab)) for s, e, lab in item["chords"]] or None
        return Triplet(
            source=source * gain, target=target * gain,
            instruction=render_instruction(op, rng, c.paraphrase, c.synonyms), op=op,
            sample_rate=c.sample_rate, chords=chords if "chords" in record else None,
            sections=[(float(s), float(e), str(lab)) for s, e, lab in item["sections"]],
            source_instruments=tuple(k for k in on if k in src),
            target_instruments=tuple(k for k in on if k in tgt),
            source_genre=record.get("genre"), target_genre=record.get("genre"),
            origin=f"{record.get('source', 'manifest')}:{record.get('track_id', record['path'])}"
                   f"@{start:.3f}",
            source_stems={k: v * gain for k, v in src.items()},
            target_stems={k: v * gain for k, v in tgt.items()},
        )

    def iter_triplets(self, n: int | None = None) -> Iterator[Triplet]:
        """Up to `n` triplets (all items if None), skipping crops that cannot be edited."""
        made = 0
        for i in range(len(self)):
            if n is not None and made >= n:
                return
            t = self.triplet(i)
            if t is not None:
                made += 1
                yield t


def _sum(stems: dict[str, np.ndarray]) -> np.ndarray:
    out = np.zeros_like(next(iter(stems.values())), dtype=np.float32)
    for v in stems.values():
        out += v
    return out
