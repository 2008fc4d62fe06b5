"""The checkpoints in `checkpoints/` load offline and run end to end (what the README's first
command relies on).  Short clips keep this fast; quality is measured by the eval scripts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent / "checkpoints"


def _needs(name: str) -> Path:
    path = ROOT / name
    if not (path / "pipeline.json").is_file() and not (path / "config.json").is_file():
        pytest.skip(f"checkpoints/{name} is not in this checkout")
    return path


def test_demo_codec_round_trips_codes_and_latents() -> None:
    from musigen.codec import Codec

    codec = Codec.from_pretrained(_needs("codec_demo"))
    assert (codec.sample_rate, codec.num_codebooks, codec.cardinality, codec.frame_rate) == (16000, 8, 1024, 50.0)
    t = np.arange(16000) / 16000
    wav = torch.from_numpy((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))[None, None]
    codes = codec.encode(wav)
    assert codes.shape == (1, 8, 50) and int(codes.min()) >= 0 and int(codes.max()) < 1024
    assert torch.equal(codec.encode(codec.decode(codes)), codec.encode(codec.decode(codes)))
    recon = codec.decode_latents(codec.encode_latents(wav))[..., :16000]
    # The trained codec keeps a plain tone: well above chance correlation with the input.
    corr = float(torch.nn.functional.cosine_similarity(recon.flatten(), wav.flatten(), dim=0))
    assert corr > 0.5, corr


def test_demo_musicot_generates_with_a_plan() -> None:
    from musigen.musicot.pipeline import MusiCoTPipeline

    pipe = MusiCoTPipeline.from_pretrained(_needs("musicot_demo"))
    out = pipe("an energetic funk groove with drums and bass", duration=2.5, seed=0, progress=False)
    assert out.audio.shape[0] == 1 and abs(out.audio.shape[1] - 2.5 * out.sample_rate) < out.sample_rate / 10
    assert np.isfinite(out.audio).all() and out.thoughts[0] and out.analysis[0]


def test_demo_instructme_edits_in_two_rounds() -> None:
    from musigen.instructme.pipeline import InstructMEPipeline

    pipe = InstructMEPipeline.from_pretrained(_needs("instructme_demo"))
    sr = 16000
    t = np.arange(2 * sr) / sr
    src = (0.2 * np.sin(2 * np.pi * 196 * t) + 0.1 * np.sin(2 * np.pi * 247 * t)).astype(np.float32)
    res = pipe(src[None], sr, ["remove drums", "add piano"], steps=4, seed=0)
    assert len(res.rounds) == 2 and res.audio.shape[-1] == src.size and np.isfinite(res.audio).all()


def test_demo_instructme_carries_the_shipped_chord_model(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo folder holds its recogniser (a copy of checkpoints/chords), so a copy of the
    folder placed anywhere edits exactly as the original, with no checkpoints/ beside it."""
    import shutil

    from musigen.chords import ChordRecognizer
    from musigen.instructme.pipeline import InstructMEPipeline

    demo = _needs("instructme_demo")
    shipped = ChordRecognizer.from_pretrained(_needs("chords"))
    pipe = InstructMEPipeline.from_pretrained(demo)
    assert pipe.config.chord_method == "model" and pipe.chord_model is not None
    for name, value in shipped.net.state_dict().items():
        assert torch.equal(pipe.chord_model.net.state_dict()[name], value), name
    sr = 16000
    t = np.arange(2 * sr) / sr
    src = (0.2 * np.sin(2 * np.pi * 196 * t) + 0.1 * np.sin(2 * np.pi * 247 * t)).astype(np.float32)
    want = pipe(src, sr, "remove drums", steps=2, seed=0)
    monkeypatch.setenv("MUSIGEN_CHORDS_CHECKPOINT", str(tmp_path / "nowhere"))
    copy = InstructMEPipeline.from_pretrained(shutil.copytree(demo, tmp_path / "instructme_demo"))
    got = copy(src, sr, "remove drums", steps=2, seed=0)
    assert got.chords == want.chords and got.parameters["chord_method"] == "model"
    np.testing.assert_array_equal(got.audio, want.audio)
