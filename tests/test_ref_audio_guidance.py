"""Reference guidance on the audio (`SamplingParams.ref_audio_cfg`): CFG toward the reference."""

from __future__ import annotations

import pytest
import torch

from musigen.errors import ConfigError
from musigen.musicot.lm import LMConfig, MusiCoTLM
from musigen.musicot.sampling import SamplingParams, generate, generate_long
from musigen.musicot.thoughts import ThoughtLayout

L, CODES = 2, 4
LAYOUT = ThoughtLayout(L, CODES)


@pytest.fixture(scope="module")
def lm() -> MusiCoTLM:
    """A random debug LM with scaled-up thought embeddings, so a reference moves the logits."""
    torch.manual_seed(4)
    model = MusiCoTLM(LMConfig.preset("debug", codebook_size=32, thought_levels=L,
                                      thought_codebook_size=CODES, text_dim=8, max_seq_len=128))
    with torch.no_grad():
        model.thought_emb.weight.mul_(50.0)
    return model.eval()


def test_reference_audio_guidance_is_cfg_toward_the_reference(lm: MusiCoTLM) -> None:
    """Greedy first audio token = argmax of u + s_a (c - u) + s_r (c - n), where n is the same
    row with its reference replaced by NULL tokens (plan and caption kept), by teacher forcing."""
    codes = torch.zeros(1, 4, 1, dtype=torch.long)
    changed = 0
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        text = torch.randn(1, 4, 8, generator=g)
        plan = torch.randint(CODES, (1, 2, L), generator=g)
        ref = torch.randint(CODES, (2, L), generator=g)
        keep, drop = torch.zeros(1, dtype=torch.bool), torch.ones(1, dtype=torch.bool)
        with torch.no_grad():
            first = {
                name: lm(codes, text, plan=LAYOUT.flatten(plan), ref=LAYOUT.flatten(ref)[None],
                         drop_text=dt, drop_ref=dr).audio_logits[0, 0, 0]
                for name, dt, dr in (("c", keep, keep), ("u", drop, drop), ("n", keep, drop))
            }
        guided = first["u"] + 3.0 * (first["c"] - first["u"])
        for s_r in (0.0, 30.0):
            mixed = guided + s_r * (first["c"] - first["n"])
            out = generate(lm, num_frames=1, text_states=text, layout=LAYOUT, plan=plan, ref=ref,
                           seed=0, params=SamplingParams(audio_temperature=0.0, audio_cfg=3.0,
                                                         ref_audio_cfg=s_r))
            assert int(out.codes[0, 0, 0]) == int(mixed.argmax())
        changed += int(mixed.argmax() != guided.argmax())
    assert changed >= 1  # the reference term moved the choice somewhere: the check can fail


def test_with_every_other_guidance_the_plan_is_unchanged_and_the_cache_exact(lm: MusiCoTLM) -> None:
    """Five row groups at once (caption, none, reference only, no plan, no reference): the plan
    is the one drawn without audio guidance, and cache and recomputation agree."""
    args = {"num_frames": 6, "text_states": torch.randn(2, 4, 8), "layout": LAYOUT,
            "num_segments": 2, "ref": torch.randint(CODES, (3, L)), "seed": 5}
    base = SamplingParams(thought_cfg=3.0, ref_cfg=1.5, plan_cfg=2.0)
    guided = SamplingParams(thought_cfg=3.0, ref_cfg=1.5, plan_cfg=2.0, ref_audio_cfg=30.0)
    plain = generate(lm, params=base, **args)  # type: ignore[arg-type]
    cached = generate(lm, params=guided, **args)  # type: ignore[arg-type]
    recomputed = generate(lm, params=guided, use_cache=False, **args)  # type: ignore[arg-type]
    assert torch.equal(plain.plan, cached.plan)
    assert torch.equal(cached.codes, recomputed.codes) and torch.equal(cached.plan, recomputed.plan)
    assert not torch.equal(plain.codes, cached.codes)  # the guidance acted on the audio


def test_without_a_reference_it_is_a_no_op_and_long_form_runs(lm: MusiCoTLM) -> None:
    text = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(1))
    a = generate(lm, num_frames=5, text_states=text, params=SamplingParams(ref_audio_cfg=3.0), seed=2)
    b = generate(lm, num_frames=5, text_states=text, params=SamplingParams(), seed=2)
    assert torch.equal(a.codes, b.codes)
    out = generate_long(lm, num_frames=20, window_frames=8, context_frames=2, segment_frames=5.0,
                        text_states=torch.randn(1, 4, 8), layout=LAYOUT, num_segments=4,
                        ref=torch.randint(CODES, (2, L)), params=SamplingParams(ref_audio_cfg=2.0),
                        seed=0)
    assert out.codes.shape == (1, 4, 20) and out.plan.shape == (1, 4, L)
    for bad in (-1.0, 100.0):
        with pytest.raises(ConfigError, match="ref_audio_cfg"):
            SamplingParams(ref_audio_cfg=bad)
