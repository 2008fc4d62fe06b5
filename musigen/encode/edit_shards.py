"""Pre-encoded edit triplets on disk, and the dataset that trains the U-Net from them.

A shard folder holds (written by :mod:`musigen.encode.edit_build`):

- ``index.json``: format, counts, latent size and rate, the codec and text encoder that
  made the data, the chord vocabulary, one entry per shard and per item (instruction,
  task, origin, frames); it is written last, so a folder without it is incomplete;
- ``shard-NNNNN.safetensors``: ``source`` and ``target`` latents ``[D, frames]`` (float16,
  raw codec latents, items concatenated in time), ``chords`` ``[frames]`` (chord index per
  latent frame), ``offsets`` ``[n + 1]`` and ``text_ids`` ``[n]``;
- ``texts.safetensors``: token ``states`` ``[U, L, text_dim]`` and ``mask`` ``[U, L]`` of
  every distinct instruction (cached: the text encoder never runs in training);
- ``latent_stats.safetensors``: per-channel mean/std of this folder's latents.

Latents are stored raw so that any statistics can normalise them; the data module
normalises with the *training* folder's statistics for training and validation alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from musigen.encode.index import read_index
from musigen.errors import ConfigError, DataError
from musigen.instructme.latent_stats import STATS_NAME, LatentStats

FORMAT = "musigen-instructme-shards-v1"
TEXTS_NAME = "texts.safetensors"


def load_stats(directory: str | os.PathLike[str]) -> LatentStats:
    """The latent statistics of a shard folder (the training folder's normalise every split)."""
    return LatentStats.load(Path(directory) / STATS_NAME)


class EditShards(Dataset):
    """Aligned crops of pre-encoded triplets, normalised, ready for `EditDiffusion`.

    Item ``i`` is a dict with ``source``/``target`` ``[D, F]`` normalised latents,
    ``chords`` ``[F, V]`` one-hot, ``text_states`` ``[L, text_dim]`` and ``text_mask``
    ``[L]`` (bool).  ``F = crop_frames`` (every item must be at least that long).  Crops
    are a pure function of ``(seed, epoch, i)``; ``random_crop=False`` takes the start.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        crop_frames: int,
        stats: LatentStats | None = None,
        random_crop: bool = True,
        seed: int = 0,
    ) -> None:
        from safetensors.torch import load_file

        self.directory = Path(directory)
        self.index = read_index(self.directory, FORMAT)
        self.stats = stats or load_stats(self.directory)
        if self.stats.dim != int(self.index["latent_dim"]):
            raise ConfigError(
                f"latent statistics have {self.stats.dim} channels, the data "
                f"{self.index['latent_dim']}"
            )
        self.vocab = tuple(self.index["chord_vocab"])
        texts = load_file(str(self.directory / TEXTS_NAME))
        self.text_states, self.text_mask = texts["states"], texts["mask"].bool()
        self.items: list[tuple[int, int, int, int]] = []  # (shard, start, frames, text id)
        self.shards: list[dict[str, torch.Tensor]] = []
        for k, entry in enumerate(self.index["shards"]):
            data = load_file(str(self.directory / entry["file"]))
            offsets, ids = data["offsets"].tolist(), data["text_ids"].tolist()
            for j, tid in enumerate(ids):
                self.items.append((k, offsets[j], offsets[j + 1] - offsets[j], int(tid)))
            self.shards.append(data)
        if not self.items:
            raise DataError(f"{self.directory} holds no items")
        shortest = min(f for _, _, f, _ in self.items)
        if not isinstance(crop_frames, int) or not 1 <= crop_frames <= shortest:
            raise ConfigError(
                f"crop_frames must be an integer in 1..{shortest} (the shortest item in "
                f"{self.directory}), got {crop_frames!r}"
            )
        self.crop_frames = crop_frames
        self.random_crop = random_crop
        self.seed = int(seed)
        self.epoch = 0

    @property
    def latent_dim(self) -> int:
        return int(self.index["latent_dim"])

    @property
    def text_dim(self) -> int:
        return int(self.text_states.shape[-1])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        shard, start, frames, tid = self.items[i]
        room = frames - self.crop_frames
        offset = 0
        if self.random_crop and room > 0:
            offset = int(np.random.default_rng([self.seed, self.epoch, i]).integers(0, room + 1))
        a, b = start + offset, start + offset + self.crop_frames
        data = self.shards[shard]
        chords = torch.nn.functional.one_hot(data["chords"][a:b].long(), len(self.vocab))
        return {
            "source": self.stats.normalize(data["source"][:, a:b].float()),
            "target": self.stats.normalize(data["target"][:, a:b].float()),
            "chords": chords.float(),
            "text_states": self.text_states[tid].float(),
            "text_mask": self.text_mask[tid],
        }


def collate_edits(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items; instruction states are padded to the longest in the batch (folders pad
    their cached states to different lengths)."""
    width = max(item["text_mask"].shape[0] for item in batch)
    out = {k: torch.stack([item[k] for item in batch]) for k in ("source", "target", "chords")}
    states = torch.zeros(len(batch), width, batch[0]["text_states"].shape[-1])
    mask = torch.zeros(len(batch), width, dtype=torch.bool)
    for i, item in enumerate(batch):
        n = item["text_mask"].shape[0]
        states[i, :n], mask[i, :n] = item["text_states"], item["text_mask"]
    out["text_states"], out["text_mask"] = states, mask
    return out
