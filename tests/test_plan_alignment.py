"""Plan-aligned audio conditioning: segment bookkeeping, training/sampling agreement."""

from __future__ import annotations

import pytest
import torch

from musigen.errors import ConfigError
from musigen.musicot.lm import LMConfig, MusiCoTLM
from musigen.musicot.plan_alignment import step_segments
from musigen.musicot.long_form import generate_long
from musigen.musicot.sampling import SamplingParams, generate
from musigen.musicot.thoughts import ThoughtLayout

L, CODES = 2, 4
LAYOUT = ThoughtLayout(L, CODES)


def _lm(aligned: bool, seed: int = 0) -> MusiCoTLM:
    torch.manual_seed(seed)
    model = MusiCoTLM(LMConfig.preset("debug", codebook_size=16, num_codebooks=2, thought_levels=L,
                                      thought_codebook_size=CODES, text_dim=8, max_seq_len=256,
                                      plan_aligned=aligned))
    return model.eval()


def test_step_segments_and_segment_ids() -> None:
    assert step_segments(0.0, 6, 2.5, 9).tolist() == [[0, 0, 0, 1, 1, 2]]
    assert step_segments(torch.tensor([1.0, 4.0]), 3, 2.5, 2).tolist() == [[0, 0, 1], [1, 1, 1]]
    for order in ("coarse_to_fine", "segment_major"):
        try:
            layout = ThoughtLayout(3, 8, order)
        except ConfigError:
            continue  # an order this build does not have
        grid = torch.arange(4)[:, None].expand(4, 3)  # code = segment index at every level
        flat = layout.flatten(grid) % 8
        assert torch.equal(layout.segment_ids(4), flat)
    with pytest.raises(ConfigError):
        step_segments(0.0, 3, 0.0, 2)


def test_zero_projection_starts_as_the_plain_lm() -> None:
    plain, aligned = _lm(False), _lm(True)
    aligned.load_state_dict({**plain.state_dict(), "plan_proj.weight": aligned.plan_proj.weight},
                            strict=True)
    codes = torch.randint(16, (2, 2, 9))
    plan = LAYOUT.flatten(torch.randint(CODES, (2, 3, L)))
    segs = LAYOUT.segment_ids(3)
    text = torch.randn(2, 3, 8)
    with torch.no_grad():
        a = plain(codes, text, plan=plan)
        b = aligned(codes, text, plan=plan, token_segments=segs, segment_frames=3.0)
        aligned.plan_proj.weight.normal_(0, 0.5)
        c = aligned(codes, text, plan=plan, token_segments=segs, segment_frames=3.0)
    torch.testing.assert_close(a.audio_logits, b.audio_logits)
    torch.testing.assert_close(a.thought_logits, b.thought_logits)
    assert not torch.allclose(a.audio_logits, c.audio_logits)  # once learned, the plan acts
    torch.testing.assert_close(a.thought_logits, c.thought_logits)  # on the audio only
    with pytest.raises(ConfigError, match="plan_aligned"):
        aligned(codes, plan=plan)  # no segment bookkeeping


@pytest.mark.parametrize("offset", [0.0, 2.0])
def test_greedy_sampling_agrees_with_teacher_forcing(offset: float) -> None:
    """Each greedy audio step is the argmax of the teacher-forced logits for the finished
    sequence: sampling adds each step's plan segment exactly where training does."""
    model = _lm(True, seed=1)
    with torch.no_grad():
        model.plan_proj.weight.normal_(0, 0.5)
        model.thought_emb.weight.mul_(30.0)
    g = torch.Generator().manual_seed(3)
    plan = torch.randint(CODES, (1, 3, L), generator=g)
    text = torch.randn(1, 3, 8, generator=g)
    params = SamplingParams(audio_temperature=0.0, audio_cfg=1.0)
    out = generate(model, num_frames=10, text_states=text, layout=LAYOUT, plan=plan, params=params,
                   plan_offset=offset, segment_frames=4.0)
    with torch.no_grad():
        tf = model(out.codes, text, plan=LAYOUT.flatten(plan), token_segments=LAYOUT.segment_ids(3),
                   plan_offset=torch.tensor([offset]), segment_frames=4.0)
    steps = model.pattern.interleave(out.codes)
    valid = model.pattern.valid_mask(10, steps.device)
    pred = tf.audio_logits.argmax(-1).transpose(1, 2)  # [B, K, S]
    assert torch.equal(pred[0][valid], steps[0][valid])
    # the plan matters: another plan changes the greedy output
    other = generate(model, num_frames=10, text_states=text, layout=LAYOUT, plan=(plan + 1) % CODES,
                     params=params, plan_offset=offset, segment_frames=4.0)
    assert not torch.equal(other.codes, out.codes)
    with pytest.raises(ConfigError, match="segment_frames"):
        generate(model, num_frames=4, layout=LAYOUT, plan=plan, params=params)


def test_cache_long_form_and_plan_guidance_with_an_aligned_lm() -> None:
    model = _lm(True, seed=2)
    with torch.no_grad():
        model.plan_proj.weight.normal_(0, 0.5)
    args = {"num_frames": 8, "text_states": torch.randn(2, 3, 8), "layout": LAYOUT,
            "num_segments": 2, "ref": torch.randint(CODES, (2, L)), "seed": 4,
            "segment_frames": 4.0, "params": SamplingParams(plan_cfg=2.0, ref_cfg=1.0)}
    a = generate(model, **args)  # type: ignore[arg-type]
    b = generate(model, use_cache=False, **args)  # type: ignore[arg-type]
    assert torch.equal(a.codes, b.codes) and torch.equal(a.plan, b.plan)
    long = generate_long(model, num_frames=24, window_frames=10, context_frames=3, segment_frames=4.0,
                         text_states=torch.randn(1, 3, 8), layout=LAYOUT, num_segments=6, seed=0)
    assert long.codes.shape == (1, 2, 24) and long.plan.shape == (1, 6, L)
