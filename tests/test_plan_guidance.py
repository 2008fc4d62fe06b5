"""Plan dropout in training, and guidance on the audio in sampling: toward the plan
(`SamplingParams.plan_cfg`) and toward the reference (`SamplingParams.ref_audio_cfg`)."""

from __future__ import annotations

import pytest
import torch

from musigen.errors import ConfigError
from musigen.musicot.lm import LMConfig, MusiCoTLM
from musigen.musicot.long_form import generate_long
from musigen.musicot.sampling import SamplingParams, generate
from musigen.musicot.thoughts import ThoughtLayout

L, CODES = 2, 4
LAYOUT = ThoughtLayout(L, CODES)


@pytest.fixture(scope="module")
def lm() -> MusiCoTLM:
    """A random debug LM whose thought embeddings are scaled up: at init (std 0.02) a plan or
    a reference hardly moves the logits, and the checks below need it to."""
    torch.manual_seed(3)
    model = MusiCoTLM(LMConfig.preset("debug", codebook_size=32, thought_levels=L,
                                      thought_codebook_size=CODES, text_dim=8, max_seq_len=128))
    with torch.no_grad():
        model.thought_emb.weight.mul_(50.0)
    return model.eval()


def test_drop_plan_nulls_the_plan_and_leaves_it_out_of_the_thought_loss(lm: MusiCoTLM) -> None:
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(32, (2, 4, 6), generator=g)
    text = torch.randn(2, 3, 8, generator=g)
    plan = torch.randint(CODES, (2, 3 * L), generator=g)
    with torch.no_grad():
        full = lm(codes, text, plan=plan)
        mixed = lm(codes, text, plan=plan, drop_plan=torch.tensor([True, False]))
        second = lm(codes[1:], text[1:], plan=plan[1:])
        all_dropped = lm(codes, text, plan=plan, drop_plan=torch.tensor([True, True]))
    # the thought loss is the kept row's alone; the dropped row's audio saw another prefix
    torch.testing.assert_close(mixed.thought_loss, second.thought_loss)
    torch.testing.assert_close(mixed.audio_logits[1], full.audio_logits[1])
    assert not torch.allclose(mixed.audio_logits[0], full.audio_logits[0])
    assert float(all_dropped.thought_loss) == 0.0 and torch.isfinite(all_dropped.loss)
    with pytest.raises(ConfigError, match="drop_plan"):
        lm(codes, text, plan=plan, drop_plan=torch.tensor([True]))


@pytest.mark.parametrize("kind", ["plan", "ref"])
def test_audio_guidance_is_cfg_toward_what_the_extra_row_drops(lm: MusiCoTLM, kind: str) -> None:
    """Greedy first audio token = argmax of u + s_a (c - u) + s (c - d), all from teacher
    forcing, where d is the same row with its plan (`plan_cfg`) or its reference
    (`ref_audio_cfg`) replaced by NULL tokens; u drops the caption and the reference."""
    codes = torch.zeros(1, 4, 1, dtype=torch.long)
    keep, drop = torch.zeros(1, dtype=torch.bool), torch.ones(1, dtype=torch.bool)
    field = "plan_cfg" if kind == "plan" else "ref_audio_cfg"
    changed = 0
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        text = torch.randn(1, 4, 8, generator=g)
        plan = torch.randint(CODES, (1, 2, L), generator=g)
        ref = torch.randint(CODES, (2, L), generator=g) if kind == "ref" else None
        rows = {"c": (keep, keep, keep), "u": (drop, keep, drop),
                "d": (keep, drop, keep) if kind == "plan" else (keep, keep, drop)}
        with torch.no_grad():
            first = {
                name: lm(codes, text, plan=LAYOUT.flatten(plan), drop_text=dt, drop_plan=dp,
                         **({} if ref is None else {"ref": LAYOUT.flatten(ref)[None], "drop_ref": dr}))
                .audio_logits[0, 0, 0]
                for name, (dt, dp, dr) in rows.items()
            }
        guided = first["u"] + 3.0 * (first["c"] - first["u"])
        for s in (0.0, 99.0):  # 99: the largest scale allowed, so a random LM's small term shows
            mixed = guided + s * (first["c"] - first["d"])
            out = generate(lm, num_frames=1, text_states=text, layout=LAYOUT, plan=plan, ref=ref,
                           seed=0, params=SamplingParams(audio_temperature=0.0, audio_cfg=3.0,
                                                         **{field: s}))
            assert int(out.codes[0, 0, 0]) == int(mixed.argmax())
        changed += int(mixed.argmax() != guided.argmax())
    assert changed >= 1  # the extra term moved the choice somewhere: the check can fail


@pytest.mark.parametrize("extra", [{"plan_cfg": 30.0}, {"ref_audio_cfg": 30.0},
                                   {"plan_cfg": 30.0, "ref_audio_cfg": 30.0}],
                         ids=["plan", "ref", "both"])
@pytest.mark.parametrize("audio_cfg", [3.0, 1.0])
def test_audio_guidance_leaves_the_plan_alone_and_the_cache_exact(
    lm: MusiCoTLM, audio_cfg: float, extra: dict[str, float]
) -> None:
    """Up to five row groups at once (caption, none, reference only, no plan, no reference):
    the plan drawn is the one drawn without audio guidance, and cache and recomputation agree."""
    args = {"num_frames": 6, "text_states": torch.randn(2, 4, 8), "layout": LAYOUT,
            "num_segments": 2, "ref": torch.randint(CODES, (3, L)), "seed": 5}
    base = SamplingParams(thought_cfg=3.0, audio_cfg=audio_cfg, ref_cfg=1.5)
    guided = SamplingParams(thought_cfg=3.0, audio_cfg=audio_cfg, ref_cfg=1.5, **extra)
    plain = generate(lm, params=base, **args)  # type: ignore[arg-type]
    cached = generate(lm, params=guided, **args)  # type: ignore[arg-type]
    recomputed = generate(lm, params=guided, use_cache=False, **args)  # type: ignore[arg-type]
    assert torch.equal(plain.plan, cached.plan)
    assert torch.equal(cached.codes, recomputed.codes) and torch.equal(cached.plan, recomputed.plan)
    assert not torch.equal(plain.codes, cached.codes)  # the guidance acted on the audio


def test_audio_guidance_in_long_form_and_without_a_plan_or_reference(lm: MusiCoTLM) -> None:
    params = SamplingParams(plan_cfg=2.0, ref_audio_cfg=2.0)
    out = generate_long(lm, num_frames=20, window_frames=8, context_frames=2, segment_frames=5.0,
                        text_states=torch.randn(1, 4, 8), layout=LAYOUT, num_segments=4,
                        ref=torch.randint(CODES, (2, L)), params=params, seed=0)
    assert out.codes.shape == (1, 4, 20) and out.plan.shape == (1, 4, L)
    # nothing to guide toward: both are ignored rather than contrasting two equal rows
    a = generate(lm, num_frames=5, text_states=torch.randn(1, 4, 8, generator=torch.Generator()
                 .manual_seed(1)), params=params, seed=2)
    b = generate(lm, num_frames=5, text_states=torch.randn(1, 4, 8, generator=torch.Generator()
                 .manual_seed(1)), params=SamplingParams(), seed=2)
    assert torch.equal(a.codes, b.codes)
    for name in ("plan_cfg", "ref_audio_cfg"):
        for bad in (-1.0, 100.0):
            with pytest.raises(ConfigError, match=name):
                SamplingParams(**{name: bad})
