"""LightningDataModule of fixed-length audio crops from JSONL manifests.

Codec training (and anything else that only needs waveforms) reads random crops of a few
seconds from each piece; validation reads fixed crops so that its loss is comparable from
one evaluation to the next.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from musigen.errors import ConfigError


class _EpochCrops(Dataset):
    """`crops_per_item` independent crops of every piece per epoch, new crops each epoch.

    A corpus of a few hundred 20 s pieces gives only a few hundred items per epoch; drawing
    several crops per piece (one dataset per repetition, each with its own seed) keeps epochs
    a useful length without repeating a crop.  Crops stay a pure function of
    (seed, epoch, index), so restarts and workers agree.
    """

    def __init__(self, factory: "_DatasetFactory", crops_per_item: int) -> None:
        self.parts = [factory(seed=r) for r in range(crops_per_item)]

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            part.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.parts[0]) * len(self.parts)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self.parts[0])
        item = self.parts[index // n][index % n]
        return {"wav": torch.as_tensor(item["wav"]).float()}


class _DatasetFactory:
    """Builds a `ManifestDataset` with fixed settings and a given seed."""

    def __init__(self, manifest: str, segment_s: float, sample_rate: int, channels: int, random_crop: bool,
                 base_seed: int) -> None:
        self.kw = dict(manifest=manifest, segment_s=segment_s, sample_rate=sample_rate, channels=channels,
                       random_crop=random_crop)
        self.base_seed = base_seed

    def __call__(self, seed: int) -> Dataset:
        from musigen.data.manifest import ManifestDataset

        return ManifestDataset(**self.kw, with_stems=False, seed=self.base_seed + 1009 * seed)


class AudioDataModule(L.LightningDataModule):
    """Random crops for training, fixed crops for validation."""

    def __init__(
        self,
        train_manifest: str,
        val_manifest: str | None = None,
        segment_s: float = 1.0,
        sample_rate: int = 16000,
        channels: int = 1,
        batch_size: int = 8,
        num_workers: int = 0,
        crops_per_item: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if segment_s <= 0 or batch_size < 1 or num_workers < 0 or crops_per_item < 1:
            raise ConfigError("segment_s, batch_size and crops_per_item must be positive, num_workers >= 0")
        self.train_manifest, self.val_manifest = train_manifest, val_manifest
        self.segment_s, self.sample_rate, self.channels = segment_s, sample_rate, channels
        self.batch_size, self.num_workers = batch_size, num_workers
        self.crops_per_item, self.seed = crops_per_item, seed
        self.train_set: _EpochCrops | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            factory = _DatasetFactory(self.train_manifest, self.segment_s, self.sample_rate, self.channels,
                                      random_crop=True, base_seed=self.seed)
            self.train_set = _EpochCrops(factory, self.crops_per_item)
        if self.val_manifest and self.val_set is None:
            factory = _DatasetFactory(self.val_manifest, self.segment_s, self.sample_rate, self.channels,
                                      random_crop=False, base_seed=self.seed)
            self.val_set = _EpochCrops(factory, 1)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup() first"
        if self.trainer is not None:
            self.train_set.set_epoch(self.trainer.current_epoch)
        generator = torch.Generator().manual_seed(self.seed + (self.trainer.current_epoch if self.trainer else 0))
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True,
                          num_workers=self.num_workers, generator=generator,
                          persistent_workers=False)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
