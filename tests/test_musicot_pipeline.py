"""MusiCoTPipeline and the `generate` / `analyze` commands, on tiny random components."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from musicot_tiny import SR, save_tiny_pipeline, tiny_pipeline, tone

from musigen.cli import main
from musigen.errors import CheckpointError, ConfigError, EmptyAudioError
from musigen.musicot.analysis import analyze, plot_timeline
from musigen.musicot.pipeline import MusiCoTPipeline


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("musicot") / "pipe")


@pytest.fixture(scope="module")
def pipe(model_dir: Path) -> MusiCoTPipeline:
    return MusiCoTPipeline.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def style_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "style.wav"
    sf.write(path, tone(2.5, 330.0), SR)
    return path


def test_round_trip_keeps_every_component(model_dir: Path, pipe: MusiCoTPipeline) -> None:
    config = json.loads((model_dir / "pipeline.json").read_text())
    assert config["text_encoder_path"] == "text_encoder"  # a non-packaged encoder is copied
    assert {"codec", "embedder", "thoughts", "lm"} <= {p.name for p in model_dir.iterdir()}
    fresh = tiny_pipeline()
    for a, b in zip(fresh.lm.state_dict().values(), pipe.lm.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(fresh.tokenizer.rvq.codebooks, pipe.tokenizer.rvq.codebooks)
    # a second save/load gives the same generation
    again = MusiCoTPipeline.from_pretrained(pipe.save_pretrained(model_dir.parent / "again"))
    a = pipe("soft piano", duration=0.5, seed=3, progress=False)
    b = again("soft piano", duration=0.5, seed=3, progress=False)
    np.testing.assert_array_equal(a.audio, b.audio)


def test_same_seed_same_output_and_seed_matters(pipe: MusiCoTPipeline) -> None:
    a = pipe(["rock with drums", "calm strings"], duration=0.8, seed=1, progress=False)
    b = pipe(["rock with drums", "calm strings"], duration=0.8, seed=1, progress=False)
    c = pipe(["rock with drums", "calm strings"], duration=0.8, seed=2, progress=False)
    assert a.audio.shape == (2, round(0.8 * SR)) and a.sample_rate == SR
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.thoughts == b.thoughts
    assert not np.array_equal(a.audio, c.audio)
    assert np.isfinite(a.audio).all()
    # the plan has one segment of 2 levels, and its analysis names real tags
    assert np.array(a.thoughts).shape == (2, 1, 2)
    seg = a.analysis[0][0]
    assert seg.start == 0.0 and seg.end == pytest.approx(0.8)
    assert set(seg.tags) == {"instrument", "genre", "mood", "section"}
    assert len(seg.tags["instrument"]) == 3


def test_reference_becomes_coarse_thoughts(pipe: MusiCoTPipeline, style_wav: Path) -> None:
    wav, _ = sf.read(style_wav, dtype="float32")
    ref = pipe.reference_thoughts(style_wav)
    assert ref.shape == (3, pipe.config.ref_levels)  # 2.5 s of 1 s windows -> 3 segments
    out = pipe("jazz", ref=style_wav, duration=0.5, seed=0, progress=False)
    assert out.ref_thoughts == ref.tolist()
    same = pipe("jazz", ref=wav, ref_sample_rate=SR, duration=0.5, seed=0, progress=False)
    np.testing.assert_array_equal(out.audio, same.audio)  # a path and an array agree
    plain = pipe("jazz", duration=0.5, seed=0, progress=False)
    assert not np.array_equal(out.audio, plain.audio)  # the reference conditions the LM
    long_ref = np.concatenate([tone(2.0, 110.0 * (k + 1), seed=k) for k in range(6)])  # 12 s
    limit = pipe.config.max_ref_segments
    pipe.config.max_ref_segments = 4
    try:
        capped = pipe.reference_thoughts(long_ref, SR)
    finally:
        pipe.config.max_ref_segments = limit
    assert capped.shape == (4, pipe.config.ref_levels)  # any length fits the LM's context


def test_long_form_plans_whole_piece(pipe: MusiCoTPipeline) -> None:
    window = pipe.config.window_s
    out = pipe("ambient pads", duration=3 * window, seed=0, progress=False)
    assert out.audio.shape == (1, round(3 * window * SR))
    assert len(out.thoughts[0]) == pipe.tokenizer.num_segments(3 * window) == 3
    assert [round(s.start, 3) for s in out.analysis[0]] == [0.0, 1.0, 2.0]
    # no window is silent: the seams were written, not padded
    for k in range(3):
        chunk = out.audio[0, k * SR : (k + 1) * SR]
        assert np.abs(chunk).max() > 0


@pytest.mark.parametrize("duration", [0, -1.0, 1e6, float("nan")])
def test_bad_durations(pipe: MusiCoTPipeline, duration: float) -> None:
    with pytest.raises(ConfigError):
        pipe("x", duration=duration, progress=False)


def test_unknown_model_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        MusiCoTPipeline.from_pretrained(tmp_path / "nope")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "pipeline.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        MusiCoTPipeline.from_pretrained(tmp_path / "broken")


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    return err


def test_cli_bad_inputs(capsys: pytest.CaptureFixture[str], model_dir: Path, tmp_path: Path) -> None:
    base = ["generate", "--prompt", "x", "--model", str(model_dir), "--out", str(tmp_path / "o.wav")]
    for d in ("0", "-2", "100000"):
        assert "duration" in _one_line_error(capsys, base + ["--duration", d])
    assert "missing.wav" in _one_line_error(capsys, base + ["--ref", str(tmp_path / "missing.wav")])
    assert "plan_cfg" in _one_line_error(capsys, base + ["--cfg-plan", "-1"])
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    _one_line_error(capsys, base + ["--ref", str(corrupt)])
    blip = tmp_path / "blip.wav"
    sf.write(blip, tone(0.01, 330.0), SR)  # 10 ms: nothing to read a style from
    assert "reference is 0.010 s" in _one_line_error(capsys, base + ["--ref", str(blip)])
    jobs = tmp_path / "jobs.jsonl"
    for line, needle in (('{"prompt": "a", "seed": "abc"}', "'seed' must be an integer"),
                         ('{"prompt": "a", "seed": 1.5}', "'seed' must be an integer"),
                         ('{"prompt": "a", "duration": "long"}', "'duration' must be a number"),
                         ('{"prompt": "a", "ref": 5}', "'ref' must be a string"),
                         (f'{{"prompt": "a", "seed": {2**70}}}', "64 bits")):
        jobs.write_text(line + "\n")
        assert needle in _one_line_error(capsys, ["generate", "--prompts", str(jobs), "--model",
                                                  str(model_dir), "--duration", "0.3"])
    assert "nope" in _one_line_error(capsys, ["generate", "--prompt", "x", "--model",
                                              str(tmp_path / "nope")])
    assert not (tmp_path / "o.wav").exists()


def test_cli_generate_writes_wav_and_sidecar(model_dir: Path, tmp_path: Path,
                                             style_wav: Path) -> None:
    out = tmp_path / "song.wav"
    argv = ["generate", "--prompt", "funky bass", "--model", str(model_dir), "--duration", "1.5",
            "--seed", "4", "--out", str(out), "--ref", str(style_wav), "--cfg-audio", "1.5",
            "--top-k", "4", "--cfg-plan", "2", "--cfg-ref", "0.5"]
    assert main(argv) == 0
    wav, sr = sf.read(out)
    assert sr == SR and len(wav) == round(1.5 * SR)
    meta = json.loads(out.with_suffix(".json").read_text())["provenance"]
    assert meta["prompt"] == "funky bass" and meta["seed"] == 4
    assert meta["parameters"]["sampling"]["audio_cfg"] == 1.5
    assert meta["parameters"]["sampling"]["top_k"] == 4
    assert meta["parameters"]["sampling"]["plan_cfg"] == 2 and meta["parameters"]["sampling"]["ref_cfg"] == 0.5
    assert len(meta["plan"]) == 2 and len(meta["analysis"]) == 2
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "a"}) + "\n" + json.dumps({"prompt": "b", "seed": 9}) + "\n")
    assert main(["generate", "--prompts", str(jobs), "--model", str(model_dir), "--duration", "0.3",
                 "--out", str(tmp_path / "batch.wav")]) == 0
    assert (tmp_path / "batch_0.wav").is_file() and (tmp_path / "batch_1.wav").is_file()


def test_analyze_audio_and_cli(model_dir: Path, pipe: MusiCoTPipeline, tmp_path: Path,
                               style_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = tone(2.5, 330.0)
    direct = analyze(wav, SR, pipe.embedder, window_s=1.0, chords=False)
    thought = analyze(wav, SR, pipe.embedder, pipe.tokenizer, chords=True)
    assert len(direct) == len(thought) == 3
    assert all(0 <= len(s.chords) for s in thought) and thought[-1].end == pytest.approx(2.5)
    png = plot_timeline(thought, tmp_path / "t.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    out_json = tmp_path / "a.json"
    assert main(["analyze", str(style_wav), "--model", str(model_dir), "--json", str(out_json),
                 "--plot", str(tmp_path / "cli.png")]) == 0
    printed = capsys.readouterr().out
    assert "instrument:" in printed
    assert len(json.loads(out_json.read_text())["segments"]) == 3
    assert (tmp_path / "cli.png").is_file()
    _one_line_error(capsys, ["analyze", str(tmp_path / "none.wav"), "--model", str(model_dir)])
    blip = tmp_path / "blip.wav"
    sf.write(blip, tone(0.1, 330.0), SR)
    assert "blip.wav is 0.100 s long" in _one_line_error(capsys, ["analyze", str(blip), "--model",
                                                                  str(model_dir)])
    with pytest.raises(EmptyAudioError):
        analyze(tone(0.1, 330.0), SR, pipe.embedder, pipe.tokenizer)


def test_pipeline_folder_is_scored_by_the_generation_harness(model_dir: Path) -> None:
    """`musigen eval generate --model <MusiCoT folder>` goes through this adapter."""
    from musigen.eval.harness.systems import resolve_system

    class _Set:  # resolve_system only needs it for baselines
        items: list = []

    name, system = resolve_system(str(model_dir), "generate", _Set())
    sr = system.sample_rate
    ref = tone(3.0, 330.0, sr)
    first = system.generate(["calm jazz with piano", "rock"], [None, ref], 2.0, seed=5)
    assert name == model_dir.name and len(first) == 2
    assert all(o.ndim == 1 and abs(o.size - 2 * sr) <= sr // 10 and np.isfinite(o).all() for o in first)
    assert len(system.last_thoughts) == 2 and all(system.last_thoughts)
    # Item i uses seed + i: generating the second prompt alone with seed 6 gives the same clip.
    alone = system.generate(["rock"], [ref], 2.0, seed=6)
    np.testing.assert_array_equal(alone[0], first[1])


def test_an_lm_of_fewer_codebooks_uses_a_lower_bandwidth_of_the_codec() -> None:
    """An LM that models the first K codebooks fits a codec with more (MusicGen's use of
    EnCodec); one that models more codebooks than the codec has is refused."""
    from musicot_tiny import tiny_codec, tiny_embedder, tiny_lm_config, tiny_text_encoder, tiny_tokenizer
    from musigen.musicot.lm import MusiCoTLM
    from musigen.musicot.pipeline import MusiCoTPipelineConfig

    text = tiny_text_encoder()
    embedder = tiny_embedder(text)
    tok = tiny_tokenizer(embedder)
    config = MusiCoTPipelineConfig(window_s=1.0, context_s=0.25)
    torch.manual_seed(0)
    pipe = MusiCoTPipeline(tiny_codec(), text, embedder, tok, MusiCoTLM(tiny_lm_config(num_codebooks=1)), config)
    out = pipe("calm piano", duration=0.5, seed=0, progress=False)
    assert out.audio.shape == (1, round(0.5 * SR)) and np.isfinite(out.audio).all()
    with pytest.raises(CheckpointError, match="codes"):
        MusiCoTPipeline(tiny_codec(), text, embedder, tok, MusiCoTLM(tiny_lm_config(num_codebooks=3)), config)
