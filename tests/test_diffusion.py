"""Diffusion objective and two-scale-CFG sampling on diffusers' schedulers."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from musigen.errors import ConfigError
from musigen.instructme.diffusion import (
    SAMPLERS,
    DiffusionConfig,
    EditConditions,
    EditDiffusion,
    combine_guidance,
    drop_conditions,
)
from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig

D, V, TEXT, T = 4, 5, 8, 20


@pytest.fixture
def unet() -> InstructMEUNet:
    config = InstructMEUNetConfig.preset(
        "debug",
        latent_channels=D,
        chord_dim=V,
        text_dim=TEXT,
        base_channels=16,
        chord_channels=8,
        chunk_size=8,
    )
    return InstructMEUNet(config).eval()


def conditions(b: int = 2) -> EditConditions:
    mask = torch.ones(b, 3, dtype=torch.bool)
    mask[0, 2] = False
    chords = torch.nn.functional.one_hot(torch.randint(0, V, (b, T)), V).float()
    return EditConditions(torch.randn(b, D, T), torch.randn(b, 3, TEXT), mask, chords)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_output(unet: InstructMEUNet, sampler: str) -> None:
    diffusion, cond = EditDiffusion(), conditions()
    a = diffusion.sample(unet, cond, steps=4, sampler=sampler, seed=7)
    b = diffusion.sample(unet, cond, steps=4, sampler=sampler, seed=7)
    c = diffusion.sample(unet, cond, steps=4, sampler=sampler, seed=8)
    assert a.shape == (2, D, T) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(
        diffusion.sample(unet, cond, steps=3, sampler=sampler, seed=g1),
        diffusion.sample(unet, cond, steps=3, sampler=sampler, seed=g2),
    )


def test_samplers_differ_but_both_follow_the_schedule(unet: InstructMEUNet) -> None:
    diffusion, cond = EditDiffusion(), conditions()
    outs = {s: diffusion.sample(unet, cond, steps=5, sampler=s, seed=0) for s in SAMPLERS}
    assert not torch.allclose(outs["ddim"], outs["dpmsolver++"])
    assert type(diffusion.make_sampler("dpmsolver++")).__name__ == "DPMSolverMultistepScheduler"
    assert diffusion.make_sampler("dpmsolver++").config.algorithm_type == "dpmsolver++"
    assert type(diffusion.make_sampler("ddim")).__name__ == "DDIMScheduler"


def reference_sample(
    unet: nn.Module,
    diffusion: EditDiffusion,
    cond: EditConditions,
    steps: int,
    s_text: float,
    s_src: float,
    passes: int,
) -> torch.Tensor:
    """A deliberately naive loop: separate U-Net calls per pass, combined by hand."""
    scheduler = diffusion.make_sampler("ddim")
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(cond.source.shape, generator=generator) * scheduler.init_noise_sigma
    b = cond.batch_size
    no_text = EditConditions(
        cond.source, cond.text_states, torch.zeros_like(cond.text_mask), cond.chords
    )
    nothing = EditConditions(
        torch.zeros_like(cond.source),
        cond.text_states,
        torch.zeros_like(cond.text_mask),
        torch.zeros_like(cond.chords),
    )
    with torch.no_grad():
        for t in scheduler.timesteps:
            ts = t.repeat(b)
            full = unet(x, ts, cond.source, cond.text_states, cond.text_mask, cond.chords)
            if passes == 1:
                out = full
            else:
                src = unet(
                    x, ts, no_text.source, no_text.text_states, no_text.text_mask, no_text.chords
                )
                unc = unet(
                    x, ts, nothing.source, nothing.text_states, nothing.text_mask, nothing.chords
                )
                out = unc + s_src * (src - unc) + s_text * (full - src)
            x = scheduler.step(out, t, x).prev_sample
    return x


def test_unit_guidance_is_the_conditional_pass(unet: InstructMEUNet) -> None:
    diffusion, cond = EditDiffusion(), conditions()
    ours = diffusion.sample(
        unet, cond, steps=4, guidance_text=1.0, guidance_source=1.0, sampler="ddim", seed=0
    )
    torch.testing.assert_close(ours, reference_sample(unet, diffusion, cond, 4, 1.0, 1.0, passes=1))


def test_batched_two_scale_guidance_matches_separate_passes(unet: InstructMEUNet) -> None:
    diffusion, cond = EditDiffusion(), conditions()
    ours = diffusion.sample(
        unet, cond, steps=4, guidance_text=3.0, guidance_source=1.5, sampler="ddim", seed=0
    )
    ref = reference_sample(unet, diffusion, cond, 4, 3.0, 1.5, passes=3)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    plain = diffusion.sample(
        unet, cond, steps=4, guidance_text=1.0, guidance_source=1.0, sampler="ddim", seed=0
    )
    assert not torch.allclose(ours, plain)  # the scales really act
    only_text = diffusion.sample(
        unet, cond, steps=4, guidance_text=3.0, guidance_source=1.0, sampler="ddim", seed=0
    )
    torch.testing.assert_close(
        only_text,
        reference_sample(unet, diffusion, cond, 4, 3.0, 1.0, passes=3),
        rtol=1e-4,
        atol=1e-4,
    )


def test_combine_guidance_algebra() -> None:
    u, s, f = torch.randn(3, 2, 4, 5).unbind(0)
    torch.testing.assert_close(combine_guidance(u, s, f, 1.0, 1.0), f)
    torch.testing.assert_close(combine_guidance(u, s, f, 0.0, 0.0), u)
    torch.testing.assert_close(combine_guidance(u, s, f, 0.0, 1.0), s)


def test_condition_dropout_rates_and_semantics() -> None:
    n = 4000
    cond = EditConditions(
        torch.randn(n, 1, 2) + 3.0,
        torch.randn(n, 2, 3),
        torch.ones(n, 2, dtype=torch.bool),
        torch.ones(n, 2, 4),
    )
    config = DiffusionConfig(text_drop_prob=0.1, source_drop_prob=0.2, both_drop_prob=0.3)
    out = drop_conditions(cond, config, torch.Generator().manual_seed(0))
    text_gone = ~out.text_mask.any(dim=1)
    src_gone = (out.source == 0).all(dim=(1, 2))
    chords_gone = (out.chords == 0).all(dim=(1, 2))
    assert torch.equal(src_gone, chords_gone)  # chords go with the source
    rates = [
        float(x.float().mean())
        for x in (text_gone & ~src_gone, src_gone & ~text_gone, text_gone & src_gone)
    ]
    for rate, want in zip(rates, (0.1, 0.2, 0.3)):
        assert abs(rate - want) < 0.03, rates
    kept = ~text_gone & ~src_gone
    assert torch.equal(out.source[kept], cond.source[kept]) and torch.equal(
        out.text_states[kept], cond.text_states[kept]
    )
    none = drop_conditions(
        cond, DiffusionConfig(text_drop_prob=0.0, source_drop_prob=0.0, both_drop_prob=0.0)
    )
    assert torch.equal(none.source, cond.source) and torch.equal(none.text_mask, cond.text_mask)


class Oracle(nn.Module):
    """Knows the clean target (passed as `source`) so it can return the exact epsilon or v."""

    def __init__(self, diffusion: EditDiffusion, kind: str) -> None:
        super().__init__()
        self.alphas = diffusion.train_scheduler.alphas_cumprod
        self.kind = kind

    def forward(
        self, noisy: torch.Tensor, t: torch.Tensor, x0: torch.Tensor, *_: object
    ) -> torch.Tensor:
        a = self.alphas[t].sqrt()[:, None, None]
        s = (1 - self.alphas[t]).sqrt()[:, None, None]
        eps = (noisy - a * x0) / s
        return eps if self.kind == "epsilon" else a * eps - s * x0


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_training_target_matches_the_parameterisation(prediction: str) -> None:
    diffusion = EditDiffusion(
        DiffusionConfig(prediction_type=prediction, beta_schedule="scaled_linear")
    )
    target = torch.randn(64, D, T)
    cond = EditConditions(target, None, None, None)
    g = torch.Generator().manual_seed(0)
    wrong_kind = "v_prediction" if prediction == "epsilon" else "epsilon"
    right_model, wrong_model = Oracle(diffusion, prediction), Oracle(diffusion, wrong_kind)
    right = diffusion.training_loss(right_model, target, cond, generator=g, drop=False)
    wrong = diffusion.training_loss(wrong_model, target, cond, generator=g, drop=False)
    assert float(right) < 1e-6 < 0.1 < float(wrong)


def test_training_loss_backpropagates_into_the_unet(unet: InstructMEUNet) -> None:
    unet.train()
    cond = conditions(4)
    loss = EditDiffusion().training_loss(
        unet, torch.randn(4, D, T), cond, generator=torch.Generator().manual_seed(0)
    )
    loss.backward()
    assert (
        torch.isfinite(loss)
        and unet.conv_in.weight.grad is not None
        and unet.null_text.grad is not None
    )


def test_bad_sampling_arguments_are_config_errors(unet: InstructMEUNet) -> None:
    diffusion, cond = EditDiffusion(), conditions()
    with pytest.raises(ConfigError, match="known samplers"):
        diffusion.sample(unet, cond, steps=2, sampler="euler")
    with pytest.raises(ConfigError, match="steps"):
        diffusion.sample(unet, cond, steps=0)
    with pytest.raises(ConfigError, match="guidance_text"):
        diffusion.sample(unet, cond, steps=2, guidance_text=float("nan"))
    with pytest.raises(ConfigError):
        DiffusionConfig(prediction_type="sample")
    with pytest.raises(ConfigError, match="unstable"):
        DiffusionConfig(prediction_type="epsilon")  # with the cosine schedule
    with pytest.raises(ConfigError):
        DiffusionConfig(text_drop_prob=0.6, source_drop_prob=0.6)


def test_timestep_bias_shifts_training_towards_high_noise_and_validation_stays_uniform() -> None:
    from musigen.instructme.diffusion import DiffusionConfig, EditDiffusion

    d = EditDiffusion(DiffusionConfig(timestep_bias=1.0))
    g = torch.Generator().manual_seed(0)
    uniform = d.draw_timesteps(20000, 0.0, g).double()
    biased = d.draw_timesteps(20000, 1.0, g).double()
    assert uniform.min() >= 0 and biased.max() <= 999
    assert abs(uniform.mean().item() - 499.5) < 10  # uniform over 0..999
    assert abs(biased.mean().item() - 666) < 10  # density ~ t: mean 2T/3
    # the loss draws its timesteps from the generator: an explicit bias of 0 is the uniform draw
    plain = EditDiffusion(DiffusionConfig())
    assert torch.equal(plain.draw_timesteps(8, 0.0, torch.Generator().manual_seed(3)),
                       d.draw_timesteps(8, 0.0, torch.Generator().manual_seed(3)))
    with pytest.raises(ConfigError, match="timestep_bias"):
        DiffusionConfig(timestep_bias=-1.0)


def test_matching_source_statistics_per_channel() -> None:
    from musigen.instructme.diffusion import match_source_statistics

    g = torch.Generator().manual_seed(0)
    source = torch.randn(2, 4, 50, generator=g) * torch.tensor([1.0, 2.0, 0.5, 3.0])[:, None] + 1.0
    edited = 5.0 * torch.randn(2, 4, 50, generator=g) - 2.0
    out = match_source_statistics(edited, source)
    torch.testing.assert_close(out.mean(-1), source.mean(-1))
    torch.testing.assert_close(out.std(-1, unbiased=False), source.std(-1, unbiased=False))
    # the shape of the edit over time is kept: a per-channel affine map of it
    corr = torch.nn.functional.cosine_similarity(out - out.mean(-1, keepdim=True),
                                                 edited - edited.mean(-1, keepdim=True), dim=-1)
    torch.testing.assert_close(corr, torch.ones_like(corr))
    # latents that already match come back unchanged; a constant channel is only shifted
    torch.testing.assert_close(match_source_statistics(source, source), source)
    flat = edited.clone()
    flat[:, 1] = 3.0
    shifted = match_source_statistics(flat, source)
    torch.testing.assert_close(shifted[:, 1], source[:, 1].mean(-1, keepdim=True).expand(-1, 50))
    with pytest.raises(ConfigError, match="differ"):
        match_source_statistics(edited[:, :, :10], source)


def test_changed_weight_emphasises_what_the_edit_changes(unet: InstructMEUNet) -> None:
    from musigen.instructme.diffusion import changed_weights

    g = torch.Generator().manual_seed(0)
    source = torch.randn(2, D, T, generator=g)
    target = source.clone()
    target[0, :, 5:10] += 3.0  # example 0 changes frames 5..9 only; example 1 is unchanged
    w = changed_weights(target, source, 4.0)
    assert w is not None and w.shape == target.shape
    torch.testing.assert_close(w.mean(dim=(1, 2)), torch.ones(2))  # mean weight 1 per example
    assert w[0, :, 5:10].min() > 1.0 > w[0, :, :5].max()  # changed frames weigh more
    torch.testing.assert_close(w[1], torch.ones(D, T))  # nothing changed: plain MSE
    assert changed_weights(target, source, 0.0) is None

    # the loss: the same draw (seeded) with and without the weight differs, and an explicit
    # override of 0 (validation) gives back the plain MSE exactly
    cond = conditions()
    cond.source = source
    weighted = EditDiffusion(DiffusionConfig(changed_weight=4.0))
    plain = EditDiffusion(DiffusionConfig())
    with torch.no_grad():
        lw = weighted.training_loss(unet, target, cond, torch.Generator().manual_seed(1), drop=False)
        lp = plain.training_loss(unet, target, cond, torch.Generator().manual_seed(1), drop=False)
        l0 = weighted.training_loss(unet, target, cond, torch.Generator().manual_seed(1), drop=False,
                                    changed_weight=0.0)
    assert torch.isfinite(lw) and not torch.isclose(lw, lp)
    torch.testing.assert_close(l0, lp)
    with pytest.raises(ConfigError, match="changed_weight"):
        DiffusionConfig(changed_weight=float("nan"))
