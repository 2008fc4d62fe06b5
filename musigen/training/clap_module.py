"""Training musigen_clap: caption InfoNCE plus per-tag losses for zero-shot tagging.

Why more than InfoNCE: zero-shot instrument tagging ranks *windows* for one tag text, and
a caption InfoNCE alone never asks "which windows have piano?" — captions name many
instruments at once and batches rarely contrast them.  So each step also scores every
window against one text per tag (:func:`musigen.embedders.tags.all_tags`):

- caption loss: symmetric InfoNCE; windows whose texts are identical are all positives
  (multi-positive targets), so duplicated tag-built captions are not false negatives;
- instruments (multi-label): a SigLIP-style binary loss per (window, instrument text),
  with its own learned scale and bias — exactly the per-class ranking that mAP measures;
- genre, mood, section (one label each): softmax cross-entropy over the category's texts,
  which is the zero-shot argmax used for genre accuracy.

Tag texts are random paraphrases during training, the canonical prompts at validation.
The scale/bias of the tag losses live here, not in the exported model: they do not change
any cosine ranking.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
import torch
from torch import nn

from musigen.embedders import tags as tagvocab
from musigen.embedders.musigen_clap import MusigenClap, MusigenClapConfig
from musigen.embedders.tag_metrics import average_precision
from musigen.errors import CheckpointError, ConfigError


@dataclass
class ClapLossConfig:
    """Weights of the loss terms."""

    caption: float = 1.0
    instrument: float = 1.0
    genre: float = 0.5
    mood: float = 0.5
    section: float = 0.25


@dataclass
class ClapOptimConfig:
    """AdamW with linear warm-up then cosine decay to `min_lr_ratio` at `total_steps`."""

    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    total_steps: int = 3000
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    gain_db: float = 6.0  # random gain augmentation, +/- this many dB per window


T = TypeVar("T")


def _as(cls: type[T], value: T | dict[str, Any] | None) -> T:
    """Accept a config dataclass, its dict form (from a checkpoint) or None (defaults)."""
    if value is None:
        return cls()
    if isinstance(value, dict):
        return cls(**value)
    if not isinstance(value, cls):
        raise ConfigError(f"expected {cls.__name__} or a dict, got {type(value).__name__}")
    return value


class ClapModule(L.LightningModule):
    """LightningModule around :class:`MusigenClap` (the model knows nothing of Lightning)."""

    def __init__(
        self,
        arch: MusigenClapConfig | None = None,
        loss: ClapLossConfig | None = None,
        optim: ClapOptimConfig | None = None,
    ) -> None:
        super().__init__()
        self.arch = _as(MusigenClapConfig, arch)
        self.loss_cfg = _as(ClapLossConfig, loss)
        self.optim_cfg = _as(ClapOptimConfig, optim)
        # Plain dicts, so that checkpoints open with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "arch": asdict(self.arch),
                "loss": asdict(self.loss_cfg),
                "optim": asdict(self.optim_cfg),
            }
        )
        arch = self.arch
        self.model = MusigenClap(arch)
        tags = tagvocab.all_tags()
        self.slices: dict[str, slice] = {}
        for cat in tagvocab.CATEGORIES:
            idx = [i for i, t in enumerate(tags) if t.category == cat]
            self.slices[cat] = slice(idx[0], idx[-1] + 1)
        self.tag_log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.instrument_bias = nn.Parameter(torch.tensor(-2.0))
        self._val: list[dict[str, torch.Tensor]] = []

    # ------------------------------------------------------------------ losses
    def losses(
        self, batch: dict[str, Any], audio: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Every loss term for one batch (also used by tests)."""
        a = self.model.encode_audio(batch["wav"]) if audio is None else audio
        c = self.model.project_text(batch["text_vec"])
        t = self.model.project_text(batch["tag_vec"])
        out: dict[str, torch.Tensor] = {}

        scale = self.model.logit_scale.exp().clamp(max=100.0)
        logits = scale * a @ c.T
        same = (batch["text_id"][:, None] == batch["text_id"][None, :]).float()
        targets = same / same.sum(1, keepdim=True)
        out["caption"] = 0.5 * (
            nn.functional.cross_entropy(logits, targets)
            + nn.functional.cross_entropy(logits.T, targets.T)
        )

        sims = a @ t.T  # [B, n_tags]
        tag_scale = self.tag_log_scale.exp().clamp(max=100.0)
        inst = sims[:, self.slices["instrument"]] * tag_scale + self.instrument_bias
        out["instrument"] = nn.functional.binary_cross_entropy_with_logits(
            inst, batch["instruments"].float()
        )
        for cat in ("genre", "mood", "section"):
            target = batch[cat]
            if (target >= 0).any():
                out[cat] = nn.functional.cross_entropy(
                    sims[:, self.slices[cat]] * tag_scale, target, ignore_index=-1
                )
        weights = {
            "caption": self.loss_cfg.caption,
            "instrument": self.loss_cfg.instrument,
            "genre": self.loss_cfg.genre,
            "mood": self.loss_cfg.mood,
            "section": self.loss_cfg.section,
        }
        out["total"] = sum(weights[k] * v for k, v in out.items())
        return out

    def _augment(self, wav: torch.Tensor) -> torch.Tensor:
        if self.optim_cfg.gain_db <= 0:
            return wav
        db = (torch.rand(wav.shape[0], 1, device=wav.device) * 2 - 1) * self.optim_cfg.gain_db
        return wav * (10 ** (db / 20))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        batch = dict(batch, wav=self._augment(batch["wav"]))
        terms = self.losses(batch)
        for k, v in terms.items():
            self.log(f"train/{k}", v, prog_bar=k == "total", batch_size=batch["wav"].shape[0])
        self.log(
            "train/logit_scale", self.model.logit_scale.exp(), batch_size=batch["wav"].shape[0]
        )
        return terms["total"]

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        a = self.model.encode_audio(batch["wav"])
        terms = self.losses(batch, audio=a)
        self.log("val/loss", terms["total"], batch_size=a.shape[0])
        t = self.model.project_text(batch["tag_vec"])
        self._val.append(
            {
                "sims": (a @ t.T).cpu(),
                "instruments": batch["instruments"].cpu(),
                "genre": batch["genre"].cpu(),
            }
        )

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        sims = torch.cat([v["sims"] for v in self._val])
        inst = torch.cat([v["instruments"] for v in self._val])
        genre = torch.cat([v["genre"] for v in self._val])
        self._val.clear()
        inst_sims = sims[:, self.slices["instrument"]]
        aps = [
            average_precision(inst_sims[:, k], inst[:, k])
            for k in range(inst.shape[1])
            if 0 < inst[:, k].sum() < len(inst)
        ]
        if aps:
            self.log("val/inst_map", sum(aps) / len(aps))
        known = genre >= 0
        if known.any():
            pred = sims[:, self.slices["genre"]].argmax(-1)
            self.log("val/genre_acc", (pred[known] == genre[known]).float().mean())

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_cfg
        decay, no_decay = [], []
        for p in self.parameters():
            (decay if p.ndim >= 2 else no_decay).append(p)
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
        )

        def factor(step: int) -> float:
            if step < cfg.warmup_steps:
                return (step + 1) / cfg.warmup_steps
            progress = min(
                1.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps)
            )
            return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (
                1 + math.cos(math.pi * progress)
            )

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: Any = None, gradient_clip_algorithm: Any = None
    ) -> None:
        self.clip_gradients(
            optimizer, gradient_clip_val=self.optim_cfg.grad_clip, gradient_clip_algorithm="norm"
        )


def load_training_checkpoint(ckpt_path: str | os.PathLike[str]) -> MusigenClap:
    """Rebuild the trained :class:`MusigenClap` (float32) from a ClapModule checkpoint."""
    from musigen.hub import load_state_into

    from musigen.hub import read_training_checkpoint

    path = Path(ckpt_path)
    ckpt = read_training_checkpoint(path)
    arch = (ckpt.get("hyper_parameters") or {}).get("arch")
    if not isinstance(arch, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a ClapModule checkpoint (no arch hyper-parameters)")
    try:
        model = MusigenClap(MusigenClapConfig(**arch))
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: bad arch hyper-parameters: {exc}") from None
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    load_state_into(model, state, str(path))
    return model.eval()


def export(
    ckpt_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], dtype: str = "float16"
) -> Path:
    """Write the shipped form (config.json + safetensors, fp16 by default) of a checkpoint."""
    if dtype not in ("float16", "bfloat16", "float32"):
        raise CheckpointError(f"unsupported export dtype {dtype!r}")
    return load_training_checkpoint(ckpt_path).save_pretrained(out_dir, dtype=getattr(torch, dtype))
