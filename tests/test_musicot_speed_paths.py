"""The speed work keeps behaviour: the one-position decode path equals the reference path,
the lazy mel filterbank equals librosa's, and `musigen generate` imports only what it needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from musigen.errors import ConfigError
from musigen.musicot import sampling
from musigen.musicot.decode_step import StepDecoder
from musigen.musicot.lm import LMConfig, MusiCoTLM
from musigen.musicot.long_form import generate_long
from musigen.musicot.sampling import SamplingParams, generate
from musigen.musicot.thoughts import ThoughtLayout

L, CODES = 2, 4
LAYOUT = ThoughtLayout(L, CODES)


@pytest.fixture(scope="module")
def lm() -> MusiCoTLM:
    torch.manual_seed(3)
    cfg = LMConfig(dim=48, num_layers=3, num_heads=4, num_codebooks=3, codebook_size=24,
                   thought_levels=L, thought_codebook_size=CODES, text_dim=8, max_seq_len=160)
    return MusiCoTLM(cfg).eval()


def test_one_position_step_is_bit_identical_to_run(lm: MusiCoTLM) -> None:
    g = torch.Generator().manual_seed(0)
    text = torch.randn(3, 5, 8, generator=g)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False  # a padded row: the cross-attention mask is in play
    mem = lm.prepare_memory(text, mask, drop=torch.tensor([False, False, True]))
    x = torch.randn(3, 40, lm.config.dim, generator=g)
    fast = StepDecoder(lm)
    with torch.inference_mode():
        ref_cache, fast_cache = lm.new_cache(3, 40), lm.new_cache(3, 40)
        assert torch.equal(lm.run(x[:, :6], mem, ref_cache), lm.run(x[:, :6], mem, fast_cache))
        for i in range(6, 40):
            want = lm.run(x[:, i : i + 1], mem, ref_cache)[:, -1]
            got = fast.step(x[:, i], mem, fast_cache)
            assert torch.equal(got, want), i
            assert torch.equal(fast.audio_logits(got).view(3, 3, 24), lm.audio_logits(want))
            assert torch.equal(fast.thought_logits(got), lm.thought_logits(want))
        assert fast_cache.length == ref_cache.length == 40
        for a, b in zip(fast_cache.kv, ref_cache.kv, strict=True):
            assert torch.equal(a, b)
        with pytest.raises(ConfigError):  # the cache is full
            fast.step(x[:, 0], mem, fast_cache)
    codes = torch.randint(25, (3, 3), generator=g)  # includes the pad id
    assert torch.equal(fast.embed_audio(codes), lm.embed_audio(codes[:, :, None])[:, 0])


def _reference_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling, "StepDecoder", lambda model: None)


@pytest.mark.parametrize("thought_cfg, audio_cfg", [(3.0, 3.0), (3.0, 1.0)])
def test_sampler_tokens_equal_with_the_fast_path_and_without(
    lm: MusiCoTLM, monkeypatch: pytest.MonkeyPatch, thought_cfg: float, audio_cfg: float
) -> None:
    params = SamplingParams(thought_cfg=thought_cfg, audio_cfg=audio_cfg, top_k=6, top_p=0.9,
                            audio_temperature=0.9)
    g = torch.Generator().manual_seed(1)
    args = {"text_states": torch.randn(2, 4, 8, generator=g), "layout": LAYOUT,
            "params": params, "seed": 11}
    ref = torch.randint(CODES, (3, 1), generator=g)
    steps = []
    real_step = StepDecoder.step
    monkeypatch.setattr(StepDecoder, "step",
                        lambda self, *a: steps.append(1) or real_step(self, *a))
    fast = generate(lm, num_frames=30, num_segments=2, ref=ref, **args)
    assert len(steps) > 30  # the plan and the audio went through the fast path
    fast_long = generate_long(lm, num_frames=50, window_frames=20, context_frames=5,
                              segment_frames=25.0, num_segments=2, **args)
    _reference_path(monkeypatch)
    slow = generate(lm, num_frames=30, num_segments=2, ref=ref, **args)
    slow_long = generate_long(lm, num_frames=50, window_frames=20, context_frames=5,
                              segment_frames=25.0, num_segments=2, **args)
    assert torch.equal(fast.plan, slow.plan) and torch.equal(fast.codes, slow.codes)
    assert torch.equal(fast_long.plan, slow_long.plan)
    assert torch.equal(fast_long.codes, slow_long.codes)
    assert len(set(fast.codes.flatten().tolist())) > 3  # it really sampled


def test_fast_path_is_for_eval_mode_only(lm: MusiCoTLM) -> None:
    lm.train()
    try:
        with pytest.raises(ConfigError):
            StepDecoder(lm)
        # a training-mode model still generates, through the reference path
        out = generate(lm, num_frames=4, text_states=torch.randn(1, 2, 8), seed=0)
        assert out.codes.shape == (1, 3, 4)
    finally:
        lm.eval()


def test_lazy_mel_filterbank_matches_librosa() -> None:
    import librosa

    from musigen.embedders.musigen_clap import MusigenClap, MusigenClapConfig

    cfg = MusigenClapConfig(sample_rate=8000, n_fft=256, hop_length=128, n_mels=16, f_max=4000.0,
                            channels=[4, 8])
    model = MusigenClap(cfg).eval()
    assert model.audio.mel.fb.numel() == 0  # nothing built until audio is embedded
    with torch.inference_mode():
        model.audio.mel(torch.randn(1, 4000))
    want = librosa.filters.mel(sr=8000, n_fft=256, n_mels=16, fmin=cfg.f_min, fmax=4000.0)
    assert torch.equal(model.audio.mel.fb, torch.from_numpy(want).float())
    assert not model.audio.mel.fb.is_inference()  # usable for training afterwards
    wav = torch.randn(1, 4000, requires_grad=True)
    model.audio.mel(wav).sum().backward()
    assert wav.grad is not None and wav.grad.abs().sum() > 0
    assert "fb" not in model.state_dict()


HEAVY = ("gradio", "lightning", "pytorch_lightning", "diffusers", "librosa", "matplotlib", "numba")

_PROBE = f"""
import json, sys
from musigen.cli import main
rc = main(sys.argv[1:])
import torch
print(json.dumps({{"rc": rc, "threads": torch.get_num_threads(),
                   "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""


def _probe(args: list[str], tmp: Path) -> dict[str, object]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=tmp, env=env, check=False,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_generate_imports_no_heavy_modules_and_uses_the_threads_asked(tmp_path: Path) -> None:
    from musicot_tiny import save_tiny_pipeline

    model = save_tiny_pipeline(tmp_path / "pipe")
    wav = tmp_path / "g.wav"
    got = _probe(["generate", "--prompt", "calm piano", "--duration", "1", "--model", str(model),
                  "--out", str(wav), "--threads", "1"], tmp_path)
    assert got == {"rc": 0, "threads": 1, "heavy": []}
    side = json.loads(wav.with_suffix(".json").read_text())["provenance"]
    assert side["plan"] and side["analysis"]  # the plan is still read back as tags
    bad = _probe(["generate", "--prompt", "x", "--model", str(model), "--threads", "0"], tmp_path)
    assert bad["rc"] == 2
