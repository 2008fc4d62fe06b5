"""The delay pattern: an exact, invertible interleaving of K codebook streams."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from musigen.errors import ConfigError
from musigen.musicot.patterns import UNKNOWN, DelayPattern

PAD = 99


@st.composite
def codes_and_pattern(draw: st.DrawFn) -> tuple[DelayPattern, torch.Tensor]:
    k = draw(st.integers(1, 5))
    delays = tuple(draw(st.lists(st.integers(0, 6), min_size=k, max_size=k)))
    t = draw(st.integers(0, 12))
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    seed = draw(st.integers(0, 2**31 - 1))
    codes = torch.randint(0, PAD, (*lead, k, t), generator=torch.Generator().manual_seed(seed))
    return DelayPattern(delays, PAD), codes


@settings(max_examples=200, deadline=None)
@given(codes_and_pattern())
def test_round_trip_is_exact(case: tuple[DelayPattern, torch.Tensor]) -> None:
    pattern, codes = case
    steps = pattern.interleave(codes)
    assert steps.shape[-1] == codes.shape[-1] + pattern.max_delay
    assert torch.equal(pattern.deinterleave(steps), codes)


@settings(max_examples=200, deadline=None)
@given(codes_and_pattern())
def test_each_stream_is_shifted_by_its_delay_and_padded_elsewhere(
    case: tuple[DelayPattern, torch.Tensor],
) -> None:
    pattern, codes = case
    steps = pattern.interleave(codes)
    valid = pattern.valid_mask(codes.shape[-1])
    assert torch.all(steps[..., ~valid] == PAD)
    for k, d in enumerate(pattern.delays):
        assert torch.equal(steps[..., k, d : d + codes.shape[-1]], codes[..., k, :])
    # the inverse of the inverse: re-interleaving the recovered frames gives the same steps
    assert torch.equal(pattern.interleave(pattern.deinterleave(steps)), steps)


def test_musicgen_layout_matches_the_documented_example() -> None:
    # 4 codebooks, 3 frames: codebook k starts k steps late (MusicGen / transformers docs)
    pattern = DelayPattern.musicgen(4, pad_id=PAD)
    codes = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]])
    p = PAD
    expected = torch.tensor(
        [
            [1, 2, 3, p, p, p],
            [p, 4, 5, 6, p, p],
            [p, p, 7, 8, 9, p],
            [p, p, p, 10, 11, 12],
        ]
    )
    assert torch.equal(pattern.interleave(codes), expected)


def test_template_marks_prefix_and_pads_known() -> None:
    pattern = DelayPattern.musicgen(3, pad_id=PAD)
    prefix = torch.tensor([[[1, 2], [3, 4], [5, 6]]])
    values, known = pattern.template(1, 5, prefix)
    assert values.shape == known.shape == (1, 3, 7)
    # steps 0 and 1 are fully known: every stream is either pad or a prefix frame
    assert known[..., :2].all()
    # codebook 2 is delayed by 2, so its prefix frames sit at steps 2 and 3
    assert values[0, 2, 2:4].tolist() == [5, 6]
    assert values[0, 0, 2:5].tolist() == [UNKNOWN] * 3
    assert torch.equal(known, values != UNKNOWN)


def test_bad_inputs_raise_config_errors() -> None:
    with pytest.raises(ConfigError):
        DelayPattern((0, -1), PAD)
    with pytest.raises(ConfigError):
        DelayPattern.musicgen(4, PAD).interleave(torch.zeros(2, 3, 5, dtype=torch.long))
    with pytest.raises(ConfigError):
        DelayPattern.musicgen(4, PAD).deinterleave(torch.zeros(4, 2, dtype=torch.long))
