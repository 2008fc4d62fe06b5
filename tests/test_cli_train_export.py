"""`musigen train fit|validate` and `musigen export codec|clap|instructme|compact`.

The training subcommands hand their arguments to the LightningCLI unchanged, so a recipe parses
as it does there; the exporters turn tiny checkpoints (built here, not trained) into folders
that the loaders read.  Bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from musigen.cli import main

ROOT = Path(__file__).resolve().parent.parent
DEBUG_RECIPE = ROOT / "recipes" / "musicot" / "debug.yaml"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own --help
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_exit_2(code: int, err: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("musigen: error: ") and "Traceback" not in err


def save_ckpt(path: Path, hyper_parameters: dict, state_dict: dict, **extra: object) -> Path:
    """A Lightning-shaped checkpoint (what the exporters read) without a Trainer."""
    torch.save({"hyper_parameters": hyper_parameters, "state_dict": state_dict, **extra}, path)
    return path


@pytest.mark.parametrize("args", [
    ["train", "fit", "--help"], ["train", "validate", "--help"], ["train", "chords", "--help"],
    ["export", "--help"], ["export", "codec", "--help"], ["export", "clap", "--help"],
    ["export", "instructme", "--help"], ["export", "compact", "--help"],
])
def test_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(args, capsys)
    assert code == 0 and "usage: musigen " in out
    if args[:2] == ["train", "fit"]:
        assert "--ckpt_path" in out and "--config" in out


def test_train_fit_parses_a_recipe_as_the_lightning_cli_does(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["train", "fit", "--config", str(DEBUG_RECIPE),
                          "--trainer.max_steps", "7", "--print_config"], capsys)
    assert code == 0, err
    assert "musigen.training.musicot_module.MusiCoTModule" in out and "max_steps: 7" in out


@pytest.mark.parametrize("args, message", [
    (["train", "fit", "--config", "missing.yaml"], "missing.yaml"),
    (["train", "fit", "--config", str(DEBUG_RECIPE), "--trainer.no_such_option", "3"],
     "no_such_option"),
    (["train", "validate", "--config", str(DEBUG_RECIPE), "--ckpt_path", "missing.ckpt"],
     "missing.ckpt"),
    (["export", "codec", "missing.ckpt", "out"], "not found"),
    (["export", "clap", "missing.ckpt", "out"], "not found"),
    (["export", "instructme", "missing.ckpt", "out"], "not found"),
    (["export", "compact", "."], "not a pipeline folder"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(args, capsys)
    one_line_exit_2(code, err)
    assert message in err


def tiny_codec_checkpoint(path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    from musigen.training.codec_module import CodecArchConfig, CodecModule

    torch.manual_seed(0)
    module = CodecModule(arch=CodecArchConfig(num_filters=4, hidden_size=16, codebook_size=32,
                                              num_codebooks=2, num_lstm_layers=1))
    state = module.state_dict()
    return save_ckpt(path, dict(module.hparams), state), state


def test_export_codec_writes_a_loadable_codec(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.codec import Codec

    ckpt, state = tiny_codec_checkpoint(tmp_path / "codec.ckpt")
    code, out, err = run(["export", "codec", str(ckpt), str(tmp_path / "codec"),
                          "--dtype", "float32"], capsys)
    assert code == 0, err
    assert "exported" in out
    codec = Codec.from_pretrained(tmp_path / "codec")
    for name, value in codec.model.state_dict().items():
        assert torch.equal(value, state[f"model.{name}"]), name
    # a checkpoint of another module is refused by name, in one line
    clap = save_ckpt(tmp_path / "other.ckpt", {"arch": {"channels": [8]}}, {})
    one_line_exit_2(*run(["export", "codec", str(clap), str(tmp_path / "x")], capsys)[::2])


def test_export_clap_writes_a_loadable_embedder(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.embedders.clap import load_embedder
    from musigen.embedders.musigen_clap import MusigenClapConfig
    from musigen.training.clap_module import ClapModule

    torch.manual_seed(0)
    module = ClapModule(arch=MusigenClapConfig(channels=[8, 16, 32], n_mels=32, embed_dim=32,
                                               text_hidden=64, window_s=1.0))
    ckpt = save_ckpt(tmp_path / "clap.ckpt", dict(module.hparams), module.state_dict())
    code, out, err = run(["export", "clap", str(ckpt), str(tmp_path / "clap")], capsys)
    assert code == 0, err
    embedder = load_embedder(tmp_path / "clap")
    wav = torch.randn(16000).numpy() * 0.1
    assert embedder.embed_audio(wav, 16000).shape[-1] == 32


def test_export_instructme_then_compact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tiny InstructME checkpoint -> a pipeline folder that loads; `compact` then stores its
    U-Net in fp16 and the pipeline still loads."""
    from musigen.chords import ChordModelConfig, ChordRecognizer
    from musigen.encode.components import random_codec
    from musigen.instructme.diffusion import DiffusionConfig
    from musigen.instructme.pipeline import InstructMEPipeline
    from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig

    codec_dir = random_codec("tiny").save_pretrained(tmp_path / "codec")
    chords_dir = ChordRecognizer(ChordModelConfig(hidden=8, dilations=(1,))).save_pretrained(
        tmp_path / "chords")
    torch.manual_seed(2)
    config = InstructMEUNetConfig.preset("debug", latent_channels=16, text_dim=384, chord_dim=25,
                                         base_channels=16, chord_channels=8, chunk_size=16)
    unet = InstructMEUNet(config)
    state = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    state |= {"latent_mean": torch.zeros(16), "latent_std": torch.ones(16)}
    hp = {"unet": dataclasses.asdict(config), "diffusion": dataclasses.asdict(DiffusionConfig())}
    data = {"codec": str(codec_dir), "text_encoder": {"kind": "minilm", "path": None},
            "chord_vocab_name": "majmin"}
    ckpt = save_ckpt(tmp_path / "unet.ckpt", hp, state, instructme_data=data)

    pipe_dir = tmp_path / "pipe"
    code, out, err = run(["export", "instructme", str(ckpt), str(pipe_dir),
                          "--chords", str(chords_dir)], capsys)
    assert code == 0, err
    pipe = InstructMEPipeline.from_pretrained(pipe_dir)
    for name, value in unet.state_dict().items():
        assert torch.equal(pipe.unet.state_dict()[name], value), name

    unet_file = pipe_dir / "unet" / "model.safetensors"
    before = unet_file.stat().st_size
    # --codec '': keep the pipeline's own codec (this random one is no preset's)
    code, out, err = run(["export", "compact", str(pipe_dir), "--codec", ""], capsys)
    assert code == 0, err
    assert "MB saved" in out and "codec shared" not in out and (pipe_dir / "codec").is_dir()
    assert unet_file.stat().st_size < 0.6 * before
    compacted = InstructMEPipeline.from_pretrained(pipe_dir)
    for name, value in unet.state_dict().items():
        assert torch.allclose(compacted.unet.state_dict()[name].float(), value, atol=1e-2), name
