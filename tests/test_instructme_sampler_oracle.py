"""The samplers invert the training parameterisation: an oracle U-Net gives back the clean latent.

The oracle returns, at every step, the exact training target (velocity or noise, built with
the *training* scheduler) for a known clean latent x0.  If a sampler disagreed with training
about the prediction type, the noise schedule or the timestep grid, it would not land on x0.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from musigen.instructme.diffusion import (
    SAMPLERS,
    DiffusionConfig,
    EditConditions,
    EditDiffusion,
)


class Oracle(nn.Module):
    """Returns the training target for `x0` from the noisy input alone (conditions ignored)."""

    def __init__(self, diffusion: EditDiffusion, x0: torch.Tensor) -> None:
        super().__init__()
        self.sched, self.x0 = diffusion.train_scheduler, x0

    def forward(self, x: torch.Tensor, t: torch.Tensor, *conditions: object) -> torch.Tensor:
        x0 = self.x0.repeat(x.shape[0] // self.x0.shape[0], 1, 1)
        t = torch.as_tensor(t).reshape(-1).expand(x.shape[0])
        abar = self.sched.alphas_cumprod[t][:, None, None]
        eps = (x - abar.sqrt() * x0) / (1 - abar).sqrt()  # the noise that makes x from x0
        if self.sched.config.prediction_type == "epsilon":
            return eps
        return self.sched.get_velocity(x0, eps, t)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("config", [DiffusionConfig(),
                                    DiffusionConfig(prediction_type="epsilon", beta_schedule="scaled_linear")],
                         ids=["v-cosine", "eps-scaled-linear"])
def test_an_oracle_unet_is_sampled_back_to_its_clean_latent(sampler: str, config: DiffusionConfig) -> None:
    torch.manual_seed(0)
    x0 = torch.randn(2, 8, 24)
    diffusion = EditDiffusion(config)
    cond = EditConditions(torch.randn_like(x0), torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), None)
    for steps in (4, 25):
        for scales in ((1.0, 1.0), (3.0, 1.5)):  # the oracle ignores conditions: guidance is neutral
            out = diffusion.sample(Oracle(diffusion, x0), cond, steps, *scales, sampler=sampler, seed=1)
            rel = float(((out - x0) ** 2).mean() / (x0**2).mean())
            # DDIM stops at alphas_cumprod[0] (set_alpha_to_one=False): residual noise 1 - abar_0
            assert rel < 3e-3, f"{sampler} {steps} steps {scales}: relative error {rel:.2e}"
    # and a wrong oracle (a different clean latent) is not what comes out: the check can fail
    wrong = diffusion.sample(Oracle(diffusion, -x0), cond, 25, sampler=sampler, seed=1)
    assert float(((wrong - x0) ** 2).mean() / (x0**2).mean()) > 1.0
