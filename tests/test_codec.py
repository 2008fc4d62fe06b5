"""Codec wrapper, its checkpoint path, code files, and the codec training pieces.

The real-checkpoint path is tested on a random-init model in facebook/encodec_32khz's exact
config, saved with `save_pretrained` and loaded back through `Codec.from_pretrained`, the
call a user makes with the real weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from musigen.codec import Codec, fill_codebooks, latent_channel_stats, preset_config
from musigen.codec_files import decode_file, encode_file, load_codes
from musigen.errors import (
    CheckpointError,
    DataError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
)


def _music(sr: int, seconds: float, seed: int = 0) -> torch.Tensor:
    """A few gliding partials plus noise: enough structure to spread codes over a codebook."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(sr * seconds)) / sr
    x = torch.zeros_like(t)
    for f0 in (110.0, 220.0, 330.0, 523.0):
        x += 0.15 * torch.sin(2 * math.pi * f0 * t * (1 + 0.1 * t)) * (0.6 + 0.4 * torch.sin(2 * math.pi * 1.5 * t))
    return (x + 0.03 * torch.randn(t.shape, generator=g))[None]


def _tiny_codec(seed: int = 0) -> Codec:
    """A 16 kHz codec small enough to build in milliseconds, with filled codebooks."""
    from musigen.codec import encodec_config

    torch.manual_seed(seed)
    codec = Codec.from_config(encodec_config(sample_rate=16000, upsampling_ratios=[8, 5, 4, 2], num_filters=4,
                                             hidden_size=16, codebook_size=64, num_codebooks=4, num_lstm_layers=1))
    with torch.no_grad():
        z = codec.model.encoder(_music(16000, 1.0)[None])
    fill_codebooks(codec.model, z, torch.Generator().manual_seed(seed))
    return codec


@pytest.fixture(scope="module")
def encodec32(tmp_path_factory: pytest.TempPathFactory) -> tuple[Codec, Codec, Path]:
    """(in-memory model, the same model loaded from disk, its folder) in the 32 kHz config."""
    torch.manual_seed(0)
    original = Codec.from_config(preset_config("encodec_32khz"))
    with torch.no_grad():
        z = original.model.encoder(_music(32000, 1.0)[None])
    fill_codebooks(original.model, z, torch.Generator().manual_seed(0))
    folder = tmp_path_factory.mktemp("encodec_32khz")
    original.save_pretrained(folder)
    return original, Codec.from_pretrained(folder), folder


def test_32khz_config_is_musicgens_codec(encodec32: tuple[Codec, Codec, Path]) -> None:
    _, loaded, folder = encodec32
    assert (loaded.sample_rate, loaded.frame_rate, loaded.num_codebooks, loaded.cardinality) == (32000, 50, 4, 2048)
    assert loaded.latent_dim == 128
    assert sum(p.numel() for p in loaded.parameters()) == pytest.approx(56.9e6, rel=0.01)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["upsampling_ratios"] == [8, 5, 4, 4] and saved["target_bandwidths"] == [2.2]


def test_32khz_loaded_model_codes_range_batches_and_odd_lengths(encodec32: tuple[Codec, Codec, Path]) -> None:
    original, loaded, _ = encodec32
    n = 32000 // 4 + 17  # not a multiple of the 640-sample hop
    a, b = _music(32000, n / 32000, seed=1), _music(32000, n / 32000, seed=2) * 0.5
    codes = loaded.encode(torch.stack([a, b]))
    assert codes.dtype == torch.long and codes.shape == (2, 4, math.ceil(n / 640))
    assert 0 <= int(codes.min()) and int(codes.max()) < 2048
    assert len(torch.unique(codes[0, 0])) > 3, "filled codebooks must give varied codes"
    # What was saved is what loads: identical codes and audio from disk and from memory.
    assert torch.equal(codes, original.encode(torch.stack([a, b])))
    # A batch is the same as its items one by one.
    assert torch.equal(codes[1:], loaded.encode(b))
    wav = loaded.decode(codes, length=n)
    assert wav.shape == (2, 1, n) and torch.isfinite(wav).all()
    torch.testing.assert_close(wav, original.decode(codes, length=n), atol=1e-5, rtol=1e-4)


def test_32khz_decode_encode_round_trip_is_stable(encodec32: tuple[Codec, Codec, Path]) -> None:
    """With random weights decode->encode cannot reproduce arbitrary codes; what must hold is
    that the round trip P = encode(decode(.)) keeps the frame grid (T frames -> T*hop samples
    -> T frames) and is idempotent on its own output: P(P(c)) == P(c) for >= 99% of codes."""
    _, codec, _ = encodec32
    c0 = codec.encode(_music(32000, 0.25, seed=3))
    c1 = codec.encode(codec.decode(c0))
    c2 = codec.encode(codec.decode(c1))
    assert c1.shape == c0.shape == c2.shape
    assert (c2 == c1).float().mean().item() >= 0.99


def test_hub_id_and_preset_name_give_clear_errors_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_cache"))
    for name in ("facebook/encodec_32khz", "encodec_32khz"):
        with pytest.raises(CheckpointError, match="encodec_32khz"):
            Codec.from_pretrained(name)


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        Codec.from_pretrained(tmp_path / "nope")
    codec = _tiny_codec()
    folder = codec.save_pretrained(tmp_path / "tiny")
    (tmp_path / "only_config").mkdir()
    (tmp_path / "only_config" / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(CheckpointError, match="safetensors"):
        Codec.from_pretrained(tmp_path / "only_config")
    config = json.loads((folder / "config.json").read_text())
    config["num_filters"] = 8  # weights were made with 4
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not match"):
        Codec.from_pretrained(folder)


def test_fp16_save_loads_as_float32_with_same_codes(tmp_path: Path) -> None:
    codec = _tiny_codec()
    loaded = Codec.from_pretrained(codec.save_pretrained(tmp_path / "fp16", dtype=torch.float16))
    assert next(loaded.parameters()).dtype == torch.float32
    x = _music(16000, 1.0)
    agree = (loaded.encode(x) == codec.encode(x)).float().mean().item()
    assert agree > 0.9  # fp16 rounding may flip a few near-ties, not the codes as a whole


def test_input_conversion_and_validation() -> None:
    codec = _tiny_codec()
    mono = _music(16000, 0.5)
    stereo = torch.cat([mono, mono * 0.5])
    assert torch.equal(codec.encode(stereo), codec.encode(mono * 0.75))  # down-mixed by averaging
    assert torch.equal(codec.encode(mono[0].numpy()), codec.encode(mono))  # [N] numpy works too
    # A 32 kHz clip with its rate is resampled: same frame count as the 16 kHz clip.
    up = torch.from_numpy(np.repeat(mono.numpy(), 2, axis=-1))
    assert codec.encode(up, sample_rate=32000).shape == codec.encode(mono).shape
    with pytest.raises(SampleRateError, match="32000"):
        codec.encode(up, sample_rate=32000, resample=False)
    with pytest.raises(EmptyAudioError):
        codec.encode(torch.zeros(1, 0))
    with pytest.raises(NonFiniteAudioError):
        codec.encode(torch.full((1, 800), float("nan")))
    codes = codec.encode(mono)
    with pytest.raises(DataError, match=r"\[0, 64\)"):
        codec.decode(codes + 64)
    with pytest.raises(DataError, match="codebooks"):
        codec.decode(torch.cat([codes, codes], dim=1))


def test_fewer_codebooks_are_a_prefix_and_decode() -> None:
    codec = _tiny_codec()
    x = _music(16000, 0.5)
    full = codec.encode(x)
    two = codec.encode(x, num_codebooks=2)
    assert torch.equal(two, full[:, :2])
    assert codec.decode(two, length=8000).shape == (1, 1, 8000)


def test_latents_and_their_statistics() -> None:
    codec = _tiny_codec()
    x = torch.stack([_music(16000, 0.5, seed=s) for s in range(3)])
    z = codec.encode_latents(x)
    zq = codec.encode_latents(x, quantized=True)
    assert z.shape == zq.shape == (3, codec.latent_dim, 25)
    # Dequantised latents are exactly the codebook sum of the codes.
    torch.testing.assert_close(zq, codec.model.quantizer.decode(codec.encode(x).transpose(0, 1)))
    assert not torch.allclose(z, zq)
    assert codec.decode_latents(z, length=8000).shape == (3, 1, 8000)
    mean, std = latent_channel_stats([z[:2], z[2:]])
    flat = z.transpose(0, 1).reshape(codec.latent_dim, -1)
    torch.testing.assert_close(mean, flat.mean(1))
    torch.testing.assert_close(std, flat.std(1))


def test_codes_file_round_trip_through_the_cli(tmp_path: Path) -> None:
    from musigen.audio import load_audio, save_audio
    from musigen.cli import main

    folder = _tiny_codec().save_pretrained(tmp_path / "codec")
    wav = _music(22050, 0.7).numpy()  # another rate: encode resamples
    save_audio(tmp_path / "in.wav", wav, 22050)
    assert main(["codec", "encode", str(tmp_path / "in.wav"), "--out", str(tmp_path / "c.safetensors"),
                 "--model", str(folder)]) == 0
    n16 = load_audio(tmp_path / "in.wav", sample_rate=16000)[0].shape[-1]
    codes, meta = load_codes(tmp_path / "c.safetensors")
    assert codes.shape == (4, math.ceil(n16 / 320)) and meta["model"] == str(folder)
    # the file names a codec that is not the shipped one: decoding needs it confirmed
    decode = ["codec", "decode", str(tmp_path / "c.safetensors"), "--out", str(tmp_path / "out.wav")]
    assert main(decode) == 2
    assert main([*decode, "--model", str(folder)]) == 0
    out, sr = load_audio(tmp_path / "out.wav")
    assert sr == 16000 and out.shape == (1, n16)
    # Bad inputs are one-line errors (exit 2), not tracebacks.
    assert main(["codec", "decode", str(tmp_path / "in.wav"), "--out", str(tmp_path / "x.wav")]) == 2
    assert main(["codec", "encode", str(tmp_path / "in.wav"), "--out", str(tmp_path / "x.safetensors"),
                 "--model", str(tmp_path / "missing")]) == 2
    # decode_file/encode_file are the library functions behind the CLI.
    path, _ = encode_file(tmp_path / "in.wav", tmp_path / "d.safetensors", model=str(folder))
    assert decode_file(path, tmp_path / "d.wav", model=str(folder)).is_file()


# -- training -------------------------------------------------------------------------------


def test_reconstruction_loss_is_zero_for_identity_and_grows_with_error() -> None:
    from musigen.training.losses import ReconstructionLoss, ReconstructionLossConfig

    loss = ReconstructionLoss(16000, ReconstructionLossConfig(mel_min_exp=6, mel_max_exp=9,
                                                              stft_fft_sizes=[512, 128]))
    x = _music(16000, 0.5)[None]
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    same, small, big = (loss(x + a * noise, x)["total"].item() for a in (0.0, 0.01, 0.1))
    assert same < 1e-3 < small < big


def test_ema_quantizer_follows_a_moving_input_and_revives_dead_codes() -> None:
    """Like an encoder early in training, the input distribution moves after the k-means start:
    EMA must carry the codebooks along and re-seed the codes that the new data never picks."""
    from musigen.training.ema_quantizer import EMAResidualQuantizer, QuantizerTrainingConfig

    from musigen.codec import encodec_config

    codec = Codec.from_config(encodec_config(sample_rate=16000, upsampling_ratios=[8, 5, 4, 2], num_filters=2,
                                             hidden_size=32, codebook_size=256, num_codebooks=2, num_lstm_layers=1))
    rvq = EMAResidualQuantizer(codec.model.quantizer, QuantizerTrainingConfig(decay=0.8, dead_code_threshold=0.05))
    g = torch.Generator().manual_seed(0)
    old, new = torch.randn(40, 32, generator=g) * 3, torch.randn(40, 32, generator=g) * 3 + 2

    def batch(centres: torch.Tensor) -> torch.Tensor:  # 4 x 50 frames around 40 cluster centres
        pick = torch.randint(0, 40, (4 * 50,), generator=g)
        return (centres[pick] + 0.1 * torch.randn(4 * 50, 32, generator=g)).view(4, 50, 32).transpose(1, 2)

    rvq.train()
    rvq(batch(old))  # k-means start
    probe = batch(new)
    rvq.eval()
    before = rvq(probe).commitment.item()
    rvq.train()
    for _ in range(30):
        rvq(batch(new))
    rvq.eval()
    after = rvq(probe)
    assert after.commitment.item() < 0.1 * before
    level0 = codec.model.quantizer.layers[0].codebook
    near_new = torch.cdist(level0.embed, new).min(dim=1).values < 1.5
    assert near_new.float().mean().item() > 0.95, "codes the new data never picked must be re-seeded from it"
    assert after.codes.shape == (4, 2, 50) and len(torch.unique(after.codes[:, 0])) >= 35
    frozen = level0.embed.clone()
    rvq(batch(new), num_codebooks=2)
    assert torch.equal(frozen, level0.embed), "eval mode must not touch the codebooks"


def _tiny_module(discriminator: bool = False, **kwargs: object) -> "CodecModule":  # noqa: F821
    from musigen.training.codec_module import CodecArchConfig, CodecModule, CodecOptimConfig
    from musigen.training.discriminator import DiscriminatorConfig
    from musigen.training.ema_quantizer import QuantizerTrainingConfig
    from musigen.training.losses import ReconstructionLossConfig

    return CodecModule(
        arch=CodecArchConfig(num_filters=4, hidden_size=16, codebook_size=32, num_codebooks=2, num_lstm_layers=1),
        loss=ReconstructionLossConfig(stft=0.0, mel_min_exp=6, mel_max_exp=10),
        quantizer=QuantizerTrainingConfig(dead_code_threshold=0.05),
        optim=CodecOptimConfig(lr=3e-3, warmup_steps=1),
        discriminator=DiscriminatorConfig(n_ffts=[256], filters=4, start_step=0) if discriminator else None,
        **kwargs,
    )


def _loader(n: int = 4) -> torch.utils.data.DataLoader:
    clips = [{"wav": _music(16000, 0.25, seed=s)} for s in range(n)]
    return torch.utils.data.DataLoader(clips, batch_size=n)


def _full_bandwidth_mel(module: "CodecModule") -> float:  # noqa: F821
    module.eval()
    with torch.no_grad():
        x = next(iter(_loader()))["wav"]
        recon, _ = module(x, module.arch.num_codebooks)
        return module.recon(recon, x)["mel"].item()


def test_training_beats_init_and_exports_to_a_loadable_codec(tmp_path: Path) -> None:
    import lightning as L

    from musigen.training.export_codec import export

    torch.manual_seed(0)
    module = _tiny_module()
    before = _full_bandwidth_mel(module)
    module.train()
    trainer = L.Trainer(max_steps=8, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=_loader())
    after = _full_bandwidth_mel(module)
    assert after < 0.8 * before, (before, after)

    trainer.save_checkpoint(tmp_path / "run.ckpt")
    codec = Codec.from_pretrained(export(tmp_path / "run.ckpt", tmp_path / "exported", dtype="float32"))
    x = _music(16000, 0.25, seed=0)
    assert torch.equal(codec.encode(x), module.rvq(module.model.encoder(x[None])).codes)
    assert (codec.sample_rate, codec.num_codebooks, codec.cardinality) == (16000, 2, 32)


def test_decoder_stage_keeps_codes_fixed_and_still_improves(tmp_path: Path) -> None:
    """Stage two (freeze_encoder) must leave encoder and codebooks untouched, so pre-encoded
    downstream data stays valid, while the decoder keeps learning."""
    import lightning as L

    from musigen.errors import ConfigError

    torch.manual_seed(0)
    stage1 = _tiny_module()
    trainer = L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(stage1, train_dataloaders=_loader())
    trainer.save_checkpoint(tmp_path / "stage1.ckpt")
    with pytest.raises(ConfigError):
        _tiny_module(freeze_encoder=True)

    stage2 = _tiny_module(freeze_encoder=True, init_checkpoint=str(tmp_path / "stage1.ckpt"))
    x = _music(16000, 0.25, seed=1)[None]
    stage2.eval()
    with torch.no_grad():
        codes_before = stage2.rvq(stage2.model.encoder(x)).codes
    enc_before = {k: v.clone() for k, v in stage2.model.encoder.state_dict().items()}
    books_before = {k: v.clone() for k, v in stage2.rvq.state_dict().items()}
    mel_before = _full_bandwidth_mel(stage2)
    stage2.train()
    trainer = L.Trainer(max_steps=8, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(stage2, train_dataloaders=_loader())
    assert all(torch.equal(v, stage2.model.encoder.state_dict()[k]) for k, v in enc_before.items())
    assert all(torch.equal(v, stage2.rvq.state_dict()[k]) for k, v in books_before.items())
    stage2.eval()
    with torch.no_grad():
        assert torch.equal(codes_before, stage2.rvq(stage2.model.encoder(x)).codes)
    assert _full_bandwidth_mel(stage2) < mel_before


def test_adversarial_training_step_runs_and_logs_its_terms() -> None:
    import lightning as L

    torch.manual_seed(0)
    module = _tiny_module(discriminator=True)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=_loader())
    metrics = trainer.callback_metrics
    assert {"train/adv", "train/feat", "train/disc"} <= set(metrics)
    assert all(math.isfinite(float(metrics[k])) for k in ("train/adv", "train/feat", "train/disc"))


@pytest.mark.parametrize("recipe", ["debug", "demo"])
def test_recipes_instantiate(recipe: str) -> None:
    import lightning as L

    from musigen.training.audio_datamodule import AudioDataModule
    from musigen.training.cli import MusigenCLI
    from musigen.training.codec_module import CodecModule

    path = Path(__file__).resolve().parent.parent / "recipes" / "codec" / f"{recipe}.yaml"
    cli = MusigenCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                     args=["--config", str(path), "--trainer.logger", "false"], run=False)
    assert isinstance(cli.model, CodecModule) and isinstance(cli.datamodule, AudioDataModule)
    assert cli.model.arch.sample_rate == cli.datamodule.sample_rate


def test_base_recipe_is_the_32khz_architecture() -> None:
    import yaml

    from musigen.codec import encodec_config
    from musigen.training.codec_module import CodecArchConfig

    path = Path(__file__).resolve().parent.parent / "recipes" / "codec" / "base.yaml"
    arch = CodecArchConfig(**yaml.safe_load(path.read_text())["model"]["init_args"]["arch"])
    mine = encodec_config(**{k: v for k, v in vars(arch).items() if k != "channels"}, channels=arch.channels)
    ref = preset_config("encodec_32khz")
    for key in ("sampling_rate", "upsampling_ratios", "num_filters", "hidden_size", "codebook_size",
                "num_quantizers", "use_causal_conv", "use_conv_shortcut", "num_lstm_layers", "frame_rate"):
        assert getattr(mine, key) == getattr(ref, key), key


def test_extending_the_code_stack_keeps_the_old_codes_and_adds_detail(tmp_path: Path) -> None:
    """Stage three (frozen_codebooks < num_codebooks): the first codebooks and their codes stay
    bit-identical, so a model trained on them still fits; the new levels start from k-means on
    the residual, learn, and quantise the latents more finely than the old stack alone."""
    import lightning as L

    from musigen.errors import ConfigError
    from musigen.training.codec_module import CodecArchConfig
    from musigen.training.export_codec import export

    torch.manual_seed(0)
    stage1 = _tiny_module()
    fit = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False)
    ckpt = tmp_path / "stage1.ckpt"
    trainer = L.Trainer(max_steps=3, **fit)
    trainer.fit(stage1, train_dataloaders=_loader())
    trainer.save_checkpoint(ckpt)
    with pytest.raises(ConfigError):
        _tiny_module(frozen_codebooks=2)  # needs freeze_encoder
    with pytest.raises(ConfigError):
        _tiny_module(min_codebooks=3)

    arch4 = CodecArchConfig(num_filters=4, hidden_size=16, codebook_size=32, num_codebooks=4, num_lstm_layers=1)
    from musigen.training.codec_module import CodecModule

    stage3 = CodecModule(arch=arch4, loss=stage1.loss_config, quantizer=stage1.quantizer_config,
                         optim=stage1.optim_config, freeze_encoder=True, init_checkpoint=str(ckpt),
                         frozen_codebooks=2, min_codebooks=2)
    assert not bool(stage3.rvq.initialized), "new levels must be initialised from data"
    old_books = [stage1.model.quantizer.layers[i].codebook.embed.clone() for i in range(2)]
    x = _music(16000, 0.25, seed=1)[None]
    stage1.eval()
    with torch.no_grad():
        codes_old = stage1.rvq(stage1.model.encoder(x)).codes
    stage3.train()
    L.Trainer(max_steps=6, **fit).fit(stage3, train_dataloaders=_loader())
    for i in range(2):
        assert torch.equal(old_books[i], stage3.model.quantizer.layers[i].codebook.embed)
    stage3.eval()
    with torch.no_grad():
        z = stage3.model.encoder(x)
        q4 = stage3.rvq(z, 4)
        q2 = stage3.rvq(z, 2)
    assert torch.equal(q4.codes[:, :2], codes_old)
    assert ((z - q4.quantized.detach()) ** 2).mean() < 0.9 * ((z - q2.quantized.detach()) ** 2).mean()

    trainer = L.Trainer(max_steps=1, **fit)
    trainer.fit(stage3, train_dataloaders=_loader())
    trainer.save_checkpoint(tmp_path / "stage3.ckpt")
    codec = Codec.from_pretrained(export(tmp_path / "stage3.ckpt", tmp_path / "exported", dtype="float32"))
    assert codec.num_codebooks == 4
    assert torch.equal(codec.encode(x[0], num_codebooks=2), codes_old)
