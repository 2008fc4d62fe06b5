"""DDIM inversion of the source: a deterministic starting noise that decodes back to the input.

Why: sampling an edit from fresh noise re-synthesises *everything*, including what the
instruction leaves alone, and a small U-Net re-synthesises it badly (the demo's edits score
below the do-nothing floor).  SDEdit (``strength < 1``) starts from the source plus *random*
noise, which destroys the same detail it is meant to keep.  Inverting the deterministic DDIM
ODE instead walks the clean source up the noise schedule with the U-Net's own "no
instruction" field, so that running the ODE back down with the same field returns (nearly)
the source; with the instruction's term added on the way down, what changes is what the
instruction asks for.  (A standard editing technique for text-to-image diffusion; the
InstructME paper samples from noise.)

The field used on the way up is the two-scale guided output with the text scale at 0:
``u + s_src * (s - u)``.  The sampler then adds ``s_text * (f - s)``, so the only difference
between the two trajectories is the instruction.  All noise arithmetic is diffusers'
`DDIMInverseScheduler`, on the training schedule with "trailing" spacing, which mirrors the
forward `DDIMScheduler` step for step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMInverseScheduler

from musigen.instructme.edit_params import STARTS, check_start  # noqa: F401 - re-exported


#: A model field: (x at some noise level, integer timestep tensor) -> U-Net output.
Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def ddim_invert(field: Field, clean: torch.Tensor, schedule: dict[str, object], steps: int,
                n_run: int) -> torch.Tensor:
    """`clean` [B, D, T] carried up `n_run` of `steps` DDIM steps along `field`.

    The result sits at the noise level of the forward sampler's ``timesteps[steps - n_run]``
    (``n_run == steps``: the pure-noise end), which is where a sampler that skips the first
    ``steps - n_run`` steps starts.  Each step evaluates the field at the level it leaves,
    the mirror of the forward step, which evaluates it at the level it leaves going down.
    """
    inverse = DDIMInverseScheduler(**schedule, clip_sample=False, set_alpha_to_one=False,
                                   timestep_spacing="trailing")
    inverse.set_timesteps(steps, device=clean.device)
    stride = inverse.config.num_train_timesteps // steps
    x = clean
    for t in inverse.timesteps[:n_run]:
        level = torch.clamp(t - stride, min=0)
        x = inverse.step(field(x, level), t, x).prev_sample
    return x
