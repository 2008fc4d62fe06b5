"""LightningModule and DataModule that train the instrument judge (`musigen.judge.model`).

Loss: BCE over instruments, masked where a window's label is ambiguous, plus a genre
cross-entropy (masked on solo-stem windows, whose genre is often undecidable).  The data
module computes log-mel features once with the model's own front end, so training crops
windows from memory instead of re-running STFTs.  At the end of `fit` the judge is
exported in the hub format (fp16), ready for `musigen eval`.

    musigen train fit --config recipes/judge/demo.yaml
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from musigen.codec_round_trip import ThroughCodec
from musigen.errors import ConfigError
from musigen.judge.data import FixedWindows, RandomWindows, View, build_views, tagging_metrics, view_weights
from musigen.judge.model import InstrumentJudge, JudgeConfig


class JudgeModule(L.LightningModule):
    """Trains `self.judge`; logs val/mAP (instruments) and val/genre_acc."""

    def __init__(self, judge: JudgeConfig | None = None, lr: float = 2e-3, weight_decay: float = 1e-4,
                 genre_weight: float = 0.5, warmup_steps: int = 100, export_dir: str | None = None,
                 export_dtype: str = "float16", init_from: str | None = None) -> None:
        super().__init__()
        if lr <= 0 or warmup_steps < 0 or genre_weight < 0:
            raise ConfigError("lr must be positive; warmup_steps and genre_weight non-negative")
        if export_dtype not in ("float16", "float32"):
            raise ConfigError(f"export_dtype must be float16 or float32, got {export_dtype!r}")
        self.judge = InstrumentJudge(judge or JudgeConfig())
        if init_from:  # continue from an exported judge (same config), e.g. a second, shorter run
            from musigen import hub

            hub.load_state_into(self.judge, hub.load_weights(hub.resolve_dir(init_from, "judge")), init_from)
        self.lr, self.weight_decay, self.genre_weight, self.warmup_steps = lr, weight_decay, genre_weight, warmup_steps
        self.export_dir, self.export_dtype = export_dir, export_dtype
        self._val: list[dict[str, np.ndarray]] = []

    def _losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        out = self.judge(batch["mel"])
        bce = nn.functional.binary_cross_entropy_with_logits(out.instrument_logits, batch["labels"], reduction="none")
        inst = (bce * batch["mask"]).sum() / batch["mask"].sum().clamp_min(1.0)
        ce = nn.functional.cross_entropy(out.genre_logits, batch["genre"], reduction="none")
        genre = (ce * batch["genre_mask"]).sum() / batch["genre_mask"].sum().clamp_min(1.0)
        return inst, genre, out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inst, genre, _ = self._losses(batch)
        loss = inst + self.genre_weight * genre
        self.log_dict({"train/loss": loss, "train/inst_bce": inst, "train/genre_ce": genre},
                      batch_size=batch["mel"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        inst, genre, out = self._losses(batch)
        self.log_dict({"val/inst_bce": inst, "val/genre_ce": genre}, batch_size=batch["mel"].shape[0])
        self._val.append({
            "probs": torch.sigmoid(out.instrument_logits).float().cpu().numpy(),
            "labels": batch["labels"].cpu().numpy(), "mask": batch["mask"].cpu().numpy(),
            "genre_ok": (out.genre_logits.argmax(-1) == batch["genre"]).float().cpu().numpy(),
            "genre_mask": batch["genre_mask"].cpu().numpy(),
        })

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        cat = {k: np.concatenate([v[k] for v in self._val]) for k in self._val[0]}
        self._val.clear()
        m = tagging_metrics(cat["probs"], cat["labels"], cat["mask"], self.judge.config.instruments)
        gm = cat["genre_mask"] > 0
        logs = {"val/mAP": m["mAP"] or 0.0, "val/mean_auc": m["mean_auc"] or 0.0,
                "val/genre_acc": float(cat["genre_ok"][gm].mean()) if gm.any() else 0.0}
        self.log_dict(logs)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.judge.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = self.trainer.max_steps if self.trainer and self.trainer.max_steps and self.trainer.max_steps > 0 else 0

        def schedule(step: int) -> float:
            if step < self.warmup_steps:
                return (step + 1) / max(1, self.warmup_steps)
            if total <= self.warmup_steps:
                return 1.0
            frac = min(1.0, (step - self.warmup_steps) / (total - self.warmup_steps))
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac))

        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                                                   "interval": "step"}}

    def on_fit_end(self) -> None:
        if self.export_dir and self.trainer.is_global_zero:
            dtype = torch.float16 if self.export_dtype == "float16" else torch.float32
            self.judge.save_pretrained(Path(self.export_dir), dtype=dtype)
            print(f"[judge] exported to {self.export_dir}", flush=True)


class JudgeDataModule(L.LightningDataModule):
    """Log-mel windows from corpus manifests (full mixes + random stem sub-mixes)."""

    def __init__(self, train_manifest: str | list[str], val_manifest: str | None = None, batch_size: int = 32,
                 subsets_per_piece: int = 4, windows_per_epoch: int = 3200, val_subsets_per_piece: int = 1,
                 val_hop_s: float = 3.0, min_on_s: float = 0.3, max_pieces: int | None = None,
                 balance_classes: bool = False, num_workers: int = 0, seed: int = 0,
                 codec: str | None = None, codec_fraction: float = 0.0, codec_codebooks: list[int] | None = None,
                 val_codec_fraction: float | None = None) -> None:
        """`codec` (a codec folder): with probability `codec_fraction` a view also gets a copy sent
        through that codec (paths drawn from `codec_codebooks`: 0 = latents, k = k codebooks), so
        the judge learns to hear instruments in codec outputs; validation gets such copies with
        `val_codec_fraction` (default: the same fraction)."""
        super().__init__()
        if batch_size < 1 or windows_per_epoch < 1 or subsets_per_piece < 0 or val_hop_s <= 0 or min_on_s < 0:
            raise ConfigError("batch_size/windows_per_epoch must be positive; subsets, hop and min_on_s non-negative")
        val_fraction = codec_fraction if val_codec_fraction is None else val_codec_fraction
        if not (0 <= codec_fraction <= 1 and 0 <= val_fraction <= 1):
            raise ConfigError("codec_fraction and val_codec_fraction must be in [0, 1]")
        if codec is None and (codec_fraction > 0 or val_fraction > 0):
            raise ConfigError("codec_fraction needs a codec folder (codec: ...)")
        self.codec, self.codec_fraction, self.val_codec_fraction = codec, codec_fraction, val_fraction
        self.codec_codebooks = [0] if codec_codebooks is None else list(codec_codebooks)
        self.train_manifests = [train_manifest] if isinstance(train_manifest, str) else list(train_manifest)
        if not self.train_manifests:
            raise ConfigError("train_manifest needs at least one manifest")
        self.val_manifest = val_manifest
        self.batch_size, self.subsets, self.windows_per_epoch = batch_size, subsets_per_piece, windows_per_epoch
        self.val_subsets, self.val_hop_s, self.min_on_s = val_subsets_per_piece, val_hop_s, min_on_s
        self.max_pieces, self.num_workers, self.seed = max_pieces, num_workers, seed
        self.balance_classes = balance_classes
        self.train_set: RandomWindows | None = None
        self.val_set: FixedWindows | None = None

    def _judge(self) -> InstrumentJudge:
        module = getattr(self.trainer, "lightning_module", None) if self.trainer else None
        if not isinstance(module, JudgeModule):
            raise ConfigError("JudgeDataModule needs a JudgeModule in the same Trainer (it uses its front end)")
        return module.judge

    def _round_trip(self) -> ThroughCodec | None:
        if self.codec is None or self.codec_fraction == self.val_codec_fraction == 0:
            return None  # no codec views wanted: do not load the codec
        return ThroughCodec.from_pretrained(self.codec, self.codec_codebooks)

    def setup(self, stage: str | None = None) -> None:
        judge = self._judge()
        cfg = judge.config
        round_trip = self._round_trip() if self.train_set is None or self.val_set is None else None
        spf = cfg.hop_length / cfg.sample_rate
        frames = int(round(cfg.window_s / spf))
        if self.train_set is None and stage in (None, "fit"):
            views: list[View] = []
            for k, manifest in enumerate(self.train_manifests):  # several corpora: pieces stay distinct
                first = 1 + max((v.piece for v in views), default=-1)
                for v in build_views(manifest, judge.frontend, cfg.sample_rate, self.subsets, self.seed + 7919 * k,
                                     self.max_pieces, round_trip=round_trip,
                                     round_trip_fraction=self.codec_fraction):
                    v.piece += first
                    views.append(v)
            print(f"[judge] {len(views)} training views from {', '.join(self.train_manifests)}", flush=True)
            self.train_set = RandomWindows(views, frames, spf, self.windows_per_epoch, cfg.instruments,
                                           self.min_on_s, augment=True, seed=self.seed,
                                           view_weights=view_weights(views) if self.balance_classes else None)
        if self.val_set is None and self.val_manifest:
            views = build_views(self.val_manifest, judge.frontend, cfg.sample_rate, self.val_subsets, self.seed + 1,
                                round_trip=round_trip, round_trip_fraction=self.val_codec_fraction)
            self.val_set = FixedWindows(views, frames, spf, max(1, int(round(self.val_hop_s / spf))),
                                        cfg.instruments, self.min_on_s)
            print(f"[judge] {len(self.val_set)} validation windows from {self.val_manifest}", flush=True)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return DataLoader(self.train_set, batch_size=self.batch_size, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=64, num_workers=self.num_workers)
