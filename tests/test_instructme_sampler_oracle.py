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


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_residual_mode_samples_the_residual_and_adds_the_source_back(sampler: str) -> None:
    torch.manual_seed(0)
    scale = 0.5
    diffusion = EditDiffusion(DiffusionConfig(parameterization="residual", residual_scale=scale))
    source, target = torch.randn(2, 8, 24), torch.randn(2, 8, 24)
    cond = EditConditions(source, None, None, None)
    residual = diffusion.to_diffused(target, source)
    assert torch.allclose(residual, (target - source) / scale)
    assert torch.allclose(diffusion.from_diffused(residual, source), target, atol=1e-6)
    out = diffusion.sample(Oracle(diffusion, residual), cond, 25, sampler=sampler, seed=1)
    assert float(((out - target) ** 2).mean() / (target**2).mean()) < 3e-3
    # an oracle of the zero residual ("change nothing") gives the source back
    keep = diffusion.sample(Oracle(diffusion, torch.zeros_like(source)), cond, 25, sampler=sampler, seed=1)
    assert float(((keep - source) ** 2).mean() / (source**2).mean()) < 3e-3


def test_residual_training_loss_is_taken_on_the_residual_of_the_undropped_source() -> None:
    torch.manual_seed(0)
    source, target = torch.randn(4, 8, 16), torch.randn(4, 8, 16)
    cond = EditConditions(source, None, None, None)
    res = EditDiffusion(DiffusionConfig(parameterization="residual", residual_scale=2.0,
                                        text_drop_prob=0.0, source_drop_prob=1.0, both_drop_prob=0.0))
    tgt = EditDiffusion(DiffusionConfig(text_drop_prob=0.0, source_drop_prob=1.0, both_drop_prob=0.0))
    seen: list[torch.Tensor] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor, t: torch.Tensor, src: torch.Tensor, *rest: object) -> torch.Tensor:
            seen.append(src)
            return torch.zeros_like(x)

    # zero prediction: the loss is the mean square of the v target, which grows with |x0|;
    # every row's source is dropped, yet the residual is still taken against the true source
    same = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    l_res = res.training_loss(Probe(), source + 1e-3 * target, cond, generator=same[0])
    l_tgt = tgt.training_loss(Probe(), source + 1e-3 * target, cond, generator=same[1])
    assert float(l_res) < 0.5 * float(l_tgt)
    assert all(float(s.abs().max()) == 0.0 for s in seen)  # the U-Net saw the dropped source


def test_bad_parameterisations_are_refused() -> None:
    from musigen.errors import ConfigError

    with pytest.raises(ConfigError, match="parameterization"):
        DiffusionConfig(parameterization="delta")
    with pytest.raises(ConfigError, match="residual_scale"):
        DiffusionConfig(parameterization="residual", residual_scale=0.0)


class Counting(Oracle):
    """The oracle, counting its calls (one batched call per sampler step)."""

    def __init__(self, diffusion: EditDiffusion, x0: torch.Tensor) -> None:
        super().__init__(diffusion, x0)
        self.calls = 0

    def forward(self, x: torch.Tensor, t: torch.Tensor, *conditions: object) -> torch.Tensor:
        self.calls += 1
        return super().forward(x, t, *conditions)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_partial_strength_starts_mid_schedule_and_still_lands_on_the_oracle(sampler: str) -> None:
    """SDEdit start: only round(steps * strength) steps run, from the noised source, and a
    sampler started there still inverts the training parameterisation."""
    torch.manual_seed(0)
    x0, source = torch.randn(2, 8, 24), torch.randn(2, 8, 24)
    diffusion = EditDiffusion()
    cond = EditConditions(source, None, None, None)
    for strength, calls in ((0.5, 10), (0.2, 4), (0.01, 1)):
        oracle = Counting(diffusion, x0)
        out = diffusion.sample(oracle, cond, 20, 1.0, 1.0, sampler=sampler, seed=1, strength=strength)
        assert oracle.calls == calls
        if strength >= 0.2:
            assert float(((out - x0) ** 2).mean() / (x0**2).mean()) < 3e-3, strength


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_lower_strength_keeps_more_of_the_source(sampler: str) -> None:
    """A U-Net that predicts nothing (zeros) cannot edit: what comes out is what the start
    kept, so the distance to the source must shrink with the strength."""

    class Zero(nn.Module):
        def forward(self, x: torch.Tensor, *rest: object) -> torch.Tensor:
            return torch.zeros_like(x)

    torch.manual_seed(0)
    source = torch.randn(2, 8, 24)
    cond = EditConditions(source, None, None, None)
    diffusion = EditDiffusion()
    dist = [float(((diffusion.sample(Zero(), cond, 20, 1.0, 1.0, sampler=sampler, seed=2,
                                     strength=s) - source) ** 2).mean())
            for s in (1.0, 0.6, 0.3, 0.1)]
    assert dist == sorted(dist, reverse=True) and dist[-1] < 0.1 * dist[0], dist
    same = diffusion.sample(Zero(), cond, 20, 1.0, 1.0, sampler=sampler, seed=2)
    assert torch.equal(same, diffusion.sample(Zero(), cond, 20, 1.0, 1.0, sampler=sampler, seed=2,
                                              strength=1.0))  # 1 is the default path exactly
    from musigen.errors import ConfigError

    for bad in (0.0, -0.5, 1.5, float("nan"), True):
        with pytest.raises(ConfigError, match="strength"):
            diffusion.sample(Zero(), cond, 20, sampler=sampler, strength=bad)  # type: ignore[arg-type]


def test_denoise_report_scores_an_oracle_at_zero_and_the_floors_exactly() -> None:
    """The diagnostic's floors are the plain MSEs, and an oracle of the target scores ~0."""
    from musigen.eval.studies.edit_denoise import denoise_report, per_task_mse

    torch.manual_seed(0)
    diffusion = EditDiffusion(DiffusionConfig())
    target, source = torch.randn(4, 3, 10), torch.randn(4, 3, 10)
    cond = EditConditions(source, None, None, None)
    tasks = ["add", "add", "remove", "extract"]
    report = denoise_report(Oracle(diffusion, target), diffusion, cond, target, tasks, (100, 900))
    identity = ((source - target) ** 2).mean(dim=(1, 2))
    assert report["floors"]["identity"]["add"] == pytest.approx(float(identity[:2].mean()), rel=1e-5)
    assert report["floors"]["identity"]["all"] == pytest.approx(float(identity.mean()), rel=1e-5)
    assert report["counts"] == {"add": 2, "extract": 1, "remove": 1}
    for row in report["rows"]:
        assert row["full"]["all"] < 1e-6 and row["no_source"]["all"] < 1e-6
    # an oracle of the source is exactly as far from the target as copying it
    wrong = denoise_report(Oracle(diffusion, source), diffusion, cond, target, tasks, (500,))
    assert wrong["rows"][0]["full"]["all"] == pytest.approx(report["floors"]["identity"]["all"], rel=1e-3)
    assert per_task_mse(target, target, tasks)["remove"] == 0.0


def test_denoise_report_no_instruction_row_drops_only_the_text() -> None:
    """A U-Net that knows the target only when told the instruction scores ~0 with it and
    exactly the copy floor without it (the source alone is kept), so the row isolates the text."""
    from musigen.eval.studies.edit_denoise import denoise_report, format_report

    class TextGated(nn.Module):
        def __init__(self, diffusion: EditDiffusion, target: torch.Tensor, source: torch.Tensor) -> None:
            super().__init__()
            self.told, self.untold = Oracle(diffusion, target), Oracle(diffusion, source)

        def forward(self, x: torch.Tensor, t: torch.Tensor, source: torch.Tensor, states: torch.Tensor,
                    mask: torch.Tensor, chords: object) -> torch.Tensor:
            if source.abs().sum() == 0:  # the "no source" row: not what this test is about
                return torch.zeros_like(x)
            told = mask.any(dim=1)[:, None, None]
            return torch.where(told, self.told(x, t), self.untold(x, t))

    torch.manual_seed(0)
    diffusion = EditDiffusion(DiffusionConfig())
    target, source = torch.randn(3, 3, 10), torch.randn(3, 3, 10)
    cond = EditConditions(source, torch.randn(3, 4, 5), torch.ones(3, 4, dtype=torch.bool), None)
    report = denoise_report(TextGated(diffusion, target, source), diffusion, cond, target, ["add"] * 3, (200, 800))
    for row in report["rows"]:
        assert row["full"]["all"] < 1e-6
        assert row["no_text"]["all"] == pytest.approx(report["floors"]["identity"]["all"], rel=1e-3)
    assert "U-Net without instruction" in format_report(report)


def test_denoise_report_refuses_bad_timesteps_and_labels() -> None:
    from musigen.errors import ConfigError
    from musigen.eval.studies.edit_denoise import denoise_report

    diffusion = EditDiffusion(DiffusionConfig())
    x = torch.zeros(2, 3, 4)
    cond = EditConditions(x, None, None, None)
    with pytest.raises(ConfigError, match="timesteps"):
        denoise_report(Oracle(diffusion, x), diffusion, cond, x, ["add", "add"], (1000,))
    with pytest.raises(ConfigError, match="task labels"):
        denoise_report(Oracle(diffusion, x), diffusion, cond, x, ["add"], (10,))
