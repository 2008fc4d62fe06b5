"""LightningModule that trains an EnCodec-architecture codec (the demo codec, or a 32 kHz one).

The model is a plain `transformers.EncodecModel`, so the trained weights load through
`musigen.codec.Codec` with no conversion.  What Lightning adds is the training recipe:

- multi-scale mel + multi-resolution STFT + waveform L1 reconstruction losses;
- EMA codebooks with a commitment loss (see `ema_quantizer.py`);
- quantiser dropout: each step uses a random number of codebooks, so that every prefix of
  the code stack decodes well (variable bandwidth, as in EnCodec/SoundStream);
- an optional multi-scale STFT discriminator with feature matching;
- an optional second stage, `freeze_encoder`: start from a stage-one checkpoint
  (`init_checkpoint`), keep the encoder and codebooks fixed and train only the decoder.  The
  codes and latents then stop moving, so downstream models (the LM, the diffusion U-Net) can
  be pre-encoded and trained while the decoder keeps improving;
- an optional extension, `frozen_codebooks`: with `freeze_encoder`, only the first N
  codebooks of the checkpoint are kept fixed; further levels (an `arch` with more codebooks
  than the checkpoint) are initialised by k-means on what the fixed ones leave and trained
  with the decoder.  Codes 1..N are unchanged, so a model trained on N codebooks still
  decodes, and the full stack raises the bandwidth (EnCodec's variable bandwidth).

Optimisation is manual because the GAN needs two optimisers stepping in turn; without a
discriminator it is a single AdamW step per batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import lightning as L
import torch

from musigen.codec import encodec_config
from musigen.errors import ConfigError
from musigen.training.discriminator import (
    DiscriminatorConfig,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    generator_losses,
)
from musigen.training.ema_quantizer import EMAResidualQuantizer, QuantizerTrainingConfig
from musigen.training.losses import ReconstructionLoss, ReconstructionLossConfig


@dataclass
class CodecArchConfig:
    """Architecture of the codec (mapped onto an `EncodecConfig`)."""

    sample_rate: int = 16000
    channels: int = 1
    upsampling_ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    num_filters: int = 16
    hidden_size: int = 64
    codebook_size: int = 1024
    num_codebooks: int = 4
    num_lstm_layers: int = 2
    num_residual_layers: int = 1
    use_causal_conv: bool = False
    use_conv_shortcut: bool = False
    compress: int = 2


@dataclass
class CodecOptimConfig:
    """Optimiser settings; EnCodec used Adam 3e-4, betas (0.5, 0.9)."""

    lr: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    warmup_steps: int = 200


class CodecModule(L.LightningModule):
    """Trains `self.model` (an `EncodecModel`); see the module docstring for the losses."""

    def __init__(
        self,
        arch: CodecArchConfig | None = None,
        loss: ReconstructionLossConfig | None = None,
        quantizer: QuantizerTrainingConfig | None = None,
        optim: CodecOptimConfig | None = None,
        discriminator: DiscriminatorConfig | None = None,
        commitment_weight: float = 1.0,
        quantizer_dropout: bool = True,
        latent_bypass_prob: float = 0.0,
        freeze_encoder: bool = False,
        init_checkpoint: str | None = None,
        frozen_codebooks: int | None = None,
        min_codebooks: int = 1,
    ) -> None:
        super().__init__()
        from transformers import EncodecModel

        self.arch = arch or CodecArchConfig()
        self.loss_config = loss or ReconstructionLossConfig()
        self.quantizer_config = quantizer or QuantizerTrainingConfig()
        self.optim_config = optim or CodecOptimConfig()
        self.disc_config = discriminator
        if commitment_weight < 0 or not 0.0 <= latent_bypass_prob < 1.0:
            raise ConfigError("commitment_weight must be >= 0 and latent_bypass_prob in [0, 1)")
        n_books = (arch or CodecArchConfig()).num_codebooks
        if not 1 <= min_codebooks <= n_books:
            raise ConfigError(f"min_codebooks must be in 1..{n_books}, got {min_codebooks}")
        if frozen_codebooks is not None and (not freeze_encoder or not 0 <= frozen_codebooks <= n_books):
            raise ConfigError(f"frozen_codebooks needs freeze_encoder and must be in 0..{n_books}")
        self.commitment_weight = commitment_weight
        self.quantizer_dropout = quantizer_dropout
        self.latent_bypass_prob = latent_bypass_prob
        # Plain dicts only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters({
            "arch": dataclasses.asdict(self.arch), "loss": dataclasses.asdict(self.loss_config),
            "quantizer": dataclasses.asdict(self.quantizer_config), "optim": dataclasses.asdict(self.optim_config),
            "discriminator": None if discriminator is None else dataclasses.asdict(discriminator),
            "commitment_weight": commitment_weight, "quantizer_dropout": quantizer_dropout,
            "latent_bypass_prob": latent_bypass_prob, "freeze_encoder": freeze_encoder,
            "init_checkpoint": init_checkpoint, "frozen_codebooks": frozen_codebooks,
            "min_codebooks": min_codebooks,
        })
        self.freeze_encoder = freeze_encoder
        self.min_codebooks = min_codebooks
        # With a frozen encoder every codebook is fixed unless told otherwise (stage two).
        self.frozen_codebooks = (n_books if frozen_codebooks is None else frozen_codebooks) if freeze_encoder else 0
        a = self.arch
        self.model = EncodecModel(encodec_config(
            sample_rate=a.sample_rate, upsampling_ratios=a.upsampling_ratios, num_filters=a.num_filters,
            hidden_size=a.hidden_size, codebook_size=a.codebook_size, num_codebooks=a.num_codebooks,
            channels=a.channels, num_lstm_layers=a.num_lstm_layers, num_residual_layers=a.num_residual_layers,
            use_causal_conv=a.use_causal_conv, use_conv_shortcut=a.use_conv_shortcut, compress=a.compress,
        ))
        self.rvq = EMAResidualQuantizer(self.model.quantizer, self.quantizer_config)
        self.rvq.frozen_levels = self.frozen_codebooks
        self.recon = ReconstructionLoss(a.sample_rate, self.loss_config)
        self.disc = (MultiScaleSTFTDiscriminator(a.channels, discriminator.n_ffts, discriminator.filters)
                     if discriminator is not None else None)
        self.automatic_optimization = False
        self._batch_count = 0
        if init_checkpoint is not None:
            self._load_weights(init_checkpoint)
        if freeze_encoder:
            if init_checkpoint is None:
                raise ConfigError("freeze_encoder needs init_checkpoint (a trained stage-one codec)")
            for p in self.model.encoder.parameters():
                p.requires_grad_(False)

    def _load_weights(self, ckpt_path: str) -> None:
        """Take the codec weights and codebooks of another run (optimiser state is not carried)."""
        from musigen.hub import read_training_checkpoint

        state = read_training_checkpoint(ckpt_path).get("state_dict")
        if not isinstance(state, dict):
            raise ConfigError(f"{ckpt_path} holds no state_dict")
        wanted = {k: v for k, v in state.items() if k.startswith(("model.", "rvq."))}
        missing, unexpected = self.load_state_dict(wanted, strict=False)
        missing = [k for k in missing if k.startswith(("model.", "rvq."))]
        # Levels beyond the frozen ones may be new (extending the code stack): they start
        # from k-means on the first batch instead of from the checkpoint.
        new_levels = {f"model.quantizer.layers.{i}." for i in range(self.frozen_codebooks, self.arch.num_codebooks)}
        grown = [k for k in missing if k.startswith(tuple(new_levels))]
        missing = [k for k in missing if k not in grown]
        if missing or unexpected:
            raise ConfigError(f"{ckpt_path} does not match this codec architecture "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        if grown:
            self.rvq.initialized.fill_(False)

    # -- model --------------------------------------------------------------------------
    def forward(self, wav: torch.Tensor, num_codebooks: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct `[B, C, N]` audio; returns the reconstruction and the commitment loss."""
        if self.freeze_encoder:
            # Stage two: the encoder and the frozen codebooks are fixed (no gradient, no EMA
            # update); codebooks beyond `frozen_codebooks` still learn by EMA in training.
            with torch.no_grad():
                self.model.encoder.eval()
                z = self.model.encoder(wav)
                was_training = self.rvq.training
                self.rvq.train(was_training and self.frozen_codebooks < self.arch.num_codebooks)
                q = self.rvq(z, num_codebooks)
                self.rvq.train(was_training)
        else:
            z = self.model.encoder(wav)
            q = self.rvq(z, num_codebooks)
        latent = q.quantized
        if self.training and self.latent_bypass_prob > 0 and torch.rand(()) < self.latent_bypass_prob:
            latent = z  # teaches the decoder the continuous (pre-quantiser) latents used by diffusion
        recon = self.model.decoder(latent)[..., : wav.shape[-1]]
        return recon, q.commitment

    def _num_codebooks(self) -> int:
        if not self.quantizer_dropout:
            return self.arch.num_codebooks
        # Drawn from the step count, not the global RNG, so every DDP rank picks the same
        # number (the EMA codebook update all-reduces once per active level).
        gen = torch.Generator().manual_seed(7919 * self._batch_count + 17)
        return int(torch.randint(self.min_codebooks, self.arch.num_codebooks + 1, (), generator=gen).item())

    # -- training -----------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        wav = batch["wav"]
        opts = self.optimizers()
        opt_g, opt_d = (opts[0], opts[1]) if isinstance(opts, list) else (opts, None)
        sched = self.lr_schedulers()
        sched_g = sched[0] if isinstance(sched, list) else sched

        recon, commitment = self(wav, self._num_codebooks())
        terms = self.recon(recon, wav)
        loss = terms["total"] + self.commitment_weight * commitment
        use_gan = self.disc is not None and self._batch_count >= self.disc_config.start_step
        if use_gan:
            with torch.no_grad():  # real features are targets here, not trained
                real = self.disc(wav)
            adv, fm = generator_losses(real, self.disc(recon))
            loss = loss + self.disc_config.adversarial_weight * adv + self.disc_config.feature_matching_weight * fm
            terms["adv"], terms["feat"] = adv, fm

        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.clip_gradients(opt_g, gradient_clip_val=self.optim_config.grad_clip, gradient_clip_algorithm="norm")
        opt_g.step()
        if sched_g is not None:
            sched_g.step()

        if use_gan and opt_d is not None:
            d_loss = discriminator_loss(self.disc(wav), self.disc(recon.detach()))
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            self.clip_gradients(opt_d, gradient_clip_val=self.optim_config.grad_clip, gradient_clip_algorithm="norm")
            opt_d.step()
            terms["disc"] = d_loss

        self._batch_count += 1
        logged = {f"train/{k}": v.detach() for k, v in terms.items()}
        logged["train/commitment"] = commitment.detach()
        logged["train/loss"] = loss.detach()
        self.log_dict(logged, prog_bar=False, on_step=True, on_epoch=False, batch_size=wav.shape[0])
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=wav.shape[0])
        return loss.detach()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Full-bandwidth reconstruction loss on held-out crops (codebooks frozen in eval mode)."""
        wav = batch["wav"]
        recon, commitment = self(wav, self.arch.num_codebooks)
        terms = self.recon(recon, wav)
        self.log("val/loss", terms["total"], prog_bar=True, batch_size=wav.shape[0], sync_dist=True)
        self.log("val/mel", terms.get("mel", terms["total"]), batch_size=wav.shape[0], sync_dist=True)

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union return type
        o = self.optim_config
        gen_params = list(self.model.decoder.parameters())
        if not self.freeze_encoder:
            gen_params = list(self.model.encoder.parameters()) + gen_params
        opt_g = torch.optim.AdamW(gen_params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        warmup = max(1, o.warmup_steps)
        sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, lambda step: min(1.0, (step + 1) / warmup))
        if self.disc is None:
            return {"optimizer": opt_g, "lr_scheduler": sched_g}
        opt_d = torch.optim.AdamW(self.disc.parameters(), lr=self.disc_config.lr, betas=tuple(o.betas))
        return [opt_g, opt_d], [sched_g]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["codec_batch_count"] = self._batch_count

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._batch_count = int(checkpoint.get("codec_batch_count", 0))
