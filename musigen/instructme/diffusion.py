"""Training objective and sampling for the InstructME U-Net, on diffusers' schedulers.

- Training: diffusers' `DDPMScheduler` adds noise; the U-Net predicts the noise
  (``epsilon``) or the velocity (``v_prediction``, our default: it stays well-scaled at the
  low-SNR end of the cosine schedule that latents need).
- Condition dropout: per example the text, the source (with its chords) or both are
  dropped, so one network learns all three conditionals needed for two-scale CFG.
- Sampling: diffusers' `DDIMScheduler` or `DPMSolverMultistepScheduler` (DPM-Solver++),
  with InstructPix2Pix's two guidance scales, evaluated as one batched U-Net call::

      out = u + s_src * (s - u) + s_text * (f - s)
      u = model(no source, no text), s = model(source, no text), f = model(source, text)

- Parameterisation (ours; the paper diffuses the target latent): ``target`` diffuses the
  edited latent itself; ``residual`` diffuses ``(target - source) / residual_scale``, so
  "change nothing" is the zero residual and everything the instruction does not touch is
  kept by construction rather than re-synthesised through the codec's latent space.

We never step a schedule by hand: all noise arithmetic is the scheduler's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from torch import nn

from musigen.errors import ConfigError
from musigen.instructme.edit_params import SAMPLERS, check_start, check_strength
from musigen.instructme.inversion import ddim_invert


@dataclass
class DiffusionConfig:
    """Noise schedule and dropout.  The paper gives none of these; the defaults are ours."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 0.00085  # used by the linear schedules only
    beta_end: float = 0.012
    prediction_type: str = "v_prediction"  # or "epsilon"
    text_drop_prob: float = 0.05  # InstructPix2Pix's 5 % / 5 % / 5 %
    source_drop_prob: float = 0.05
    both_drop_prob: float = 0.05
    drop_chords_with_source: bool = True  # chords are read off the source, so they go with it
    parameterization: str = "target"  # or "residual": diffuse (target - source) / residual_scale
    residual_scale: float = 1.0  # std of target - source in normalised latents (unit variance)
    #: Training timesteps are drawn with density ~ t^bias (0: uniform, as DDPM).  Above 0 the
    #: high-noise steps, where the sampler decides what the edit keeps, get more of the
    #: training; validation losses stay on the uniform draw so runs remain comparable.
    timestep_bias: float = 0.0
    #: Loss weight on what the edit changes: each latent element's squared error is weighted
    #: by (1 + w * d / mean(d)) / (1 + w), d = |target - source| (per example, mean weight 1).
    #: 0 = plain MSE.  Why: most of a remove / extract target equals its source, so the plain
    #: loss is spent on copying; validation stays unweighted so runs remain comparable.
    changed_weight: float = 0.0

    #: fields the shipped demo pipeline.json predates (they take their default)
    OPTIONAL_KEYS = frozenset({"changed_weight"})

    def __post_init__(self) -> None:
        if self.parameterization not in ("target", "residual"):
            raise ConfigError(
                f"parameterization must be 'target' or 'residual', got {self.parameterization!r}"
            )
        if not (math.isfinite(self.timestep_bias) and self.timestep_bias >= 0):
            raise ConfigError(f"timestep_bias must be a finite number >= 0, got {self.timestep_bias!r}")
        if not (math.isfinite(self.changed_weight) and self.changed_weight >= 0):
            raise ConfigError(f"changed_weight must be a finite number >= 0, got {self.changed_weight!r}")
        if not (math.isfinite(self.residual_scale) and self.residual_scale > 0):
            raise ConfigError(f"residual_scale must be > 0, got {self.residual_scale!r}")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ConfigError(
                f"prediction_type must be 'epsilon' or 'v_prediction', got {self.prediction_type!r}"
            )
        if self.beta_schedule not in ("linear", "scaled_linear", "squaredcos_cap_v2"):
            raise ConfigError(f"unsupported beta_schedule {self.beta_schedule!r}")
        if self.prediction_type == "epsilon" and self.beta_schedule == "squaredcos_cap_v2":
            raise ConfigError(
                "epsilon-prediction is unstable at the cosine schedule's near-zero-SNR end (x0 = "
                "(x - sigma*eps) / alpha with alpha ~ 5e-5); use v_prediction or "
                "beta_schedule='scaled_linear'"
            )
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ConfigError(
                f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}"
            )
        if self.num_train_timesteps < 2:
            raise ConfigError("num_train_timesteps must be at least 2")
        probs = (self.text_drop_prob, self.source_drop_prob, self.both_drop_prob)
        if min(probs) < 0 or sum(probs) > 1:
            raise ConfigError(f"dropout probabilities must be >= 0 and sum to <= 1, got {probs}")


@dataclass
class EditConditions:
    """Everything the U-Net is conditioned on, batched.  `text_mask` False = token absent."""

    source: torch.Tensor  # [B, D, T] normalised source latents
    text_states: torch.Tensor | None  # [B, L, text_dim]
    text_mask: torch.Tensor | None  # [B, L] bool
    chords: torch.Tensor | None  # [B, T, V]

    @property
    def batch_size(self) -> int:
        return self.source.shape[0]

    def dropped(
        self, drop_text: torch.Tensor, drop_source: torch.Tensor, drop_chords: torch.Tensor
    ) -> EditConditions:
        """A copy with the text / source / chords of the rows flagged True ([B] bool) removed.

        A dropped text is an all-False mask (the U-Net then attends only to its null token);
        a dropped source or chord matrix is zeros (the mean of normalised latents).
        """
        src = torch.where(drop_source[:, None, None], torch.zeros_like(self.source), self.source)
        mask, states = self.text_mask, self.text_states
        if mask is not None and states is not None:
            mask = mask & ~drop_text[:, None]
            states = torch.where(drop_text[:, None, None], torch.zeros_like(states), states)
        ch = self.chords
        if ch is not None:
            ch = torch.where(drop_chords[:, None, None], torch.zeros_like(ch), ch)
        return EditConditions(src, states, mask, ch)

    @staticmethod
    def cat(items: list[EditConditions]) -> EditConditions:
        """Stack several condition sets along the batch (for one batched CFG call)."""

        def join(xs: list[torch.Tensor | None]) -> torch.Tensor | None:
            return None if xs[0] is None else torch.cat(xs, dim=0)  # type: ignore[arg-type]

        return EditConditions(
            torch.cat([c.source for c in items]),
            join([c.text_states for c in items]),
            join([c.text_mask for c in items]),
            join([c.chords for c in items]),
        )


def changed_weights(target: torch.Tensor, source: torch.Tensor, strength: float) -> torch.Tensor | None:
    """Per-element loss weights (mean 1 per example) that grow with |target - source|; None
    at strength 0.  An example whose target equals its source gets weight 1 everywhere."""
    if strength == 0:
        return None
    d = (target - source).abs().float()
    scale = d.mean(dim=tuple(range(1, d.dim())), keepdim=True)
    rel = torch.where(scale > 0, d / scale.clamp(min=1e-12), torch.ones_like(d))
    return (1.0 + strength * rel) / (1.0 + strength)


def drop_conditions(
    cond: EditConditions, config: DiffusionConfig, generator: torch.Generator | None = None
) -> EditConditions:
    """Training-time dropout: each row independently loses its text (p_text), its source and
    chords (p_source) or both (p_both); the rest keep everything."""
    u = torch.rand(cond.batch_size, generator=generator).to(cond.source.device)
    p_t, p_s, p_b = config.text_drop_prob, config.source_drop_prob, config.both_drop_prob
    drop_text = (u < p_t) | ((u >= p_t + p_s) & (u < p_t + p_s + p_b))
    drop_source = (u >= p_t) & (u < p_t + p_s + p_b)
    drop_chords = drop_source if config.drop_chords_with_source else torch.zeros_like(drop_source)
    return cond.dropped(drop_text, drop_source, drop_chords)


def combine_guidance(
    uncond: torch.Tensor,
    source_only: torch.Tensor,
    full: torch.Tensor,
    guidance_text: float,
    guidance_source: float,
) -> torch.Tensor:
    """InstructPix2Pix two-scale CFG; scales of 1 give exactly the full conditional."""
    return uncond + guidance_source * (source_only - uncond) + guidance_text * (full - source_only)


def match_source_statistics(edited: torch.Tensor, source: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """`edited` [B, D, T] shifted and scaled so each channel has the source's mean and std over time.

    Why: two-scale CFG with a large source scale overshoots, so sampled latents come out
    several times wider than any encoded audio (variance ~6 in normalised units for the demo
    at 2/8) and decode louder than the input, a removal included.  An edit of a piece keeps
    its latent channel statistics close to the source's (they are per-piece properties of the
    codec's space), so matching them undoes the overshoot and keeps the guided direction.
    A channel that is constant in either tensor is only shifted.
    """
    if edited.shape != source.shape:
        raise ConfigError(f"edited latents {tuple(edited.shape)} differ from source {tuple(source.shape)}")
    mu_e, mu_s = edited.mean(-1, keepdim=True), source.mean(-1, keepdim=True)
    sd_e, sd_s = edited.std(-1, keepdim=True, unbiased=False), source.std(-1, keepdim=True, unbiased=False)
    scale = torch.where((sd_e > eps) & (sd_s > eps), sd_s / sd_e.clamp_min(eps), torch.ones_like(sd_e))
    return (edited - mu_e) * scale + mu_s


class EditDiffusion:
    """The diffusion process around an InstructME U-Net (holds no weights).

    `unet` arguments are any module called as
    ``unet(noisy, timestep, source, text_states, text_mask, chords)``.
    """

    def __init__(self, config: DiffusionConfig | None = None) -> None:
        self.config = config or DiffusionConfig()
        self.train_scheduler = DDPMScheduler(**self._schedule(), clip_sample=False)

    def _schedule(self) -> dict[str, object]:
        """The keyword arguments every diffusers scheduler here shares (one noise schedule)."""
        c = self.config
        return dict(
            num_train_timesteps=c.num_train_timesteps,
            beta_schedule=c.beta_schedule,
            beta_start=c.beta_start,
            beta_end=c.beta_end,
            prediction_type=c.prediction_type,
        )

    def make_sampler(self, name: str) -> DDIMScheduler | DPMSolverMultistepScheduler:
        """A fresh diffusers sampler on the training schedule.

        'trailing' spacing makes the first step start from the pure-noise end.
        """
        common = {**self._schedule(), "timestep_spacing": "trailing"}
        if name == "ddim":
            return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False)
        if name == "dpmsolver++":
            return DPMSolverMultistepScheduler(
                **common, algorithm_type="dpmsolver++", solver_order=2
            )
        raise ConfigError(f"unknown sampler {name!r}; known samplers: {', '.join(SAMPLERS)}")

    def to_diffused(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """The clean sample the diffusion runs on: the target, or its scaled residual."""
        if self.config.parameterization == "residual":
            return (target - source) / self.config.residual_scale
        return target

    def from_diffused(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_diffused`: edited latents from a sampled clean x."""
        if self.config.parameterization == "residual":
            return source + self.config.residual_scale * x
        return x

    # ------------------------------------------------------------------ training
    def draw_timesteps(self, n: int, bias: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` training timesteps with density ~ t^bias over 0..T-1 (bias 0: uniform)."""
        steps = self.config.num_train_timesteps
        if bias == 0:
            return torch.randint(0, steps, (n,), generator=generator)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return (steps * u ** (1.0 / (1.0 + bias))).long().clamp_(0, steps - 1)

    def training_loss(
        self,
        unet: nn.Module,
        target: torch.Tensor,
        cond: EditConditions,
        generator: torch.Generator | None = None,
        drop: bool = True,
        timestep_bias: float | None = None,
        changed_weight: float | None = None,
    ) -> torch.Tensor:
        """MSE between the U-Net output and the scheduler's epsilon / velocity target.

        `target`: [B, D, T] clean edited latents.  `generator` (CPU) makes t, noise and
        dropout reproducible.  `drop=False` disables condition dropout (validation).
        `timestep_bias` and `changed_weight` override the config's (validation passes 0 for
        both: the uniform draw and the plain MSE).
        """
        if target.shape != cond.source.shape:
            raise ConfigError(
                f"target latents {tuple(target.shape)} differ from source "
                f"{tuple(cond.source.shape)}"
            )
        weight = changed_weights(
            target, cond.source, self.config.changed_weight if changed_weight is None else changed_weight
        )
        target = self.to_diffused(target, cond.source)  # before dropout: the true source
        if drop:
            cond = drop_conditions(cond, self.config, generator)
        b = target.shape[0]
        t = self.draw_timesteps(
            b, self.config.timestep_bias if timestep_bias is None else timestep_bias, generator
        ).to(target.device)
        noise = torch.randn(target.shape, generator=generator, dtype=target.dtype).to(target.device)
        noisy = self.train_scheduler.add_noise(target, noise, t)
        if self.config.prediction_type == "epsilon":
            goal = noise
        else:
            goal = self.train_scheduler.get_velocity(target, noise, t)
        pred = unet(noisy, t, cond.source, cond.text_states, cond.text_mask, cond.chords)
        if weight is None:
            return F.mse_loss(pred, goal)
        return (weight * (pred.float() - goal.float()) ** 2).mean()

    def clean_estimate(self, model_output: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor,
                       source: torch.Tensor) -> torch.Tensor:
        """The edited latents one U-Net call implies at step `t` ([B] ints): the posterior-mean
        guess that diagnostics compare with the target (v: a x_t - s v; eps: (x_t - s eps) / a)."""
        abar = self.train_scheduler.alphas_cumprod.to(noisy.device, noisy.dtype)[t.long()][:, None, None]
        a, s = abar.sqrt(), (1 - abar).sqrt()
        if self.config.prediction_type == "v_prediction":
            x0 = a * noisy - s * model_output
        else:
            x0 = (noisy - s * model_output) / a
        return self.from_diffused(x0, source)

    # ------------------------------------------------------------------ sampling
    def _guided(
        self,
        unet: nn.Module,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: EditConditions,
        guidance_text: float,
        guidance_source: float,
    ) -> torch.Tensor:
        """One batched U-Net call covering the passes that the scales need (1, 2 or 3).

        A text scale of 0 (the instruction-free field that DDIM inversion follows) skips the
        full pass: it would be multiplied by 0.
        """
        b = x.shape[0]
        yes = torch.ones(b, dtype=torch.bool, device=x.device)
        no = ~yes
        if guidance_text == 1.0 and guidance_source == 1.0:
            return unet(x, t, cond.source, cond.text_states, cond.text_mask, cond.chords)
        parts = [cond] if guidance_text != 0.0 else []
        parts.append(cond.dropped(drop_text=yes, drop_source=no, drop_chords=no))
        if guidance_source != 1.0:
            drop_chords = yes if self.config.drop_chords_with_source else no
            parts.append(cond.dropped(drop_text=yes, drop_source=yes, drop_chords=drop_chords))
        batch = EditConditions.cat(parts)
        out = unet(
            x.repeat(len(parts), 1, 1),
            t,
            batch.source,
            batch.text_states,
            batch.text_mask,
            batch.chords,
        ).split(b)
        full = out[0] if guidance_text != 0.0 else None
        source_only = out[1] if full is not None else out[0]
        uncond = out[-1] if guidance_source != 1.0 else source_only
        if full is None:
            return uncond + guidance_source * (source_only - uncond)
        return combine_guidance(uncond, source_only, full, guidance_text, guidance_source)

    @torch.no_grad()
    def sample(
        self,
        unet: nn.Module,
        cond: EditConditions,
        steps: int = 25,
        guidance_text: float = 3.0,
        guidance_source: float = 1.5,
        sampler: str = "dpmsolver++",
        seed: int | torch.Generator = 0,
        progress: bool = False,
        strength: float = 1.0,
        start: str = "noise",
    ) -> torch.Tensor:
        """Draw edited latents [B, D, T] for `cond` (the residual added back to the source in
        ``residual`` mode).  The same seed gives the same output.

        Defaults (ours; the paper gives none): 25 DPM-Solver++ steps, text scale 3.0,
        source scale 1.5.  Initial noise is drawn on the CPU so seeds agree across devices.

        `strength` < 1 starts from the *source* noised to that fraction of the schedule and
        runs only the last ``round(steps * strength)`` steps (SDEdit / diffusers' img2img):
        the closer to 0, the more of the source survives and the less the edit can change.
        1 (the default) starts from pure noise, as the paper does.

        `start="inversion"` replaces that noise (pure or added to the source) by the source
        carried up the schedule along the U-Net's instruction-free field (DDIM inversion, see
        `musigen.instructme.inversion`), so that only the instruction's guidance term moves
        the result away from the input.  It costs one U-Net pass per inverted step (two when
        the source scale is not 1).
        """
        if not isinstance(steps, int) or not 1 <= steps <= self.config.num_train_timesteps:
            raise ConfigError(
                f"steps must be an integer in 1..{self.config.num_train_timesteps}, got {steps!r}"
            )
        for name, value in (("guidance_text", guidance_text), ("guidance_source", guidance_source)):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        check_strength(strength)
        check_start(start)
        scheduler = self.make_sampler(sampler)
        generator = (
            seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
        )
        device, dtype = cond.source.device, cond.source.dtype
        scheduler.set_timesteps(steps, device=device)
        x = torch.randn(cond.source.shape, generator=generator, dtype=dtype).to(device)
        timesteps = scheduler.timesteps
        skip = len(timesteps) - max(1, round(len(timesteps) * strength)) if strength < 1.0 else 0
        timesteps = timesteps[skip:]
        if skip and hasattr(scheduler, "set_begin_index"):  # multistep solvers track their index
            scheduler.set_begin_index(skip)
        clean = self.to_diffused(cond.source, cond.source)  # "no edit" in diffused space
        if start == "inversion":
            def field(z: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
                return self._guided(unet, z, level, cond, 0.0, float(guidance_source))

            x = ddim_invert(field, clean, self._schedule(), steps, len(timesteps))
        elif skip:
            x = scheduler.add_noise(clean, x, timesteps[:1].repeat(x.shape[0]))
        else:
            x = x * scheduler.init_noise_sigma
        if progress:
            from tqdm.auto import tqdm

            timesteps = tqdm(timesteps, desc=f"{sampler} sampling", unit="step")
        for t in timesteps:
            model_in = scheduler.scale_model_input(x, t)
            out = self._guided(
                unet, model_in, t.to(device), cond, float(guidance_text), float(guidance_source)
            )
            x = scheduler.step(out, t, x, generator=generator).prev_sample
        return self.from_diffused(x, cond.source)
