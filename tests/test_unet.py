"""The InstructME U-Net and its chunk transformer: shapes, locality, ablation flags, learning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from musigen.errors import CheckpointError, ConfigError
from musigen.instructme.chunk_transformer import (
    ChunkTransformer,
    ChunkTransformerBlock,
    chunked_attention,
)
from musigen.instructme.diffusion import DiffusionConfig, EditConditions, EditDiffusion
from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig

D, V, TEXT = 4, 5, 8


def tiny_config(**overrides: object) -> InstructMEUNetConfig:
    base: dict[str, object] = dict(
        latent_channels=D,
        chord_dim=V,
        text_dim=TEXT,
        base_channels=16,
        chord_channels=8,
        chunk_size=8,
    )
    return InstructMEUNetConfig.preset("debug", **{**base, **overrides})


def inputs(b: int, t: int) -> tuple[torch.Tensor, ...]:
    chords = torch.nn.functional.one_hot(torch.randint(0, V, (b, t)), V).float()
    mask = torch.ones(b, 3, dtype=torch.bool)
    return torch.randn(b, D, t), torch.randn(b, D, t), torch.randn(b, 3, TEXT), mask, chords


def block(shifted: bool, full: bool = False) -> ChunkTransformerBlock:
    return ChunkTransformerBlock(
        16, 2, chunk_size=8, shifted=shifted, text_dim=TEXT, cond_dim=3, full_attention=full
    ).eval()


def block_inputs(t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.randn(1, t, 16),
        torch.randn(1, 3, TEXT),
        torch.ones(1, 3, dtype=torch.bool),
        torch.randn(1, t, 3),
    )


def changed_frames(module: torch.nn.Module, t: int, frame: int) -> set[int]:
    """Frames whose output moves when input frame `frame` is perturbed."""
    x, text, mask, cond = block_inputs(t)
    y = x.clone()
    y[:, frame] += torch.randn(x.shape[-1])  # not a constant: LayerNorm would cancel that
    with torch.no_grad():
        diff = (module(y, text, mask, cond) - module(x, text, mask, cond)).abs().amax(dim=-1)[0]
    return {int(i) for i in torch.nonzero(diff > 1e-6)}


@pytest.mark.parametrize("t", [1, 7, 33, 50])
@pytest.mark.parametrize(
    "flags", [{}, {"multiscale_source": False}, {"use_chords": False}, {"full_attention": True},
              {"concat_source_input": True}]
)
def test_any_length_gives_the_input_shape(t: int, flags: dict[str, bool]) -> None:
    unet = InstructMEUNet(
        tiny_config(channel_mults=(1, 2, 2), attention_levels=(0, 2), **flags)
    ).eval()
    noisy, source, text, mask, chords = inputs(2, t)
    mask[0, 1:] = False
    with torch.no_grad():
        out = unet(noisy, torch.tensor([10, 900]), source, text, mask, chords)
    assert out.shape == (2, D, t) and torch.isfinite(out).all()


@pytest.mark.parametrize("t", [40, 37])
def test_unshifted_block_mixes_only_inside_a_chunk(t: int) -> None:
    """Perturbing frame 11 moves exactly its chunk, frames 8..15 (chunk size 8)."""
    assert changed_frames(block(shifted=False), t, 11) == set(range(8, 16))
    assert changed_frames(block(shifted=False), t, 36) == set(range(32, t))  # a partial last chunk


def test_shifted_block_moves_the_chunk_borders() -> None:
    """The shifted grid starts 4 frames early: frame 7 now shares a chunk with frames 4..11."""
    assert changed_frames(block(shifted=True), 40, 7) == set(range(4, 12))
    assert changed_frames(block(shifted=True), 40, 1) == set(range(0, 4))  # left padding is masked


def test_stacked_blocks_carry_information_across_chunks() -> None:
    stack = ChunkTransformer(16, depth=2, heads=2, chunk_size=8, text_dim=TEXT, cond_dim=3).eval()
    x, text, mask, cond = block_inputs(40)
    y = x.clone()
    y[:, 0] += torch.randn(16)  # frame 0 is in chunk 0..7 of the unshifted grid
    with torch.no_grad():
        args = (text, mask, cond.transpose(1, 2), None)
        diff = (
            (stack(y.transpose(1, 2), *args) - stack(x.transpose(1, 2), *args)).abs().amax(dim=1)[0]
        )
    reached = {int(i) for i in torch.nonzero(diff > 1e-6)}
    assert reached == set(range(0, 12))  # 0..7, then the shifted chunk 4..11 carries it further


@pytest.mark.parametrize("shifted, t", [(False, 5), (False, 8), (True, 3), (True, 4)])
def test_padding_never_leaks_into_attention(shifted: bool, t: int) -> None:
    """A sequence that fits in one (padded) chunk gets exactly full attention's answer."""
    chunked = block(shifted)
    full = block(shifted, full=True)
    full.load_state_dict(chunked.state_dict())
    x, text, mask, cond = block_inputs(t)
    with torch.no_grad():
        torch.testing.assert_close(chunked(x, text, mask, cond), full(x, text, mask, cond))


@pytest.mark.parametrize("shift", [0, 4])
def test_key_mask_equals_cropping(shift: int) -> None:
    """Masking the last keys (the general path) is the same as dropping those frames."""
    q, k, v = torch.randn(3, 2, 2, 27, 4).unbind(0)
    valid = torch.ones(2, 27, dtype=torch.bool)
    valid[:, 23:] = False
    masked = chunked_attention(q, k, v, 8, shift, valid)[:, :, :23]
    cropped = chunked_attention(q[:, :, :23], k[:, :, :23], v[:, :, :23], 8, shift, None)
    torch.testing.assert_close(masked, cropped)
    assert torch.isfinite(
        chunked_attention(q, k, v, 8, shift, torch.zeros(2, 27, dtype=torch.bool))
    ).all()


def test_appending_frames_does_not_change_finished_chunks() -> None:
    b = block(shifted=False)
    x, text, mask, _ = block_inputs(21)
    cond = torch.randn(1, 21, 3)
    with torch.no_grad():
        long = b(x, text, mask, cond)[:, :16]
        short = b(x[:, :16], text, mask, cond[:, :16])
    torch.testing.assert_close(long, short)


def test_cross_attention_ignores_masked_tokens_only() -> None:
    b = block(shifted=False)
    x, text, mask, cond = block_inputs(16)
    mask[0, 2] = False
    other = text.clone()
    other[0, 2] += 5.0
    with torch.no_grad():
        base = b(x, text, mask, cond)
        torch.testing.assert_close(b(x, other, mask, cond), base)
        other[0, 0] += 5.0
        assert not torch.allclose(b(x, other, mask, cond), base)


def test_multiscale_flag_changes_the_architecture() -> None:
    multi = InstructMEUNet(tiny_config(multiscale_source=True))
    single = InstructMEUNet(tiny_config(multiscale_source=False))
    assert multi.conv_in.in_channels == D and single.conv_in.in_channels == 2 * D
    fusions = [k for k in multi.state_dict() if k.startswith("source_fuse.")]
    assert (
        len({k.split(".")[1] for k in fusions}) == len(multi.levels) + 1
    )  # every level + bottleneck
    assert not any(k.startswith("source_") for k in single.state_dict())
    for unet in (multi, single):  # either way the source reaches the output
        noisy, source, text, mask, chords = inputs(1, 16)
        with torch.no_grad():
            a = unet(noisy, 5, source, text, mask, chords)
            b = unet(noisy, 5, source + 1.0, text, mask, chords)
        assert not torch.allclose(a, b)


def test_concat_source_input_adds_the_input_path_to_multiscale_aggregation() -> None:
    both = InstructMEUNet(tiny_config(concat_source_input=True))
    multi = InstructMEUNet(tiny_config())
    assert both.conv_in.in_channels == 2 * D and multi.conv_in.in_channels == D
    assert {k for k in both.state_dict() if k.startswith("source_")} == {
        k for k in multi.state_dict() if k.startswith("source_")}
    # the first conv reads the source directly: with the multi-scale fusions zeroed it still counts
    with torch.no_grad():
        for name, param in both.named_parameters():
            if name.startswith("source_fuse."):
                param.zero_()
        noisy, source, text, mask, chords = inputs(1, 16)
        a = both(noisy, 5, source, text, mask, chords)
        b = both(noisy, 5, source + 1.0, text, mask, chords)
    assert not torch.allclose(a, b)


def test_chord_flag_switches_the_chord_path() -> None:
    noisy, source, text, mask, chords = inputs(1, 16)
    other = torch.roll(chords, 3, dims=-1)
    for use, should_change in ((True, True), (False, False)):
        unet = InstructMEUNet(tiny_config(use_chords=use)).eval()
        with torch.no_grad():
            a = unet(noisy, 5, source, text, mask, chords)
            b = unet(noisy, 5, source, text, mask, other)
        assert (not torch.allclose(a, b)) == should_change
    assert not any("chord" in k for k in InstructMEUNet(tiny_config(use_chords=False)).state_dict())


def test_bad_shapes_are_config_errors() -> None:
    unet = InstructMEUNet(tiny_config())
    noisy, source, text, mask, chords = inputs(1, 16)
    with pytest.raises(ConfigError, match="latents"):
        unet(torch.randn(1, D + 1, 16), 5, source, text, mask, chords)
    with pytest.raises(ConfigError, match="chord"):
        unet(noisy, 5, source, text, mask, chords[:, :10])
    with pytest.raises(ConfigError, match="text_mask"):
        unet(noisy, 5, source, text, mask.float(), chords)
    with pytest.raises(ConfigError):
        InstructMEUNetConfig.preset("huge")
    with pytest.raises(ConfigError):
        InstructMEUNetConfig(attention_levels=(7,))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    unet = InstructMEUNet(tiny_config()).eval()
    unet.save_pretrained(tmp_path / "unet")
    again = InstructMEUNet.from_pretrained(tmp_path / "unet")
    assert again.config == unet.config
    noisy, source, text, mask, chords = inputs(1, 12)
    with torch.no_grad():
        torch.testing.assert_close(
            again(noisy, 3, source, text, mask, chords), unet(noisy, 3, source, text, mask, chords)
        )
    with pytest.raises(CheckpointError, match="not found"):
        InstructMEUNet.from_pretrained(tmp_path / "missing")
    InstructMEUNet(tiny_config(base_channels=32)).save_pretrained(tmp_path / "other")
    (tmp_path / "unet" / "model.safetensors").replace(tmp_path / "other" / "model.safetensors")
    with pytest.raises(CheckpointError, match="do not match"):
        InstructMEUNet.from_pretrained(tmp_path / "other")


def test_a_trained_unet_edits_toward_its_target() -> None:
    """Overfit one (source, instruction, target) triplet: sampling must land near the target."""
    torch.manual_seed(0)
    t = 24
    unet = InstructMEUNet(tiny_config())
    diffusion = EditDiffusion(
        DiffusionConfig(text_drop_prob=0.0, source_drop_prob=0.0, both_drop_prob=0.0)
    )
    _, source, text, mask, chords = inputs(1, t)
    target = torch.randn(1, D, t)
    cond = EditConditions(source, text, mask, chords)

    def error() -> float:
        unet.eval()
        out = diffusion.sample(
            unet, cond, steps=20, guidance_text=1.0, guidance_source=1.0, sampler="ddim", seed=1
        )
        unet.train()
        return float((out - target).pow(2).mean())

    untrained = error()
    batch = EditConditions(
        source.repeat(8, 1, 1), text.repeat(8, 1, 1), mask.repeat(8, 1), chords.repeat(8, 1, 1)
    )
    optimizer = torch.optim.AdamW(unet.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        loss = diffusion.training_loss(unet, target.repeat(8, 1, 1), batch, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = error()
    assert trained < 0.35 * untrained, (trained, untrained)
