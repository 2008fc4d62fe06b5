"""Data for musigen_clap: corpus windows with their caption and per-window tags.

Each training item is one random window of one piece (so a batch never holds two windows
of the same piece as false negatives).  Its tags come from the manifest: instruments whose
`stem_activity` overlaps the window by at least `min_active_s`, the piece's genre and mood,
and the section that covers most of the window.

The text side is the frozen MiniLM, whose 384-d vectors are computed once per distinct text
(piece captions, tag-built window captions, every tag paraphrase) and cached in a
:class:`TextBank`, so the LightningModule never runs a language model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from musigen.embedders import tags as tagvocab
from musigen.embedders.clap import segment_bounds
from musigen.embedders.tags import window_labels
from musigen.errors import DataError


class TextBank:
    """Frozen-MiniLM sentence vectors, computed once per distinct text and kept in memory.

    Optionally persisted as safetensors (vectors) + the text list, so a resumed run does not
    recompute them.  Ids are stable: equal texts get equal ids (used as multi-positives).
    """

    def __init__(self, cache_file: str | os.PathLike[str] | None = None) -> None:
        self.cache_file = Path(cache_file) if cache_file else None
        self._ids: dict[str, int] = {}
        self._vectors: list[torch.Tensor] = []
        self._encoder: Any = None
        if self.cache_file is not None and self.cache_file.is_file():
            self._load()

    def _load(self) -> None:
        import json

        from safetensors.torch import load_file

        assert self.cache_file is not None
        texts = json.loads(self.cache_file.with_suffix(".json").read_text())
        vectors = load_file(str(self.cache_file))["vectors"]
        for text, vec in zip(texts, vectors, strict=True):
            self._ids[text] = len(self._vectors)
            self._vectors.append(vec)

    def save(self) -> None:
        """Persist the cache (atomically) if a cache file was given."""
        if self.cache_file is None or not self._vectors:
            return
        from safetensors.torch import save_file

        from musigen.atomic import atomic_path, write_json

        with atomic_path(self.cache_file) as tmp:
            save_file({"vectors": torch.stack(self._vectors).contiguous()}, str(tmp))
        write_json(self.cache_file.with_suffix(".json"), list(self._ids))

    def encoder(self) -> Any:
        if self._encoder is None:
            from musigen.embedders.text import shared_minilm

            self._encoder = shared_minilm()
        return self._encoder

    def ids(self, texts: list[str], batch_size: int = 256) -> list[int]:
        """Ids of `texts`, encoding the unseen ones in batches."""
        new = list(dict.fromkeys(t for t in texts if t not in self._ids))
        for i in range(0, len(new), batch_size):
            chunk = new[i : i + batch_size]
            pooled = self.encoder().encode(chunk).pooled.float().cpu()
            for text, vec in zip(chunk, pooled, strict=True):
                self._ids[text] = len(self._vectors)
                self._vectors.append(vec)
        return [self._ids[t] for t in texts]

    def vectors(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(vectors [N, 384], ids [N]) of `texts`."""
        ids = self.ids(texts)
        return torch.stack([self._vectors[i] for i in ids]), torch.tensor(ids)

    def __len__(self) -> int:
        return len(self._vectors)


class ClapWindowDataset(Dataset):
    """Windows of the pieces of a manifest.

    `preload=True` (small corpora, CPU demo) holds every mix in memory as 16-bit floats;
    `preload=False` (large datasets, multi-GPU) seeks each window from disk instead.
    `random_crop=True`: item i is a random window of piece i, a pure function of
    (seed, epoch, i).  `random_crop=False`: the fixed windows of every piece at `hop_s`
    (the evaluation grid of :func:`musigen.embedders.clap.segment_bounds`).
    """

    def __init__(
        self,
        manifest: str | os.PathLike[str],
        window_s: float = 10.0,
        sample_rate: int = 16000,
        random_crop: bool = True,
        hop_s: float | None = None,
        min_active_s: float = 1.0,
        seed: int = 0,
        preload: bool = True,
    ) -> None:
        from musigen.audio import load_audio
        from musigen.data.manifest import read_manifest

        self.manifest = Path(manifest)
        self.records = read_manifest(self.manifest)
        if not self.records:
            raise DataError(f"manifest {self.manifest} holds no records")
        self.window_s, self.sample_rate = float(window_s), int(sample_rate)
        self.window = round(self.window_s * self.sample_rate)
        self.random_crop, self.min_active_s, self.seed, self.epoch = (
            random_crop,
            min_active_s,
            seed,
            0,
        )
        self.audio: list[np.ndarray] | None = None
        if preload:
            self.audio = [
                load_audio(self.manifest.parent / r["path"], self.sample_rate, 1)[0][0].astype(
                    np.float16
                )
                for r in self.records
            ]
        self.lengths = [
            a.shape[0] if self.audio is not None else round(float(r["duration"]) * self.sample_rate)
            for a, r in zip(self.audio or [None] * len(self.records), self.records, strict=True)
        ]
        self.items: list[tuple[int, int]] = []  # (piece, start sample) of the fixed grid
        if not random_crop:
            for p, n in enumerate(self.lengths):
                self.items += [
                    (p, s) for s, _ in segment_bounds(n, self.sample_rate, window_s, hop_s)
                ]

    def _window(self, piece: int, start: int) -> np.ndarray:
        if self.audio is not None:
            return self.audio[piece][start : start + self.window].astype(np.float32)
        from musigen.audio import load_audio_segment

        seconds = min(self.window, self.lengths[piece] - start) / self.sample_rate
        wav, _ = load_audio_segment(
            self.manifest.parent / self.records[piece]["path"],
            start / self.sample_rate,
            seconds,
            self.sample_rate,
            1,
        )
        return wav[0].astype(np.float32)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records) if self.random_crop else len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.random_crop:
            piece = index
            room = self.lengths[piece] - self.window
            rng = np.random.default_rng([self.seed, self.epoch, index])
            start = int(rng.integers(0, room + 1)) if room > 0 else 0
        else:
            piece, start = self.items[index]
        wav = self._window(piece, start)
        if wav.shape[0] < self.window:  # tile short tails, as embed_audio does
            from musigen.embedders.clap import repeat_pad

            wav = repeat_pad(wav, self.window)
        rec = self.records[piece]
        labels = window_labels(
            rec,
            start / self.sample_rate,
            (start + self.window) / self.sample_rate,
            self.min_active_s,
        )
        return {
            "wav": torch.from_numpy(wav),
            "piece": piece,
            "start_s": start / self.sample_rate,
            "caption": rec["caption"],
            "window_caption": labels.caption(),
            "labels": labels,
        }


class ClapDataModule(L.LightningDataModule):
    """Train/val windows plus cached MiniLM vectors for captions and tag texts.

    Each batch carries `wav` [B, T], `text_vec` [B, 384] and `text_id` [B] (the caption of
    each window: the piece caption with probability `p_piece_caption`, else a caption built
    from the window's own tags), tag targets, and `tag_vec` [n_tags, 384]: one text per tag
    of :func:`musigen.embedders.tags.all_tags` — during training a random paraphrase (the
    canonical prompt with probability `p_canonical_tag`), during validation the prompt.
    """

    def __init__(
        self,
        train_manifest: str,
        val_manifest: str | None = None,
        window_s: float = 10.0,
        sample_rate: int = 16000,
        batch_size: int = 32,
        val_hop_s: float = 10.0,
        min_active_s: float = 1.0,
        p_piece_caption: float = 0.5,
        p_canonical_tag: float = 0.5,
        num_workers: int = 0,
        text_cache: str | None = None,
        seed: int = 0,
        preload: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tags = tagvocab.all_tags()
        self.paraphrases = [tagvocab.paraphrases(t) for t in self.tags]
        self.bank = TextBank(text_cache)
        self.train_set: ClapWindowDataset | None = None
        self.val_set: ClapWindowDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = ClapWindowDataset(
                h.train_manifest,
                h.window_s,
                h.sample_rate,
                True,
                min_active_s=h.min_active_s,
                seed=h.seed,
                preload=h.preload,
            )
        if self.val_set is None and h.val_manifest and stage in (None, "fit", "validate"):
            self.val_set = ClapWindowDataset(
                h.val_manifest,
                h.window_s,
                h.sample_rate,
                False,
                hop_s=h.val_hop_s,
                min_active_s=h.min_active_s,
                preload=h.preload,
            )
        # Warm the text cache with every text we know in advance.
        known = [t for group in self.paraphrases for t in group]
        for ds in (self.train_set, self.val_set):
            if ds is not None:
                known += [r["caption"] for r in ds.records]
        self.bank.ids(known)
        self.bank.save()

    def _collate(self, items: list[dict[str, Any]], train: bool) -> dict[str, Any]:
        h = self.hparams
        # Seeded from torch so that seed_everything makes the text choices reproducible.
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)))) if train else None
        texts = [
            it["caption"]
            if (not train or rng.random() < h.p_piece_caption)
            else it["window_caption"]
            for it in items
        ]
        text_vec, text_id = self.bank.vectors(texts)
        if train:
            tag_texts = [
                p[0] if rng.random() < h.p_canonical_tag else p[int(rng.integers(len(p)))]
                for p in self.paraphrases
            ]
        else:
            tag_texts = [t.prompt for t in self.tags]
        tag_vec, _ = self.bank.vectors(tag_texts)
        labels = [it["labels"] for it in items]
        return {
            "wav": torch.stack([it["wav"] for it in items]),
            "text_vec": text_vec,
            "text_id": text_id,
            "tag_vec": tag_vec,
            "instruments": torch.from_numpy(np.stack([lab.instruments for lab in labels])),
            "genre": torch.tensor([lab.genre for lab in labels]),
            "mood": torch.tensor([lab.mood for lab in labels]),
            "section": torch.tensor([lab.section for lab in labels]),
            "piece": torch.tensor([it["piece"] for it in items]),
        }

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup('fit') first"
        self.train_set.set_epoch(self.trainer.current_epoch if self.trainer is not None else 0)
        return DataLoader(
            self.train_set,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.hparams.num_workers,
            collate_fn=lambda b: self._collate(b, True),
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(
            self.val_set,
            batch_size=self.hparams.batch_size,
            shuffle=False,
            num_workers=self.hparams.num_workers,
            collate_fn=lambda b: self._collate(b, False),
        )
