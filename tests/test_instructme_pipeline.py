"""InstructMEPipeline and `musigen edit`: hub round trip, seeds, rounds, long input, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from musigen.chords import ChordModelConfig, ChordRecognizer
from musigen.errors import (
    CheckpointError,
    EmptyAudioError,
    MusigenError,
    NonFiniteAudioError,
    VocabularyError,
)
from musigen.edits import InstructionError
from musigen.instructme.latent_stats import LatentStats
from musigen.instructme.pipeline import InstructMEPipeline
from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig

SR = 16000


def tiny_text_encoder():
    """A 1-layer random BERT behind the packaged MiniLM tokenizer (fast, offline)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from musigen.embedders.text import MiniLMTextEncoder, minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    torch.manual_seed(1)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32,
                                 num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64))
    return MiniLMTextEncoder(model, tokenizer)


def tiny_chord_model() -> ChordRecognizer:
    """A random, tiny learned recogniser: its chords differ from the templates' (that is how
    the tests tell which recogniser an edit used)."""
    torch.manual_seed(3)
    model = ChordRecognizer(ChordModelConfig(hidden=8, dilations=(1,)))
    with torch.no_grad():  # fp16-exact, so the fp16 copy a pipeline saves predicts the same
        for p in model.net.parameters():
            p.copy_(p.half().float())
    return model


def tiny_pipeline(latent: int | None = None) -> InstructMEPipeline:
    from musigen.encode.components import random_codec

    codec = random_codec("tiny")
    torch.manual_seed(2)
    unet = InstructMEUNet(InstructMEUNetConfig.preset(
        "debug", latent_channels=latent or codec.latent_dim, text_dim=32, chord_dim=25,
        base_channels=16, chord_channels=8, chunk_size=16))
    d = codec.latent_dim
    stats = LatentStats(torch.linspace(-0.1, 0.1, d), torch.linspace(0.5, 1.5, d))
    return InstructMEPipeline(codec, tiny_text_encoder(), unet, stats,
                              chord_model=tiny_chord_model())


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("pipe") / "model")


@pytest.fixture(scope="module")
def pipe(saved: Path) -> InstructMEPipeline:
    return InstructMEPipeline.from_pretrained(saved)


def clip(seconds: float = 2.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 277.2 * t)
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (tone + noise).astype(np.float32)


def test_save_load_round_trip_gives_the_same_model_and_output(saved: Path) -> None:
    original = tiny_pipeline()
    loaded = InstructMEPipeline.from_pretrained(saved)
    for k, v in original.unet.state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[k], v)
    torch.testing.assert_close(loaded.stats.std, original.stats.std)
    assert (saved / "text_encoder").is_dir()  # a non-packaged encoder travels with the model
    a = original(clip(), SR, "remove drums", steps=3, seed=5).audio
    b = loaded(clip(), SR, "remove drums", steps=3, seed=5).audio
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_chord_model_travels_with_the_pipeline(saved: Path) -> None:
    import json

    from musigen.chords import chord_features, recognize_chords

    config = json.loads((saved / "pipeline.json").read_text())
    assert config["chord_model"] == "chords" and config["chord_method"] == "model"
    assert sorted(p.name for p in (saved / "chords").iterdir()) == ["config.json",
                                                                     "model.safetensors"]
    original, loaded = tiny_chord_model(), InstructMEPipeline.from_pretrained(saved).chord_model
    assert loaded is not None and loaded.config == original.config
    x = clip(3.0)
    feats = chord_features(x, SR)
    np.testing.assert_array_equal(loaded.frame_probabilities(feats),
                                  original.frame_probabilities(feats))
    assert (recognize_chords(x, SR, model=loaded) == recognize_chords(x, SR, model=original)
            != recognize_chords(x, SR, method="templates"))


def test_a_copy_placed_elsewhere_edits_with_its_own_learned_recogniser(
        saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No source tree to find checkpoints/chords in (as in an installed package): the edit
    still reads its chords with the pipeline's own recogniser, never the templates."""
    import shutil

    import musigen.chords.recognize as recognize
    from musigen.chords import recognize_chords

    monkeypatch.setenv("MUSIGEN_CHORDS_CHECKPOINT", str(tmp_path / "no_default_chord_model"))
    copy = Path(shutil.copytree(saved, tmp_path / "elsewhere" / "model"))
    pipe = InstructMEPipeline.from_pretrained(copy)
    used = {"learned": 0, "templates": 0}
    learned, templates = ChordRecognizer.frame_probabilities, recognize.template_probabilities

    def spy_learned(self: ChordRecognizer, *a: object) -> np.ndarray:
        used["learned"] += 1
        return learned(self, *a)

    def spy_templates(*a: object, **k: object) -> np.ndarray:
        used["templates"] += 1
        return templates(*a, **k)

    monkeypatch.setattr(ChordRecognizer, "frame_probabilities", spy_learned)
    monkeypatch.setattr(recognize, "template_probabilities", spy_templates)
    r = pipe(clip(), SR, ["remove drums", "add piano"], steps=2, seed=0)
    assert used == {"learned": 2, "templates": 0} and r.parameters["chord_method"] == "model"
    assert r.chords[0] == recognize_chords(clip(), SR, model=tiny_chord_model())
    assert r.chords[0] != recognize_chords(clip(), SR, method="templates")


def test_a_folder_without_its_chord_model_is_refused_by_name(saved: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from musigen.errors import ConfigError

    missing = Path(shutil.copytree(saved, tmp_path / "missing"))
    shutil.rmtree(missing / "chords")
    with pytest.raises(CheckpointError, match=r"lacks its chord model component chords/"):
        InstructMEPipeline.from_pretrained(missing)
    # the layout from before the recogniser was a component: no chord_model key, "auto"
    old = Path(shutil.copytree(missing, tmp_path / "old"))
    config = json.loads((old / "pipeline.json").read_text())
    del config["chord_model"]
    config["chord_method"] = "auto"
    (old / "pipeline.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"chord model component chords/.*checkpoints/chords"):
        InstructMEPipeline.from_pretrained(old)
    # saying so explicitly runs the templates instead
    config["chord_method"] = "templates"
    (old / "pipeline.json").write_text(json.dumps(config))
    templates = InstructMEPipeline.from_pretrained(old)
    assert templates.chord_model is None and templates.config.chord_model is None
    assert templates(clip(), SR, "remove drums", steps=2).parameters["chord_method"] == "templates"
    p = tiny_pipeline()
    with pytest.raises(ConfigError, match="chord_model"):
        InstructMEPipeline(p.codec, p.text_encoder, p.unet, p.stats)


def test_chords_cli_reads_a_pipeline_folders_recogniser(saved: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.audio import save_audio
    from musigen.chords import recognize_chords

    src = save_audio(tmp_path / "in.wav", clip(), SR)
    rc, out, err = run_cli(["chords", str(src), "--model", str(saved)], capsys)
    assert rc == 0, err
    want = recognize_chords(clip(), SR, model=tiny_chord_model())
    assert [line.split()[-1] for line in out.strip().splitlines()] == [lab for *_, lab in want]
    rc, _, err = run_cli(["chords", str(src), "--model", str(tmp_path)], capsys)
    assert rc == 2 and "neither a chord model folder" in err and "InstructME pipeline" in err


def test_same_seed_same_output_other_seed_other_output(pipe: InstructMEPipeline) -> None:
    a = pipe(clip(), SR, "add piano", steps=3, seed=1)
    b = pipe(clip(), SR, "add piano", steps=3, seed=1)
    c = pipe(clip(), SR, "add piano", steps=3, seed=2)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert not np.allclose(a.audio, c.audio)
    assert a.audio.shape == (1, 2 * SR) and a.sample_rate == SR and np.isfinite(a.audio).all()
    assert a.parameters == {"steps": 3, "guidance_text": 3.0, "guidance_source": 1.5,
                            "sampler": "dpmsolver++", "seed": 1, "output": "decoded",
                            "round_outputs": ["decoded"], "strength": 1.0, "match_source_stats": False,
                            "start": "noise", "chord_method": "model"}


def test_multi_round_feeds_each_output_into_the_next_round(pipe: InstructMEPipeline) -> None:
    from musigen.chords import recognize_chords

    r = pipe(clip(), SR, ["remove drums", "replace piano with organ"], steps=2, seed=0,
             sampler="ddim")
    assert len(r.rounds) == 2 and len(r.chords) == 2
    assert [op.task for op in r.ops] == ["remove", "replace"]
    np.testing.assert_array_equal(r.audio, r.rounds[-1])
    assert not np.allclose(r.rounds[0], r.rounds[1])
    # round two read its chords off round one's output, not off the input
    assert r.chords[1] == recognize_chords(r.rounds[0][0], SR, model=pipe.chord_model)
    assert r.chords[0] == recognize_chords(clip(), SR, model=pipe.chord_model)


def test_other_rates_and_stereo_are_converted(pipe: InstructMEPipeline) -> None:
    stereo = np.stack([clip(1.0, 22050), clip(1.0, 22050, seed=1)])
    r = pipe(stereo, 22050, "extract bass", steps=2, seed=0)
    assert r.sample_rate == SR and r.audio.shape == (1, SR)
    assert pipe.edit(clip(), SR, ["remove drums"], seed=0).shape == (2 * SR,)


def test_a_60_second_piece_edits_in_one_call(pipe: InstructMEPipeline) -> None:
    long = np.tile(clip(2.0), 31)[: 61 * SR]
    r = pipe(long, SR, "remix to funk genre", steps=2, seed=0)
    assert r.audio.shape == (1, 61 * SR) and np.isfinite(r.audio).all()


@pytest.mark.parametrize(
    ("instruction", "error"),
    [("remove the kazoo", VocabularyError), ("remix to polka genre", VocabularyError),
     ("", InstructionError), (["add piano", "  "], InstructionError), ([], InstructionError)],
)
def test_bad_instructions_are_refused_before_any_work(
    pipe: InstructMEPipeline, instruction: str | list[str], error: type[MusigenError]
) -> None:
    with pytest.raises(error):
        pipe(np.full(SR, np.nan, np.float32), SR, instruction)  # audio is not even looked at


def test_bad_audio_and_missing_models_are_refused(pipe: InstructMEPipeline,
                                                  tmp_path: Path) -> None:
    with pytest.raises(NonFiniteAudioError):
        pipe(np.full(SR, np.nan, np.float32), SR, "remove drums")
    with pytest.raises(EmptyAudioError):
        pipe(np.zeros(0, np.float32), SR, "remove drums")
    with pytest.raises(EmptyAudioError):
        pipe(np.zeros(100, np.float32), SR, "remove drums")
    with pytest.raises(CheckpointError, match="not found"):
        InstructMEPipeline.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="pipeline.json"):
        InstructMEPipeline.from_pretrained(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="do not fit"):
        tiny_pipeline(latent=8)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from musigen.cli import main

    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_edits_and_writes_a_sidecar(saved: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.audio import load_audio, load_provenance, save_audio

    src = save_audio(tmp_path / "in.wav", clip(), SR)
    out = tmp_path / "out.wav"
    threads = torch.get_num_threads()
    try:
        rc, _stdout, err = run_cli(["edit", str(src), "--instruction", "remove drums",
                                   "--instruction", "add piano", "--model", str(saved), "--out",
                                   str(out), "--steps", "2", "--seed", "7", "--strength", "0.5",
                                   "--match-source-stats", "--start", "inversion", "--threads", "1"],
                                  capsys)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert rc == 0, err
    wav, sr = load_audio(out)
    assert sr == SR and wav.shape == (1, 2 * SR)
    prov = load_provenance(out)["provenance"]
    assert prov["instructions"] == ["remove drums", "add piano"] and prov["seed"] == 7
    assert prov["steps"] == 2 and prov["model"] == str(saved) and len(prov["chords"]) == 2
    assert prov["strength"] == 0.5 and prov["match_source_stats"] is True
    assert prov["start"] == "inversion"


@pytest.mark.parametrize(
    ("extra", "nan_audio", "needle"),
    [(["-i", "remove kazoo"], False, "unknown instrument"), (["-i", ""], False, "empty"),
     (["-i", "remove drums", "--model", "MISSING"], False, "not found"),
     (["-i", "remove drums", "--model", "SAVED"], True, "NaN"),
     (["-i", "remove drums", "--model", "SAVED", "--strength", "0"], False, "strength"),
     (["-i", "remove drums", "--model", "SAVED", "--seed", str(2**70)], False, "64 bits"),
     (["-i", "remove drums", "--model", "SAVED", "--threads", "0"], False, "--threads")],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
    nan_audio: bool, needle: str,
) -> None:
    import soundfile as sf

    src = tmp_path / "in.wav"
    sf.write(src, np.full(SR, np.nan, np.float32) if nan_audio else clip(), SR, subtype="FLOAT")
    args = [str(saved) if e == "SAVED" else str(tmp_path / "none") if e == "MISSING" else e
            for e in extra]
    rc, _, err = run_cli(["edit", str(src), *args], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musigen: error:") and needle in lines[0]


def test_cli_without_model_names_the_missing_demo(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    import musigen.checkpoints

    monkeypatch.setenv("MUSIGEN_CHECKPOINTS", str(tmp_path))
    monkeypatch.setattr(musigen.checkpoints, "PACKAGE_PARENT", tmp_path)  # as if installed
    sf.write(tmp_path / "in.wav", clip(), SR, subtype="FLOAT")
    rc, _, err = run_cli(["edit", str(tmp_path / "in.wav"), "-i", "remove drums"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "'instructme_demo' not found" in err and "MUSIGEN_CHECKPOINTS" in err
    assert "--model" in err


def test_compact_halves_weights_and_shares_a_codec_with_the_same_codes(saved: Path, tmp_path: Path) -> None:
    """pipeline_compact: fp16 weights, the codec copy replaced by a shared one only when the
    encoder and codebooks match (a retrained decoder is allowed), and the edit still matches."""
    import shutil

    from musigen.codec import Codec
    from musigen.pipeline_compact import compact

    work = tmp_path / "pipe"
    shutil.copytree(saved, work)
    # A "preset" with the same encoder/codebooks but a changed decoder: shared.
    same_codes = Codec.from_pretrained(saved / "codec")
    with torch.no_grad():
        for p in same_codes.model.decoder.parameters():
            p.add_(0.01)
    shared_dir = same_codes.save_pretrained(tmp_path / "shared_codec")
    # One whose encoder differs: kept.
    other = Codec.from_pretrained(saved / "codec")
    with torch.no_grad():
        next(other.model.encoder.parameters()).add_(0.5)
    other_dir = other.save_pretrained(tmp_path / "other_codec")

    kept = tmp_path / "kept"
    shutil.copytree(saved, kept)
    assert compact(kept, str(other_dir))["codec_shared"] is False
    assert (kept / "codec").is_dir()

    unet_before = (work / "unet" / "model.safetensors").stat().st_size
    result = compact(work, str(shared_dir))
    assert result["codec_shared"] is True and not (work / "codec").exists()
    # a folder outside the pipeline is refused when it loads: shared codecs are presets
    with pytest.raises(CheckpointError, match="inside"):
        InstructMEPipeline.from_pretrained(work)
    import json

    shutil.copytree(shared_dir, work / "shared_codec")  # the same codec, inside the folder
    config = json.loads((work / "pipeline.json").read_text())
    (work / "pipeline.json").write_text(json.dumps({**config, "codec": "shared_codec"}))
    assert (work / "unet" / "model.safetensors").stat().st_size < 0.6 * unet_before

    original, compacted = InstructMEPipeline.from_pretrained(saved), InstructMEPipeline.from_pretrained(work)
    x = clip(1.0)
    with torch.no_grad():
        assert torch.equal(original.codec.encode_latents(x[None, None], SR),
                           compacted.codec.encode_latents(x[None, None], SR))
    for name, p in original.unet.state_dict().items():
        assert torch.allclose(p.float(), compacted.unet.state_dict()[name].float(), atol=1e-2, rtol=1e-2), name


def test_source_delta_output_gives_an_unchanged_input_back_exactly(
        pipe: InstructMEPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit that changes nothing: 'decoded' is the codec round trip, 'source_delta' the input."""
    monkeypatch.setattr(pipe.diffusion, "sample", lambda unet, cond, *a, **k: cond.source.clone())
    x = clip()
    decoded = pipe(x, SR, "remove drums", steps=2, seed=0).audio[0]
    delta = pipe(x, SR, "remove drums", steps=2, seed=0, output="source_delta")
    assert float(np.abs(decoded - x).max()) > 1e-2  # the random codec is far from lossless
    np.testing.assert_allclose(delta.audio[0], x, atol=1e-5)
    assert delta.parameters["output"] == "source_delta"
    masked = pipe(x, SR, "remove drums", steps=2, seed=0, output="masked_delta")
    np.testing.assert_allclose(masked.audio[0], x, atol=1e-5)  # nothing changed: mask 1 everywhere
    assert masked.parameters["output"] == "masked_delta"
    # auto: the delta for a removal, the decoded latents for an extraction
    auto = pipe(x, SR, ["remove drums", "extract bass"], steps=2, seed=0, output="auto")
    assert auto.parameters["round_outputs"] == ["source_delta", "decoded"]
    np.testing.assert_allclose(auto.rounds[0][0], x, atol=1e-5)
    assert float(np.abs(auto.rounds[1][0] - x).max()) > 1e-2
    with pytest.raises(MusigenError, match="output mode"):
        pipe(x, SR, "remove drums", steps=2, output="wet")


def test_residual_parameterisation_and_output_mode_travel_with_the_pipeline(tmp_path: Path) -> None:
    import dataclasses

    from musigen.instructme.diffusion import DiffusionConfig

    p = tiny_pipeline()
    p.config = dataclasses.replace(p.config, params=p.config.params.replace(output="source_delta"),
                                   diffusion=DiffusionConfig(parameterization="residual",
                                                             residual_scale=0.9))
    loaded = InstructMEPipeline.from_pretrained(p.save_pretrained(tmp_path / "m"))
    assert loaded.config.params.output == "source_delta"
    assert loaded.diffusion.config.parameterization == "residual"
    assert loaded.diffusion.config.residual_scale == 0.9


def test_strength_keeps_more_of_the_source_and_travels_with_the_pipeline(
        pipe: InstructMEPipeline, tmp_path: Path) -> None:
    """Lower strength starts nearer the source latents, so the decoded edit stays nearer the
    source's codec round trip; 1 is the default, and the default comes from pipeline.json."""
    import dataclasses

    import torch

    x = clip()
    with torch.no_grad():
        same = pipe.codec.decode_latents(pipe.codec.encode_latents(torch.from_numpy(x)[None, None]),
                                         length=x.size)[0, 0].numpy()
    dist = {s: float(np.mean((pipe(x, SR, "remove drums", steps=10, seed=0, strength=s).audio[0]
                              - same) ** 2)) for s in (1.0, 0.5, 0.05)}
    assert dist[0.05] < dist[0.5] < dist[1.0], dist
    default = pipe(x, SR, "remove drums", steps=4, seed=0)
    assert default.parameters["strength"] == 1.0
    np.testing.assert_array_equal(default.audio, pipe(x, SR, "remove drums", steps=4, seed=0,
                                                      strength=1.0).audio)
    p = tiny_pipeline()
    p.config = dataclasses.replace(p.config, params=p.config.params.replace(strength=0.4))
    loaded = InstructMEPipeline.from_pretrained(p.save_pretrained(tmp_path / "m"))
    assert loaded.config.params.strength == 0.4
    assert loaded(x, SR, "remove drums", steps=2).parameters["strength"] == 0.4
    with pytest.raises(MusigenError, match="strength"):
        pipe(x, SR, "remove drums", steps=2, strength=1.5)
    with pytest.raises(MusigenError, match="strength"):
        p.config.params.replace(strength=0.0)


def test_inversion_start_keeps_the_source_and_travels_with_the_pipeline(
        pipe: InstructMEPipeline, tmp_path: Path) -> None:
    """Starting from the DDIM-inverted source at text scale 0 gives back the source's codec round
    trip (nothing asks for a change), far closer than sampling from noise does; the start
    mode is recorded, stored in pipeline.json, and an unknown one is refused."""
    import dataclasses

    import torch

    x = clip()
    with torch.no_grad():
        same = pipe.codec.decode_latents(pipe.codec.encode_latents(torch.from_numpy(x)[None, None]),
                                         length=x.size)[0, 0].numpy()

    def dist(**kw: object) -> float:
        out = pipe(x, SR, "remove drums", steps=30, seed=0, sampler="ddim", guidance_text=0.0,
                   guidance_source=1.0, **kw)
        return float(np.mean((out.audio[0] - same) ** 2))

    assert dist(start="inversion") < dist(start="noise") / 5  # measured: 25x closer
    edited = pipe(x, SR, "remove drums", steps=4, seed=0, start="inversion")
    assert edited.parameters["start"] == "inversion"
    p = tiny_pipeline()
    p.config = dataclasses.replace(p.config, params=p.config.params.replace(start="inversion"))
    loaded = InstructMEPipeline.from_pretrained(p.save_pretrained(tmp_path / "m"))
    assert loaded.config.params.start == "inversion"
    assert loaded(x, SR, "remove drums", steps=2).parameters["start"] == "inversion"
    with pytest.raises(MusigenError, match="unknown start"):
        pipe(x, SR, "remove drums", steps=2, start="inverted")
    with pytest.raises(MusigenError, match="unknown start"):
        p.config.params.replace(start="")


def test_matching_source_statistics_reaches_the_decoder_and_travels_with_the_pipeline(
        pipe: InstructMEPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the flag, the latents the codec decodes carry the source latents' per-channel mean
    and std (whatever the guidance did to them); off by default; the default comes from
    pipeline.json."""
    import dataclasses

    import torch

    x = clip()
    with torch.no_grad():
        source = pipe.stats.normalize(pipe.codec.encode_latents(torch.from_numpy(x)[None, None]))
    seen: list[torch.Tensor] = []
    decode = pipe.codec.decode_latents

    def spy(z: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        seen.append(pipe.stats.normalize(z))
        return decode(z, *args, **kwargs)

    monkeypatch.setattr(pipe.codec, "decode_latents", spy)
    stats = lambda z: (z.mean(-1), z.std(-1, unbiased=False))  # noqa: E731
    wild = pipe(x, SR, "remove drums", steps=4, seed=0, guidance_text=6.0, guidance_source=6.0)
    assert not torch.allclose(stats(seen[-1])[1], stats(source)[1], rtol=1e-3, atol=1e-3)
    tamed = pipe(x, SR, "remove drums", steps=4, seed=0, guidance_text=6.0, guidance_source=6.0,
                 match_source_stats=True)
    for got, want in zip(stats(seen[-1]), stats(source)):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)
    assert tamed.parameters["match_source_stats"] is True and wild.parameters["match_source_stats"] is False
    assert not np.allclose(tamed.audio, wild.audio)
    p = tiny_pipeline()
    p.config = dataclasses.replace(p.config,
                                   params=p.config.params.replace(match_source_stats=True))
    loaded = InstructMEPipeline.from_pretrained(p.save_pretrained(tmp_path / "m"))
    assert loaded(x, SR, "remove drums", steps=2).parameters["match_source_stats"] is True
    with pytest.raises(MusigenError, match="match_source_stats"):
        p.config.params.replace(match_source_stats="yes")
    with pytest.raises(MusigenError, match="match_source_stats"):
        pipe(x, SR, "remove drums", steps=2, match_source_stats=1)
