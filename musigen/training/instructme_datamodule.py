"""LightningDataModule of pre-encoded InstructME triplets (see `musigen.encode.edit_shards`).

If a shard folder is missing and the recipe says how to build it (`build_train`,
`build_val`), `prepare_data` builds it first: the debug recipe builds its own tiny set on a
random codec, the demo recipe its set on the demo codec.  Both splits are normalised with
the training folder's latent statistics, which the LightningModule saves with the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader

from musigen.errors import ConfigError
from musigen.encode.edit_build import ShardBuildConfig, build_shards
from musigen.encode.edit_shards import FORMAT, EditShards, collate_edits, load_stats
from musigen.encode.index import INDEX_NAME, read_index
from musigen.instructme.latent_stats import LatentStats


class InstructMEDataModule(L.LightningDataModule):
    """Random aligned crops of (source, target) latents with chords and cached text states."""

    def __init__(
        self,
        train_dir: str | list[str],
        val_dir: str | None = None,
        crop_frames: int = 256,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        build_train: ShardBuildConfig | None = None,
        build_val: ShardBuildConfig | None = None,
    ) -> None:
        super().__init__()
        if crop_frames < 1 or batch_size < 1 or num_workers < 0:
            raise ConfigError("crop_frames and batch_size must be positive, num_workers >= 0")
        if build_val is not None and val_dir is None:
            raise ConfigError("build_val needs val_dir")
        self.train_dir, self.val_dir = train_dir, val_dir
        self.crop_frames, self.batch_size = crop_frames, batch_size
        self.num_workers, self.seed = num_workers, seed
        self.build_train, self.build_val = build_train, build_val
        self.train_set: ConcatDataset | None = None
        self.val_set: EditShards | None = None
        self.stats: LatentStats | None = None
        self.info: dict[str, Any] = {}

    @property
    def train_dirs(self) -> list[str]:
        """One folder, or several (e.g. written by parallel pre-encoding jobs)."""
        return [self.train_dir] if isinstance(self.train_dir, str) else list(self.train_dir)

    def prepare_data(self) -> None:
        if self.build_train is not None and len(self.train_dirs) != 1:
            raise ConfigError("build_train builds one folder; give a single train_dir, or build the "
                              "folders first and set build_train: null")
        for directory, build in ((self.train_dirs[0], self.build_train),
                                 (self.val_dir, self.build_val)):
            if directory and build is not None and not (Path(directory) / INDEX_NAME).is_file():
                print(f"[instructme] building {build.n + build.n_stems} sequences into "
                      f"{directory}", flush=True)
                build_shards(build, directory, progress=False)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        first = self.train_dirs[0]
        self.stats = load_stats(first)  # the first folder's statistics serve all of them
        index = read_index(first, FORMAT)
        self.info = {k: v for k, v in index.items() if k not in ("items", "shards", "build")}
        for other in self.train_dirs[1:] + ([self.val_dir] if self.val_dir else []):
            _check_compatible(read_index(other, FORMAT), index, other, first)
        self.train_set = ConcatDataset([
            EditShards(d, self.crop_frames, self.stats, True, self.seed + 7919 * k)
            for k, d in enumerate(self.train_dirs)
        ])
        if self.val_dir:
            self.val_set = EditShards(self.val_dir, self.crop_frames, self.stats, False, self.seed)
        print(f"[instructme] {len(self.train_set)} training items"
              + (f", {len(self.val_set)} validation items" if self.val_set else ""), flush=True)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup() first"
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        for part in self.train_set.datasets:
            part.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True,
                          drop_last=len(self.train_set) > self.batch_size,
                          num_workers=self.num_workers, generator=generator,
                          collate_fn=collate_edits)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers, collate_fn=collate_edits)


def _check_compatible(index: dict[str, Any], reference: dict[str, Any], where: str,
                      ref_where: str) -> None:
    for key in ("latent_dim", "frame_rate", "chord_vocab", "codec", "text_dim"):
        if _identity(index, key) != _identity(reference, key):
            raise ConfigError(
                f"edit data in {where} differs from {ref_where} in {key!r}: "
                f"{index.get(key)!r} vs {reference.get(key)!r}"
            )


def _identity(index: dict[str, Any], key: str) -> Any:
    """What must agree between training and validation data; a random codec is identified by
    its spec (it is rebuilt from a fixed seed, and each folder keeps its own copy)."""
    if key == "codec" and str(index.get("codec_spec", "")).startswith("random:"):
        return index["codec_spec"]
    return index.get(key)
