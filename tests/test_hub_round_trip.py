"""Every model and pipeline saves and loads through `musigen.hub.Pretrained`, the same way.

For each class a tiny random instance is built offline; `save_pretrained` returns the folder,
`from_pretrained(dir, device="cpu", dtype=torch.float32)` gives outputs equal to the
original's, `dtype=torch.float16` loads half weights, and a missing config key or a missing
weights file is a one-line MusigenError.  Weights are first put on the fp16 grid so that the
classes which ship fp16 by default (CLAP, judge, chord model) round-trip exactly too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from musigen.errors import MusigenError
from musigen.hub import Pretrained


def fp16_exact(*modules: torch.nn.Module) -> None:
    """Round every saved floating tensor to a value fp16 holds exactly (non-persistent
    buffers, e.g. mel filters, are rebuilt on load and stay as they are)."""
    with torch.no_grad():
        for module in modules:
            for t in module.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.half().float())


def tone(seconds: float, sr: int, freq: float = 220.0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    noise = 0.05 * np.random.default_rng(0).standard_normal(t.shape)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


@dataclass
class Case:
    """How to build, run and break one class."""

    build: Callable[[Path], Pretrained]  # a tiny random instance (may write helper files)
    run: Callable[[Any], Any]  # outputs that must survive the round trip
    weights: Callable[[Any], torch.Tensor]  # one floating tensor, to check the loaded dtype
    config: str  # the JSON file (relative to the folder) holding the config
    key: str  # a config key whose absence must be an error
    weights_file: str  # a weights file (relative to the folder) whose absence must be an error


# ----------------------------------------------------------------------------- builders


def _lm(_: Path) -> Pretrained:
    from musicot_tiny import tiny_lm_config

    from musigen.musicot.lm import MusiCoTLM

    torch.manual_seed(0)
    lm = MusiCoTLM(tiny_lm_config()).eval()
    fp16_exact(lm)
    return lm


def _run_lm(lm: Any) -> torch.Tensor:
    from musigen.musicot.sampling import SamplingParams, generate

    return generate(lm, num_frames=6, batch_size=2, seed=0, params=SamplingParams(top_k=4)).codes


def _thoughts(_: Path) -> Pretrained:
    from musigen.musicot.thoughts import ThoughtConfig, ThoughtTokenizer

    g = torch.Generator().manual_seed(0)
    vecs = torch.nn.functional.normalize(torch.randn(64, 8, generator=g), dim=-1)
    cfg = ThoughtConfig(embed_dim=8, levels=2, codebook_size=4, kmeans_iters=3, refine_passes=1)
    return ThoughtTokenizer.fit(vecs, cfg)


def _run_thoughts(tok: Any) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    vecs = torch.nn.functional.normalize(torch.randn(10, 8, generator=g), dim=-1)
    return tok.encode(vecs)


def _unet(_: Path) -> Pretrained:
    from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig

    torch.manual_seed(0)
    unet = InstructMEUNet(InstructMEUNetConfig.preset(
        "debug", latent_channels=4, text_dim=8, chord_dim=25, base_channels=8, chord_channels=4,
        chunk_size=8)).eval()
    fp16_exact(unet)
    return unet


def _run_unet(unet: Any) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    noisy, source = torch.randn(1, 4, 20, generator=g), torch.randn(1, 4, 20, generator=g)
    text, mask = torch.randn(1, 3, 8, generator=g), torch.ones(1, 3, dtype=torch.bool)
    chords = torch.zeros(1, 20, 25)
    chords[..., 1] = 1
    with torch.no_grad():
        return unet(noisy, torch.tensor([500]), source, text, mask, chords)


def _codec(_: Path) -> Pretrained:
    from musicot_tiny import tiny_codec

    codec = tiny_codec()
    fp16_exact(codec)
    return codec


def _run_codec(codec: Any) -> tuple[torch.Tensor, torch.Tensor]:
    wav = torch.from_numpy(tone(0.5, codec.sample_rate))[None, None]
    with torch.no_grad():
        return codec.encode(wav), codec.decode_latents(codec.encode_latents(wav))


def _musigen_clap(_: Path) -> Pretrained:
    from musicot_tiny import tiny_embedder, tiny_text_encoder

    clap = tiny_embedder(tiny_text_encoder())
    fp16_exact(clap)
    return clap


def _run_clap(clap: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return clap.embed_audio(tone(1.5, clap.sample_rate), clap.sample_rate), clap.embed_text(
        ["a piano", "drums"])


def _run_musigen_clap(clap: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The text tower's projection only: its frozen MiniLM comes from PyPI, not the folder."""
    text = torch.randn(2, clap.config.text_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        audio = clap.embed_audio(tone(1.5, clap.sample_rate), clap.sample_rate)
        return audio, clap.project_text(text)


def _hf_clap(tmp: Path) -> Pretrained:
    from test_clap import tiny_clap_folder

    from musigen.embedders.clap import HFClapEmbedder

    clap = HFClapEmbedder.from_pretrained(tiny_clap_folder(tmp / "hf_clap_source"))
    fp16_exact(clap)
    return clap


def _minilm(_: Path) -> Pretrained:
    from musicot_tiny import tiny_text_encoder

    enc = tiny_text_encoder()
    fp16_exact(enc)
    return enc


def _t5(tmp: Path) -> Pretrained:
    from test_text_encoders import _tiny_t5

    from musigen.embedders.text import T5TextEncoder

    torch.manual_seed(0)
    enc = T5TextEncoder.from_pretrained(_tiny_t5(tmp / "t5_source"))
    fp16_exact(enc)
    return enc


def _run_text(enc: Any) -> tuple[torch.Tensor, torch.Tensor]:
    out = enc.encode(["remove the drums", "add a bass"])
    return out.states, out.pooled


def _judge(_: Path) -> Pretrained:
    from musigen.judge.model import InstrumentJudge, JudgeConfig

    torch.manual_seed(0)
    judge = InstrumentJudge(JudgeConfig(channels=[4, 8, 8, 8], embedding_dim=8, window_s=1.0,
                                        hop_s=0.5)).eval()
    fp16_exact(judge)
    return judge


def _run_judge(judge: Any) -> np.ndarray:
    return judge.analyze(tone(2.0, judge.config.sample_rate), judge.config.sample_rate).logits


def _chords(_: Path) -> Pretrained:
    from musigen.chords.model import ChordModelConfig, ChordRecognizer

    torch.manual_seed(0)
    model = ChordRecognizer(ChordModelConfig(hidden=8, dilations=(1,)))
    fp16_exact(model.net)
    return model


def _run_chords(model: Any) -> torch.Tensor:
    with torch.no_grad():
        return model.net(torch.randn(1, 40, 72, generator=torch.Generator().manual_seed(0)))


def _musicot(_: Path) -> Pretrained:
    from musicot_tiny import tiny_pipeline

    pipe = tiny_pipeline()
    fp16_exact(pipe.codec, pipe.text_encoder, pipe.embedder, pipe.lm)
    return pipe


def _run_musicot(pipe: Any) -> np.ndarray:
    return pipe("soft piano", duration=1.0, seed=0, progress=False).audio


def _instructme(_: Path) -> Pretrained:
    from test_instructme_pipeline import tiny_pipeline

    pipe = tiny_pipeline()
    fp16_exact(pipe.codec, pipe.text_encoder, pipe.unet)
    return pipe


def _run_instructme(pipe: Any) -> np.ndarray:
    return pipe(tone(1.0, 16000), 16000, "remove drums", steps=2, seed=0).audio


def _first_float(module: torch.nn.Module) -> torch.Tensor:
    return next(p for p in module.parameters() if p.is_floating_point())


CASES: dict[str, Case] = {
    "MusiCoTLM": Case(_lm, _run_lm, _first_float, "config.json", "dim", "model.safetensors"),
    "ThoughtTokenizer": Case(_thoughts, _run_thoughts, lambda t: t.rvq.codebooks, "config.json",
                             "embed_dim", "model.safetensors"),
    "InstructMEUNet": Case(_unet, _run_unet, _first_float, "config.json", "base_channels",
                           "model.safetensors"),
    "Codec": Case(_codec, _run_codec, _first_float, "config.json", "hidden_size",
                  "model.safetensors"),
    "MusigenClap": Case(_musigen_clap, _run_musigen_clap, _first_float, "config.json", "channels",
                        "model.safetensors"),
    "HFClapEmbedder": Case(_hf_clap, _run_clap, _first_float, "config.json", "audio_config",
                           "model.safetensors"),
    "MiniLMTextEncoder": Case(_minilm, _run_text, _first_float, "config.json", "hidden_size",
                              "model.safetensors"),
    "T5TextEncoder": Case(_t5, _run_text, _first_float, "config.json", "d_model",
                          "model.safetensors"),
    "InstrumentJudge": Case(_judge, _run_judge, _first_float, "config.json", "channels",
                            "model.safetensors"),
    "ChordRecognizer": Case(_chords, _run_chords, lambda m: _first_float(m.net), "config.json",
                            "hidden", "model.safetensors"),
    "MusiCoTPipeline": Case(_musicot, _run_musicot, lambda p: _first_float(p.lm), "pipeline.json",
                            "lm", "lm/model.safetensors"),
    "InstructMEPipeline": Case(_instructme, _run_instructme, lambda p: _first_float(p.unet),
                               "pipeline.json", "unet", "unet/model.safetensors"),
}


def _assert_same(a: Any, b: Any) -> None:
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    else:
        np.testing.assert_array_equal(b, a)


@pytest.fixture(scope="module", params=sorted(CASES))
def saved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[Case, type, Path, Any]:
    """(case, class, saved folder, the original's outputs), built once per class."""
    torch.set_num_threads(1)
    case = CASES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    model = case.build(tmp)
    assert type(model).__name__ == request.param and isinstance(model, Pretrained)
    expected = case.run(model)
    folder = tmp / "saved"
    returned = model.save_pretrained(folder)
    assert isinstance(returned, Path) and returned == folder
    return case, type(model), folder, expected


def test_round_trip_gives_the_same_outputs(saved: tuple[Case, type, Path, Any]) -> None:
    case, cls, folder, expected = saved
    loaded = cls.from_pretrained(folder, device="cpu", dtype=torch.float32)
    assert type(loaded) is cls and case.weights(loaded).dtype == torch.float32
    _assert_same(expected, case.run(loaded))


def test_half_dtype_loads_half_weights(saved: tuple[Case, type, Path, Any]) -> None:
    case, cls, folder, _ = saved
    assert case.weights(cls.from_pretrained(folder, dtype=torch.float16)).dtype == torch.float16


def _broken_copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(folder, copy)
    return copy


def _one_line_error(cls: type, folder: Path) -> str:
    with pytest.raises(MusigenError) as info:
        cls.from_pretrained(folder)
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


def test_a_missing_config_key_is_one_line(saved: tuple[Case, type, Path, Any],
                                          tmp_path: Path) -> None:
    case, cls, folder, _ = saved
    broken = _broken_copy(folder, tmp_path)
    path = broken / case.config
    data = json.loads(path.read_text())
    del data[case.key]
    path.write_text(json.dumps(data))
    _one_line_error(cls, broken)


def test_a_missing_weights_file_is_one_line(saved: tuple[Case, type, Path, Any],
                                            tmp_path: Path) -> None:
    case, cls, folder, _ = saved
    broken = _broken_copy(folder, tmp_path)
    (broken / case.weights_file).unlink()
    _one_line_error(cls, broken)
