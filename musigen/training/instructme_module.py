"""LightningModule that trains the InstructME U-Net on pre-encoded triplets.

The model is the plain `InstructMEUNet`; the objective and condition dropout are
`EditDiffusion.training_loss` (text, source or both dropped per example, for two-scale
CFG).  What Lightning adds: AdamW with warm-up and cosine decay, an optional EMA copy of
the U-Net (the one exported and validated), a deterministic validation loss, and the
latent statistics of the training data as buffers, so a checkpoint carries everything the
pipeline needs.  With `export_dir` the pipeline is written at the end of `fit`.
`gradient_checkpointing` (ResNet and chunk-transformer blocks of the trained U-Net) and
`torch_compile` (the same blocks, in place) leave the state-dict keys unchanged.

    musigen train fit --config recipes/instructme/demo.yaml
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import lightning as L
import torch

from musigen.errors import ConfigError
from musigen.instructme.diffusion import DiffusionConfig, EditConditions, EditDiffusion
from musigen.instructme.latent_stats import STATS_NAME, LatentStats
from musigen.instructme.chunk_transformer import ChunkTransformerBlock
from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig, ResBlock
from musigen.training.activation_checkpointing import blocks_of, checkpoint_blocks, compile_blocks

#: Seed of the validation noise, so val/loss is comparable from one evaluation to the next.
VAL_SEED = 1234


class InstructMEModule(L.LightningModule):
    """Trains `self.unet`; logs train/loss and val/loss (EMA weights when EMA is on)."""

    def __init__(
        self,
        unet: InstructMEUNetConfig | None = None,
        diffusion: DiffusionConfig | None = None,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 200,
        min_lr_ratio: float = 0.1,
        ema_decay: float | None = 0.999,
        export_dir: str | None = None,
        gradient_checkpointing: bool = False,
        torch_compile: bool = False,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        if lr <= 0 or warmup_steps < 0 or not 0 <= min_lr_ratio <= 1:
            raise ConfigError("lr must be positive, warmup_steps >= 0, min_lr_ratio in [0, 1]")
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1) or null, got {ema_decay}")
        self.unet_config = unet or InstructMEUNetConfig()
        self.diffusion_config = diffusion or DiffusionConfig()
        self.lr, self.weight_decay, self.betas = lr, weight_decay, tuple(betas)
        self.warmup_steps, self.min_lr_ratio = warmup_steps, min_lr_ratio
        self.ema_decay, self.export_dir = ema_decay, export_dir
        # Plain types only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters({
            "unet": dataclasses.asdict(self.unet_config),
            "diffusion": dataclasses.asdict(self.diffusion_config),
            "lr": lr, "weight_decay": weight_decay, "betas": list(betas),
            "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio, "ema_decay": ema_decay,
            "export_dir": export_dir, "gradient_checkpointing": gradient_checkpointing,
            "torch_compile": torch_compile, "init_from": init_from,
        })
        self.unet = InstructMEUNet(self.unet_config)
        #: latent statistics the initial weights were trained with (checked against the data)
        self.init_stats: LatentStats | None = None
        if init_from:
            self.init_stats = self._load_initial_weights(init_from)
        self.ema: InstructMEUNet | None = None
        if ema_decay is not None:
            self.ema = copy.deepcopy(self.unet).requires_grad_(False)
        # After the EMA copy: only the trained U-Net needs recomputation or compilation.
        units = blocks_of(self.unet, (ResBlock, ChunkTransformerBlock))
        if gradient_checkpointing:
            checkpoint_blocks(units)
        if torch_compile:
            compile_blocks(units)
        self.diffusion = EditDiffusion(self.diffusion_config)
        d = self.unet_config.latent_channels
        self.register_buffer("latent_mean", torch.zeros(d))
        self.register_buffer("latent_std", torch.ones(d))
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        #: codec / text encoder / chord settings of the training data (for export)
        self.data_info: dict[str, Any] = {}

    def _load_initial_weights(self, source: str) -> LatentStats | None:
        """Start from an exported pipeline folder (its `unet/`) or a bare U-Net folder, e.g. to
        fine-tune the shipped demo with another objective.  The U-Net config must be the
        recipe's: a silent partial load would train something else than it says."""
        from pathlib import Path

        path = Path(source).expanduser()
        unet_dir = path / "unet" if (path / "unet").is_dir() else path
        loaded = InstructMEUNet.from_pretrained(unet_dir)
        if loaded.config != self.unet_config:
            theirs, ours = dataclasses.asdict(loaded.config), dataclasses.asdict(self.unet_config)
            diff = sorted(k for k in ours if ours[k] != theirs.get(k))
            raise ConfigError(f"init_from {source}: its U-Net config differs from the recipe's in {diff}")
        self.unet.load_state_dict(loaded.state_dict())
        stats_file = path / STATS_NAME
        return LatentStats.load(stats_file) if stats_file.is_file() else None

    # -- data ---------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Take the latent statistics and data description from the data module, checked."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        stats: LatentStats | None = getattr(dm, "stats", None)
        info: dict[str, Any] = getattr(dm, "info", {}) or {}
        if stats is None or not info:
            return
        c = self.unet_config
        problems = []
        if int(info["latent_dim"]) != c.latent_channels:
            problems.append(f"latents have {info['latent_dim']} channels, "
                            f"unet.latent_channels is {c.latent_channels}")
        if int(info["text_dim"]) != c.text_dim:
            problems.append(
                f"text states are {info['text_dim']} wide, unet.text_dim is {c.text_dim}"
            )
        if c.use_chords and len(info["chord_vocab"]) != c.chord_dim:
            problems.append(f"chord vocabulary has {len(info['chord_vocab'])} labels, "
                            f"unet.chord_dim is {c.chord_dim}")
        if self.init_stats is not None and not (
            torch.allclose(self.init_stats.mean, stats.mean, atol=1e-3, rtol=1e-3)
            and torch.allclose(self.init_stats.std, stats.std, atol=1e-3, rtol=1e-3)
        ):
            problems.append("init_from was trained on latents normalised with other statistics "
                            "(another codec or corpus)")
        if problems:
            raise ConfigError("the recipe's U-Net does not fit the data: " + "; ".join(problems))
        # A resumed run then restores the checkpoint's own buffers over these.
        self.latent_mean.copy_(stats.mean)
        self.latent_std.copy_(stats.std)
        self.data_info = dict(info)

    @property
    def latent_stats(self) -> LatentStats:
        return LatentStats(self.latent_mean.detach().cpu(), self.latent_std.detach().cpu())

    @staticmethod
    def conditions(batch: dict[str, torch.Tensor]) -> EditConditions:
        return EditConditions(batch["source"], batch["text_states"], batch["text_mask"],
                              batch["chords"])

    def export_unet(self) -> InstructMEUNet:
        """The weights to ship: the EMA copy when there is one."""
        return self.ema if self.ema is not None else self.unet

    # -- steps --------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.diffusion.training_loss(self.unet, batch["target"], self.conditions(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["target"].shape[0])
        return loss

    def evaluation_loss(self, batch: dict[str, torch.Tensor], model: InstructMEUNet,
                        seed: int) -> torch.Tensor:
        """Loss without condition dropout, with fixed noise and timesteps (comparable runs)."""
        gen = torch.Generator().manual_seed(seed)
        return self.diffusion.training_loss(model, batch["target"], self.conditions(batch),
                                            generator=gen, drop=False, timestep_bias=0.0,
                                            changed_weight=0.0)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        b = batch["target"].shape[0]
        loss = self.evaluation_loss(batch, self.export_unet(), VAL_SEED + batch_idx)
        self.log("val/loss", loss, prog_bar=True, batch_size=b, sync_dist=True)
        if self.ema is not None:
            raw = self.evaluation_loss(batch, self.unet, VAL_SEED + batch_idx)
            self.log("val/loss_raw", raw, batch_size=b, sync_dist=True)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is None:
            return
        n = int(self.ema_updates)
        decay = min(float(self.ema_decay), (1 + n) / (10 + n))  # short memory early on
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.unet.parameters()):
                e.lerp_(p.detach(), 1.0 - decay)
            for e, b in zip(self.ema.buffers(), self.unet.buffers()):
                e.copy_(b)
        self.ema_updates += 1

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.unet.parameters(), lr=self.lr, betas=self.betas,
                                weight_decay=self.weight_decay,
                                fused=self.device.type == "cuda")  # one kernel per step on a GPU
        total = max(0, self.trainer.max_steps or 0)
        warm, floor = self.warmup_steps, self.min_lr_ratio

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / max(1, warm)
            if total <= warm:
                return 1.0
            frac = min(1.0, (step - warm) / (total - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- checkpoints and export ---------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["instructme_data"] = self.data_info

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.data_info = dict(checkpoint.get("instructme_data", {}))

    def on_fit_end(self) -> None:
        if self.export_dir and self.trainer.is_global_zero and self.data_info:
            from musigen.training.export_instructme import export_module

            export_module(self, self.export_dir)
            print(f"[instructme] exported the pipeline to {self.export_dir}", flush=True)
