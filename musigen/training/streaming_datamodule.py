"""Streaming LightningDataModule over litdata shards written by `musigen encode shards`.

API (stable; other code may rely on it):

    from musigen.training.streaming_datamodule import StreamingShardDataModule

    dm = StreamingShardDataModule(
        train_dir="data/shards/train",        # local folder or s3://bucket/prefix (litdata)
        task="musicot",                       # "musicot" | "instructme"
        batch_size=8, num_workers=0, seed=0,
        val_dir=None, shuffle=True,
        crop_s=5.0, ref_segments=2, ref_levels=1,   # task="musicot"
        crop_frames=256,                             # task="instructme"
        cache_dir=None, storage_options=None,        # remote data only
    )
    trainer.fit(module, datamodule=dm)        # the position is saved in the .ckpt ...
    trainer.fit(module, datamodule=dm, ckpt_path="last.ckpt")   # ... and restored here

    dm.setup("fit"); loader = dm.train_dataloader()  # a litdata StreamingDataLoader
    state = dm.state_dict()      # {"train_loader": <loader state>, ...}; after n batches
    dm2.load_state_dict(state)   # a fresh module's first train_dataloader() continues
                                 # with batch n + 1: no sample is re-seen or skipped
    dm.info                      # the folder's metadata (index.json "musigen" entry)
    dm.stats                     # LatentStats for task="instructme" (None otherwise)

Batches are the ones the in-memory data modules give, so the existing LightningModules
train on them unchanged:
- "musicot": codes [B, K, T] long, plan [B, P], ref [B, R], text_states [B, L, D],
  text_mask [B, L] (see :mod:`musigen.training.musicot_datamodule`);
- "instructme": source/target [B, D, F] normalised latents, chords [B, F, V] one-hot,
  text_states [B, L, D], text_mask [B, L] (see :mod:`musigen.encode.edit_shards`).

Why litdata: its StreamingDataLoader has a ``state_dict`` that records how many samples each
worker has produced in the current epoch (with the shuffle seed), which is exactly the
mid-epoch position a resumed run needs; WebDataset would leave that bookkeeping to us.
Crops, plan phases and references are pure functions of (seed, epoch, item keys), so the
resumed batches are the very ones the interrupted run would have produced.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from litdata import StreamingDataLoader, StreamingDataset

from musigen.errors import ConfigError, DataError
from musigen.encode.edit_shards import collate_edits
from musigen.instructme.latent_stats import LatentStats
from musigen.musicot.thoughts import ThoughtLayout
from musigen.training.musicot_datamodule import MusiCoTShards, collate

TASKS: dict[str, tuple[str, ...]] = {"musicot": ("codes", "thoughts", "text"),
                                     "instructme": ("edits",)}


def is_remote(path: str) -> bool:
    """An object-store URL (s3://, gs://, azure://, ...) rather than a local folder."""
    return "://" in path and not path.startswith("local:")


class _OnePiece(MusiCoTShards):
    """MusiCoTShards over one streamed piece: reuses its excerpt/plan/reference rule."""

    def __init__(self, codes: torch.Tensor, thoughts: torch.Tensor, text: torch.Tensor,
                 usable: int, crop: int, segment_frames: float, layout: ThoughtLayout,
                 ref_segments: int, ref_levels: int, rng: random.Random) -> None:
        self.items = [(codes, thoughts, text, usable)]
        self.crop, self.segment_frames, self.layout = crop, segment_frames, layout
        self.ref_segments, self.ref_levels, self.rng = ref_segments, ref_levels, rng


class MusiCoTCollate:
    """Raw streamed pieces -> the batch of :func:`musigen.training.musicot_datamodule.collate`.

    One plan phase per batch (as PhaseBatchSampler), drawn from (seed, epoch, keys); each
    excerpt from (seed, epoch, key): a resumed run rebuilds the very same batches.
    """

    def __init__(self, info: dict[str, Any], crop_s: float, ref_segments: int, ref_levels: int,
                 seed: int) -> None:
        self.segment_frames = float(info["segment_s"]) * float(info["frame_rate"])
        self.crop = round(crop_s * float(info["frame_rate"]))
        self.layout = ThoughtLayout(int(info["thought_levels"]), int(info["thought_codebook_size"]))
        self.ref_segments, self.ref_levels, self.seed = ref_segments, ref_levels, seed

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        epoch = items[0].get("epoch", 0)
        keys = ",".join(it["key"] for it in items)
        aligned = random.Random(f"{self.seed}:{epoch}:{keys}").random() < 0.5
        rows = []
        for it in items:
            codes, thoughts = it["codes"].long(), it["thoughts"].long()
            usable = min(codes.shape[-1], int(thoughts.shape[0] * self.segment_frames))
            if usable < self.crop:
                continue  # shorter than one excerpt (encode with --min-duration to avoid)
            piece = _OnePiece(codes, thoughts, it["text"].float(), usable, self.crop,
                              self.segment_frames, self.layout, self.ref_segments,
                              self.ref_levels, random.Random(f"{self.seed}:{epoch}:{it['key']}"))
            rows.append(piece[(0, aligned)])
        if not rows:
            raise DataError(f"no piece in this batch is longer than the {self.crop}-frame crop")
        return collate(rows)


class EditCollate:
    """Raw streamed triplets -> the batch of :func:`musigen.encode.edit_shards.collate_edits`."""

    def __init__(self, stats: LatentStats, crop_frames: int, vocab_size: int, seed: int,
                 random_crop: bool = True) -> None:
        self.stats, self.crop, self.vocab = stats, crop_frames, vocab_size
        self.seed, self.random_crop = seed, random_crop

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = []
        for it in items:
            room = it["source"].shape[-1] - self.crop
            offset = 0
            if self.random_crop and room > 0:
                rng = np.random.default_rng([self.seed, it.get("epoch", 0), it["index"]])
                offset = int(rng.integers(0, room + 1))
            a, b = offset, offset + self.crop
            rows.append({
                "source": self.stats.normalize(it["source"][:, a:b].float()),
                "target": self.stats.normalize(it["target"][:, a:b].float()),
                "chords": torch.nn.functional.one_hot(it["chords"][a:b].long(), self.vocab).float(),
                "text_states": it["text"].float(),
                "text_mask": torch.ones(it["text"].shape[0], dtype=torch.bool),
            })
        return collate_edits(rows)


class EpochTaggedDataset(StreamingDataset):
    """A StreamingDataset whose items carry the epoch they were drawn in (crops depend on it)."""

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        if isinstance(item, dict):
            item["epoch"] = int(self.current_epoch)
        return item


def _dataset(path: str, shuffle: bool, seed: int, cache_dir: str | None,
             storage_options: dict[str, Any] | None) -> EpochTaggedDataset:
    if not is_remote(path) and not (Path(path) / "index.json").is_file():
        raise DataError(f"no encoded shards in {path} (run `musigen encode shards`)")
    return EpochTaggedDataset(path, cache_dir=cache_dir, shuffle=shuffle, seed=seed,
                       storage_options=storage_options or {})


def _index_of(path: str, dataset: Any) -> dict[str, Any]:
    """The folder's index.json (for a remote folder, the copy litdata downloaded)."""
    import json

    from musigen.encode.index import read_index
    from musigen.encode.litdata_shards import FORMAT

    if not is_remote(path):
        return read_index(path, FORMAT)
    local = Path(dataset.input_dir.path or "") / "index.json"
    index = json.loads(local.read_text()) if local.is_file() else {}
    if index.get("format") != FORMAT:
        raise DataError(f"{path} is not a folder written by `musigen encode shards`")
    return index


class StreamingShardDataModule(L.LightningDataModule):
    """Batches streamed from encoded shards; the mid-epoch position is checkpointed."""

    def __init__(self, train_dir: str, task: str = "musicot", val_dir: str | None = None,
                 batch_size: int = 8, num_workers: int = 0, seed: int = 0, shuffle: bool = True,
                 crop_s: float = 5.0, ref_segments: int = 2, ref_levels: int = 1,
                 crop_frames: int = 256, cache_dir: str | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if batch_size < 1 or num_workers < 0 or crop_s <= 0 or crop_frames < 1:
            raise ConfigError("batch_size, crop_s and crop_frames must be positive, "
                              "num_workers >= 0")
        self.train_dir, self.val_dir, self.task = str(train_dir), val_dir, task
        self.batch_size, self.num_workers, self.seed, self.shuffle = (
            batch_size, num_workers, seed, shuffle)
        self.crop_s, self.ref_segments, self.ref_levels = crop_s, ref_segments, ref_levels
        self.crop_frames, self.cache_dir, self.storage_options = (
            crop_frames, cache_dir, storage_options)
        self.info: dict[str, Any] = {}
        self.stats: LatentStats | None = None
        self._train_loader: Any = None
        self._pending_state: dict[str, Any] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.info:
            return
        probe = _dataset(self.train_dir, False, self.seed, self.cache_dir, self.storage_options)
        index = _index_of(self.train_dir, probe)
        self.info = {k: v for k, v in index.items() if k not in ("chunks", "config")}
        missing = [w for w in TASKS[self.task] if w not in self.info["what"]]
        if missing:
            raise ConfigError(f"{self.train_dir} lacks {', '.join(missing)} for task "
                              f"{self.task!r} (encoded: {', '.join(self.info['what'])})")
        frames = int(self.info["min_frames"])
        crop = (self.crop_frames if self.task == "instructme"
                else round(self.crop_s * float(self.info["frame_rate"])))
        if crop > frames:
            raise ConfigError(f"the crop ({crop} frames) is longer than the shortest item in "
                              f"{self.train_dir} ({frames} frames)")
        if self.task == "instructme":
            self.stats = LatentStats(torch.tensor(self.info["latent_mean"]),
                                     torch.tensor(self.info["latent_std"]))

    def _collate(self, train: bool) -> Any:
        if self.task == "musicot":
            return MusiCoTCollate(self.info, self.crop_s, self.ref_segments, self.ref_levels,
                                  self.seed if train else 1234)
        assert self.stats is not None
        return EditCollate(self.stats, self.crop_frames, len(self.info["chord_vocab"]),
                           self.seed, random_crop=train)

    def train_dataloader(self) -> Any:
        self.setup("fit")
        ds = _dataset(self.train_dir, self.shuffle, self.seed, self.cache_dir,
                      self.storage_options)
        loader = StreamingDataLoader(ds, batch_size=self.batch_size, num_workers=self.num_workers,
                                     collate_fn=self._collate(True))
        if self._pending_state is not None:
            loader.load_state_dict(self._pending_state)
            self._pending_state = None
        self._train_loader = loader
        return loader

    def val_dataloader(self) -> Any:
        if self.val_dir is None:
            return []
        self.setup("fit")
        ds = _dataset(self.val_dir, False, self.seed, self.cache_dir, self.storage_options)
        return StreamingDataLoader(ds, batch_size=self.batch_size, num_workers=self.num_workers,
                                   collate_fn=self._collate(False))

    def state_dict(self) -> dict[str, Any]:
        """The training loader's position (saved by Lightning into every checkpoint)."""
        if self._pending_state is not None:  # restored but not yet iterated
            return {"train_loader": self._pending_state}
        if self._train_loader is not None:
            return {"train_loader": self._train_loader.state_dict()}
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue from a saved position: the next `train_dataloader()` starts there."""
        loader_state = state_dict.get("train_loader")
        if loader_state is None:
            return
        if self._train_loader is not None:
            self._train_loader.load_state_dict(loader_state)
        else:
            self._pending_state = loader_state
