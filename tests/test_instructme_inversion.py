"""DDIM inversion: the inverted source decodes back to the source, and only the instruction moves it."""

from __future__ import annotations

import pytest
import torch

from musigen.errors import ConfigError
from musigen.instructme.diffusion import SAMPLERS, EditConditions, EditDiffusion
from musigen.instructme.inversion import STARTS, check_start, ddim_invert
from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig

D, V, TEXT, T = 4, 5, 8, 20


@pytest.fixture(scope="module")
def unet() -> InstructMEUNet:
    torch.manual_seed(0)
    config = InstructMEUNetConfig.preset("debug", latent_channels=D, chord_dim=V, text_dim=TEXT,
                                         base_channels=16, chord_channels=8, chunk_size=8)
    return InstructMEUNet(config).eval()


def conditions(with_text: bool) -> EditConditions:
    g = torch.Generator().manual_seed(1)
    chords = torch.nn.functional.one_hot(torch.randint(0, V, (2, T), generator=g), V).float()
    source = torch.randn(2, D, T, generator=g)
    if not with_text:
        return EditConditions(source, None, None, chords)
    return EditConditions(source, torch.randn(2, 3, TEXT, generator=g) * 3,
                          torch.ones(2, 3, dtype=torch.bool), chords)


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean() / (b**2).mean())


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_without_an_instruction_the_inverted_source_samples_back_to_the_source(
        unet: InstructMEUNet, sampler: str, strength: float) -> None:
    # No text: the sampler's guided field equals the instruction-free field the inversion
    # followed, so the round trip returns the source up to the ODE discretisation error.
    diffusion, cond = EditDiffusion(), conditions(with_text=False)
    errors = []
    for steps in (10, 50):
        out = diffusion.sample(unet, cond, steps, 2.0, 3.0, sampler=sampler, seed=0,
                               strength=strength, start="inversion")
        errors.append(rel_error(out, cond.source))
    from_noise = rel_error(diffusion.sample(unet, cond, 50, 2.0, 3.0, sampler=sampler, seed=0,
                                            strength=strength), cond.source)
    assert errors[1] < 0.01, errors
    assert errors[1] < errors[0] / 3, f"finer steps should invert better: {errors}"
    assert errors[1] < from_noise / 50, (errors, from_noise)


def test_the_instruction_is_what_moves_an_inverted_edit(unet: InstructMEUNet) -> None:
    diffusion, cond = EditDiffusion(), conditions(with_text=True)
    kept = diffusion.sample(unet, cond, 50, 0.0, 1.0, sampler="ddim", start="inversion")
    edited = diffusion.sample(unet, cond, 50, 3.0, 1.0, sampler="ddim", start="inversion")
    assert rel_error(kept, cond.source) < 0.01  # text scale 0: the instruction-free field only
    assert rel_error(edited, cond.source) > 10 * rel_error(kept, cond.source)
    # deterministic: the seed only feeds fresh noise, which inversion does not use
    again = diffusion.sample(unet, cond, 50, 3.0, 1.0, sampler="ddim", start="inversion", seed=5)
    torch.testing.assert_close(edited, again, rtol=0, atol=0)


def test_inversion_lands_at_the_level_the_sampler_starts_from() -> None:
    # Carry the source k of 16 steps up, then take the forward sampler's last k steps down
    # with the same field: the source must come back.  The field is the exact denoiser of
    # Gaussian data (std 2), which depends strongly on the noise level, so evaluating it at
    # the wrong level or stopping a step off (both tried) raises the error more than tenfold.
    diffusion = EditDiffusion()
    abar = diffusion.train_scheduler.alphas_cumprod

    def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = abar[t].sqrt(), (1 - abar[t]).sqrt()
        x0 = a * 4.0 * x / (a * a * 4.0 + s * s)
        return a * (x - a * x0) / s - s * x0  # the velocity

    clean = 2 * torch.randn(2, D, T, generator=torch.Generator().manual_seed(0))
    for n_run, tol in ((2, 1e-4), (4, 5e-4), (16, 0.06)):
        x = ddim_invert(field, clean, diffusion._schedule(), 16, n_run)
        scheduler = diffusion.make_sampler("ddim")
        scheduler.set_timesteps(16)
        for t in scheduler.timesteps[16 - n_run:]:
            x = scheduler.step(field(x, t), t, x).prev_sample
        assert rel_error(x, clean) < tol, (n_run, rel_error(x, clean))


def test_text_scale_zero_skips_the_full_pass_and_equals_the_two_pass_formula(unet: InstructMEUNet) -> None:
    diffusion, cond = EditDiffusion(), conditions(with_text=True)
    x, t = torch.randn(2, D, T), torch.tensor(500)
    yes, no = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    s = cond.dropped(yes, no, no)
    u = cond.dropped(yes, yes, yes)
    s_out = unet(x, t, s.source, s.text_states, s.text_mask, s.chords)
    u_out = unet(x, t, u.source, u.text_states, u.text_mask, u.chords)
    torch.testing.assert_close(diffusion._guided(unet, x, t, cond, 0.0, 4.0), u_out + 4.0 * (s_out - u_out),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(diffusion._guided(unet, x, t, cond, 0.0, 1.0), s_out, rtol=1e-4, atol=1e-5)


def test_unknown_starts_are_config_errors(unet: InstructMEUNet) -> None:
    assert check_start("inversion") == "inversion" and STARTS == ("noise", "inversion")
    for bad in ("invert", "", None, 1):
        with pytest.raises(ConfigError, match="unknown start"):
            check_start(bad)
    with pytest.raises(ConfigError, match="known: noise, inversion"):
        EditDiffusion().sample(unet, conditions(False), 2, start="ddim-inversion")
