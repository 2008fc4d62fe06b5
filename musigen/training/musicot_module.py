"""LightningModule that trains the MusiCoT LM on pre-encoded excerpts.

Condition dropout for classifier-free guidance (choices; the paper is silent):
- text is replaced by the learned null condition with p = `text_dropout` = 0.3, MusicGen's
  value, so the unconditional half of CFG is a trained mode;
- the reference is replaced by NULL tokens with p = `ref_dropout` = 0.5: most users give
  no reference, so "no reference" must be as well trained as "a reference";
- the plan is replaced by NULL tokens with p = `plan_dropout` (0 by default; the plan-guided
  recipe uses 0.2), so the audio also learns a no-plan mode. Sampling can then push the
  audio toward its plan with `plan_cfg` (audio logits + plan_cfg x (with plan - without)),
  which is how a plan, and through it a style reference, reaches the audio more strongly.
`plan_aligned=True` also adds the current plan segment to each audio step's input
(:mod:`musigen.musicot.plan_alignment`); with `init_from` a plain LM, its projection starts
at zero.
The loss is audio CE + `thought_loss_weight` (1.0) x plan CE. `no_cot=True` is the
ablation: the same LM and budget, trained without plan or reference tokens (MusicGen style).

The LM's sizes come from the data folder's index.json (codec codes, thought RVQ, text
width) plus a preset (`debug`, `demo`, `base`), so they cannot disagree with the data.
With `export_dir`, a complete MusiCoTPipeline is written when `fit` ends; its `window_s`
should equal the data module's `crop_s` (the LM never saw later audio positions).

At scale, `gradient_checkpointing` recomputes each transformer block's activations in the
backward pass (memory for compute) and `torch_compile` compiles each block in place; neither
changes the state-dict keys, so checkpoints and exports load into the plain LM.

    musigen train fit --config recipes/musicot/demo.yaml
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from musigen.errors import ConfigError
from musigen.musicot.lm import LMConfig, MusiCoTLM
from musigen.musicot.plan_alignment import batch_alignment
from musigen.training.activation_checkpointing import checkpoint_blocks, compile_blocks


class MusiCoTModule(L.LightningModule):
    """Trains `self.lm`; logs train/loss, train/audio_loss, train/thought_loss and val/loss."""

    def __init__(self, data_dir: str, preset: str = "debug", max_seq_len: int = 1024,
                 dropout: float = 0.0, thought_loss_weight: float = 1.0, text_dropout: float = 0.3,
                 ref_dropout: float = 0.5, no_cot: bool = False, lr: float = 3e-4,
                 weight_decay: float = 0.01, warmup_steps: int = 100, min_lr_ratio: float = 0.1,
                 export_dir: str | None = None, codec: str | None = None,
                 embedder: str | None = None, window_s: float = 10.0, context_s: float = 2.0,
                 gradient_checkpointing: bool = False, torch_compile: bool = False,
                 init_from: str | None = None, plan_dropout: float = 0.0,
                 plan_aligned: bool = False, ema_decay: float | None = None) -> None:
        super().__init__()
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1) or null, got {ema_decay}")
        if not all(0 <= p <= 1 for p in (text_dropout, ref_dropout, plan_dropout)):
            raise ConfigError("text_dropout, ref_dropout and plan_dropout must be in [0, 1]")
        if lr <= 0 or warmup_steps < 0:
            raise ConfigError("lr must be positive and warmup_steps >= 0")
        self.save_hyperparameters()
        index = json.loads((Path(data_dir) / "index.json").read_text())
        self.lm_config = LMConfig.preset(
            preset, num_codebooks=index["num_codebooks"], codebook_size=index["codebook_size"],
            thought_levels=index["thought_levels"],
            thought_codebook_size=index["thought_codebook_size"], text_dim=index["text_dim"],
            max_seq_len=max_seq_len, dropout=dropout, thought_loss_weight=thought_loss_weight,
            plan_aligned=plan_aligned and not no_cot)
        self.lm = MusiCoTLM(self.lm_config)
        self.data_dir = data_dir
        if init_from:
            self._init_from(init_from)
        # An exponential moving average of the weights is what gets exported: a budgeted run
        # may stop at any step, mid-schedule, and the average is far less noisy there.
        self.ema: MusiCoTLM | None = None
        if ema_decay is not None:
            self.ema = copy.deepcopy(self.lm).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        if gradient_checkpointing:
            checkpoint_blocks(self.lm.blocks)
        if torch_compile:
            compile_blocks(self.lm.blocks)

    def _init_from(self, source: str) -> None:
        """Start from an exported LM (a pipeline folder or its `lm/`) instead of random weights.

        For fine-tuning with new data settings (e.g. a longer style reference): the optimiser
        and schedule start fresh, unlike `--ckpt_path`, which resumes one run.
        """
        from musigen import hub

        root = hub.resolve_dir(source, "MusiCoT init_from")
        lm_dir = root / "lm" if (root / "lm").is_dir() else root
        theirs = hub.load_config(lm_dir, LMConfig)
        for key in ("dim", "num_layers", "num_heads", "num_codebooks", "codebook_size", "thought_levels",
                    "thought_codebook_size", "text_dim"):
            if getattr(theirs, key) != getattr(self.lm_config, key):
                raise ConfigError(f"init_from {source}: {key} is {getattr(theirs, key)}, this run has "
                                  f"{getattr(self.lm_config, key)}")
        state = hub.load_weights(lm_dir)
        if self.lm_config.plan_aligned and not theirs.plan_aligned:
            # the new plan projection starts at zero: the same LM, with a path to learn
            state["plan_proj.weight"] = self.lm.plan_proj.weight.detach().clone()
        hub.load_state_into(self.lm, state, str(lm_dir))

    def _loss(self, batch: dict[str, torch.Tensor], train: bool, lm: MusiCoTLM | None = None) -> Any:
        lm = self.lm if lm is None else lm
        codes = batch["codes"]
        b = codes.shape[0]
        hp = self.hparams
        plan = ref = drop_ref = drop_plan = None
        if not hp.no_cot:
            plan = batch["plan"]
            ref = batch["ref"].masked_fill(batch["ref"] < 0, lm.null_id)
            if train:
                drop_ref = torch.rand(b, device=codes.device) < hp.ref_dropout
                if hp.get("plan_dropout", 0.0) > 0:
                    drop_plan = torch.rand(b, device=codes.device) < hp.plan_dropout
        drop_text = torch.rand(b, device=codes.device) < hp.text_dropout if train else None
        aligned = batch_alignment(batch) if self.lm_config.plan_aligned else {}
        return lm(codes, batch["text_states"], batch["text_mask"], plan=plan, ref=ref,
                       drop_text=drop_text, drop_ref=drop_ref, drop_plan=drop_plan, **aligned)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self._loss(batch, train=True)
        self.log_dict({"train/loss": out.loss, "train/audio_loss": out.audio_loss,
                       "train/thought_loss": out.thought_loss}, prog_bar=True,
                      batch_size=batch["codes"].shape[0])
        return out.loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self._loss(batch, train=False, lm=self.export_lm())
        self.log_dict({"val/loss": out.loss, "val/audio_loss": out.audio_loss,
                       "val/thought_loss": out.thought_loss}, batch_size=batch["codes"].shape[0])
        if self.ema is not None:
            raw = self._loss(batch, train=False)
            self.log("val/loss_raw", raw.loss, batch_size=batch["codes"].shape[0])

    def export_lm(self) -> MusiCoTLM:
        """The weights to ship: the EMA copy when there is one."""
        return self.ema if self.ema is not None else self.lm

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is None:
            return
        n = int(self.ema_updates)
        decay = min(float(self.hparams.ema_decay), (1 + n) / (10 + n))  # short memory early on
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.lm.parameters()):
                e.lerp_(p.detach(), 1.0 - decay)
            for e, b in zip(self.ema.buffers(), self.lm.buffers()):
                e.copy_(b)
        self.ema_updates += 1

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        fused = self.device.type == "cuda"  # one kernel per step on a GPU
        opt = torch.optim.AdamW(self.lm.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, fused=fused)
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self.trainer else 1

        def factor(step: int) -> float:
            if step < hp.warmup_steps:
                return (step + 1) / (hp.warmup_steps + 1)
            t = min(1.0, (step - hp.warmup_steps) / max(1, total - hp.warmup_steps))
            return hp.min_lr_ratio + (1 - hp.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_fit_end(self) -> None:
        if self.hparams.export_dir and self.trainer.is_global_zero:
            self.export(self.hparams.export_dir)

    def export(self, directory: str) -> Path:
        """Write a MusiCoTPipeline: this LM + the data's codec, embedder and thought RVQ."""
        from musigen.embedders.text import load_text_encoder
        from musigen.musicot.pipeline import MusiCoTPipeline, MusiCoTPipelineConfig
        from musigen.encode.components import load_codec, load_embedder
        from musigen.musicot.thoughts import ThoughtTokenizer

        hp = self.hparams
        index = json.loads((Path(self.data_dir) / "index.json").read_text())
        pre = index["config"]
        codec = load_codec(hp.codec or pre["codec"])
        embedder = load_embedder(hp.embedder or pre["embedder"])
        tokenizer = ThoughtTokenizer.from_pretrained(Path(self.data_dir) / index["thoughts"])
        text = load_text_encoder(pre["text_encoder"])
        lm = MusiCoTLM(self.lm_config)
        lm.load_state_dict({k: v.detach().cpu() for k, v in self.export_lm().state_dict().items()})
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        ref = {}
        if dm is not None and getattr(dm, "ref_segments", 0) and getattr(dm, "ref_levels", 0):
            # inference sees the reference the LM was trained with: as many levels, and a
            # longer reference subsampled to as many segments
            ref = {"ref_levels": dm.ref_levels, "max_ref_segments": dm.ref_segments}
        config = MusiCoTPipelineConfig(window_s=hp.window_s, context_s=hp.context_s,
                                       use_thoughts=not hp.no_cot, **ref)
        pipe = MusiCoTPipeline(codec, text, embedder, tokenizer, lm, config)
        return pipe.save_pretrained(directory)
