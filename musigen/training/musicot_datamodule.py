"""Batches of pre-encoded MusiCoT training examples (see :mod:`musigen.encode.musicot_shards`).

The dataset, its phase batch sampler and collate live in :mod:`musigen.encode.musicot_dataset`.
One example is an excerpt of `crop_s` seconds of a piece: its audio codes, the plan
segments that overlap it (:func:`segments_for_span`, the rule long-form generation uses),
the caption's text states and a *reference*: the coarse thoughts of `ref_segments` other
segments of the same piece, so the model learns style and not copying.

Plans over an excerpt have one of two lengths: ``crop/segment`` when the excerpt starts on a
segment boundary (a piece's first window) or one more when it does not (later long-form
windows). A batch sampler picks one phase per batch, so both are trained and rows agree.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from musigen.encode.musicot_dataset import MusiCoTShards, PhaseBatchSampler, collate

__all__ = ["MusiCoTDataModule", "MusiCoTShards", "PhaseBatchSampler", "collate"]


def _reseed_worker(worker_id: int) -> None:
    """Each loader worker holds a copy of the dataset: give its crop RNG its own stream."""
    info = torch.utils.data.get_worker_info()
    if info is not None:
        info.dataset.rng.seed(info.seed)


class MusiCoTDataModule(L.LightningDataModule):
    """Train (and optional validation) excerpts from pre-encoded folders.

    Data-parallel runs need ``trainer.use_distributed_sampler: false``: the batch sampler
    shards by rank itself (Lightning cannot inject a DistributedSampler into it).
    """

    def __init__(self, train_dir: str, val_dir: str | None = None, crop_s: float = 5.0,
                 batch_size: int = 8, ref_segments: int = 2, ref_levels: int = 1,
                 num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.train_dir, self.val_dir, self.crop_s = train_dir, val_dir, crop_s
        self.batch_size, self.ref_segments, self.ref_levels = batch_size, ref_segments, ref_levels
        self.num_workers, self.seed = num_workers, seed

    def _loader(self, folder: str, seed: int) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        world = self.trainer.world_size if self.trainer is not None else 1
        ds = MusiCoTShards(folder, self.crop_s, self.ref_segments, self.ref_levels,
                           seed + 100_003 * rank)  # crops differ between ranks
        sampler = PhaseBatchSampler(len(ds), self.batch_size, seed, rank, world)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate,
                          num_workers=self.num_workers, worker_init_fn=_reseed_worker)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dir, self.seed)

    def val_dataloader(self) -> Any:
        return [] if self.val_dir is None else self._loader(self.val_dir, 1234)
