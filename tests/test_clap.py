"""Audio–text embedders: the LAION CLAP format loads and embeds deterministically per window,
and the in-repo musigen_clap learns tags from audio."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from musigen.embedders.clap import (
    HFClapEmbedder,
    larger_clap_music_config,
    load_embedder,
    segment_bounds,
)
from musigen.errors import (
    ChannelCountError,
    CheckpointError,
    ConfigError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
)


def tiny_clap_folder(path: Path) -> Path:
    """A random-init ClapModel in laion/larger_clap_music's config format (shrunk), saved with a
    byte-level RoBERTa tokenizer and the unfused 48 kHz feature extractor, as on the hub."""
    from tokenizers import pre_tokenizers
    from transformers import ClapFeatureExtractor, ClapModel, RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[], model_max_length=128)
    torch.manual_seed(0)
    model = ClapModel(larger_clap_music_config(tiny=True, vocab_size=len(vocab)))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad").save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_clap_folder(tmp_path_factory.mktemp("clap") / "larger_clap_music_tiny")


@pytest.fixture(scope="module")
def clap(clap_dir: Path) -> HFClapEmbedder:
    emb = load_embedder(clap_dir)  # the same call a user makes with the real folder
    assert isinstance(emb, HFClapEmbedder)
    return emb


def _music(seconds: float, sr: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) + 0.05 * rng.standard_normal(t.shape)
    return np.stack([tone * (1 - 0.2 * c) for c in range(channels)]).astype(np.float32)


def test_segment_bounds() -> None:
    sr = 100
    assert len(segment_bounds(180 * sr, sr, 10.0)) == 18  # a 3-minute song gives 18 thoughts
    assert segment_bounds(25 * sr, sr, 10.0) == [(0, 1000), (1000, 2000), (2000, 2500)]
    assert len(segment_bounds(int(20.3 * sr), sr, 10.0)) == 2  # a 0.3 s tail is dropped
    assert segment_bounds(4 * sr, sr, 10.0) == [(0, 400)]  # shorter than a window: one segment
    assert segment_bounds(20 * sr, sr, 10.0, hop_s=5.0) == [(0, 1000), (500, 1500), (1000, 2000)]
    with pytest.raises(ConfigError):
        segment_bounds(1000, sr, 10.0, hop_s=12.0)


def test_hf_clap_matches_transformers_and_is_deterministic(clap: HFClapEmbedder) -> None:
    from transformers import ClapFeatureExtractor

    wav = _music(10.0, 48000)[0]
    emb = clap.embed_audio(wav, 48000)
    assert emb.shape == (1, 64)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(1), atol=1e-5)
    assert torch.equal(emb, clap.embed_audio(wav, 48000))  # no random crop at inference
    # Same as calling transformers directly on one exactly-10 s window.
    feats = ClapFeatureExtractor(truncation="rand_trunc")(
        [wav], sampling_rate=48000, return_tensors="pt"
    )
    with torch.no_grad():
        ref = clap.model.get_audio_features(input_features=feats["input_features"]).pooler_output
    assert torch.allclose(emb, torch.nn.functional.normalize(ref, dim=-1), atol=1e-5)


def test_hf_clap_windows_channels_and_rate(clap: HFClapEmbedder) -> None:
    stereo16k = _music(5.0, 16000, channels=2)
    emb = clap.embed_audio(stereo16k, 16000, window_s=4.0, hop_s=3.0)
    assert emb.shape == (2, 64)  # [0, 4] and [3, 5] (a 1 s tail that no window covered)
    mono = clap.embed_audio(stereo16k.mean(0)[: 4 * 16000], 16000, window_s=4.0)
    assert torch.allclose(
        emb[0], mono[0], atol=1e-3
    )  # channels are mixed down (resampler edge aside)
    same48 = clap.embed_audio(_music(4.0, 48000, channels=2), 48000, window_s=4.0)
    assert float(emb[0] @ same48[0]) > 0.9  # resampling: same content, same embedding
    clip = _music(10.5, 48000)
    long = clap.embed_audio(clip, 48000, window_s=10.5)  # longer than CLAP's 10 s input
    assert long.shape == (1, 64) and torch.equal(long, clap.embed_audio(clip, 48000, window_s=10.5))


def test_hf_clap_text_same_space(clap: HFClapEmbedder) -> None:
    texts = ["calm piano", "loud drums and distorted guitar"]
    emb = clap.embed_text(texts)
    assert emb.shape == (2, 64)
    batch = clap.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = clap.model.get_text_features(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
    assert torch.allclose(emb, torch.nn.functional.normalize(ref.pooler_output, dim=-1), atol=1e-5)


def test_hf_clap_round_trip(clap: HFClapEmbedder, tmp_path: Path) -> None:
    again = HFClapEmbedder.from_pretrained(clap.save_pretrained(tmp_path / "copy"))
    wav = _music(12.0, 32000)
    assert torch.allclose(again.embed_audio(wav, 32000), clap.embed_audio(wav, 32000), atol=1e-6)


@pytest.mark.parametrize(
    ("wav", "sr", "error"),
    [
        (np.zeros(0, np.float32), 16000, EmptyAudioError),
        (np.full(16000, np.nan, np.float32), 16000, NonFiniteAudioError),
        (np.zeros((16000, 2), np.float32), 16000, ChannelCountError),
        (np.zeros((2, 2, 100), np.float32), 16000, ChannelCountError),
        (np.zeros(16000, np.float32), 0, SampleRateError),
    ],
)
def test_bad_audio_is_a_clear_error(
    clap: HFClapEmbedder, wav: np.ndarray, sr: int, error: type
) -> None:
    with pytest.raises(error):
        clap.embed_audio(wav, sr)


def test_bad_checkpoints_are_clear_errors(clap_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_embedder(tmp_path / "missing")
    with pytest.raises(CheckpointError):
        load_embedder("laion/larger_clap_music-not-cached")  # offline hub id
    bad = tmp_path / "bad"
    shutil.copytree(clap_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["text_config"]["num_hidden_layers"] = 3  # weights hold 2
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        load_embedder(bad)
    cfg["text_config"]["num_hidden_layers"] = 2
    cfg["projection_dim"] = 32  # shapes differ
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        load_embedder(bad)
    (bad / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="neither"):
        load_embedder(bad)


# ----------------------------------------------------------------------------- musigen_clap


TINY_ARCH = {
    "channels": [8, 16, 32],
    "n_mels": 32,
    "embed_dim": 32,
    "text_hidden": 64,
    "window_s": 1.0,
}


def _toy_corpus(root: Path, n: int, seed: int) -> Path:
    """Pieces mixing noise-burst 'drums', a low sine 'bass' and a bright square 'lead'.

    The genre follows the content (drums -> rock, else ambient), so both instrument tags
    and genre are learnable from audio; 'lead' only plays in the second half.
    """
    from musigen.audio import save_audio
    from musigen.data.manifest import write_manifest

    rng = np.random.default_rng(seed)
    sr, dur = 16000, 2.0
    t = np.arange(int(sr * dur)) / sr
    records = []
    for i in range(n):
        present = [name for name in ("drums", "bass", "lead") if rng.random() < 0.5] or ["bass"]
        mix = np.zeros_like(t)
        activity: dict[str, list[list[float]]] = {}
        if "drums" in present:
            env = np.exp(-((t * 4) % 1.0) * 30)
            mix += 0.5 * env * rng.standard_normal(t.shape)
            activity["drums"] = [[0.0, dur]]
        if "bass" in present:
            mix += 0.4 * np.sin(2 * np.pi * rng.uniform(50, 110) * t)
            activity["bass"] = [[0.0, dur]]
        if "lead" in present:
            half = t >= dur / 2
            mix += 0.2 * half * np.sign(np.sin(2 * np.pi * rng.uniform(700, 1400) * t))
            activity["lead"] = [[dur / 2, dur]]
        genre = "rock" if "drums" in present else "ambient"
        path = f"{i:03d}.wav"
        save_audio(root / path, mix[None].astype(np.float32), sr)
        records.append(
            {
                "path": path,
                "duration": dur,
                "sample_rate": sr,
                "genre": genre,
                "caption": f"{genre} with {' and '.join(present)}",
                "instruments": present,
                "stem_activity": activity,
            }
        )
    return write_manifest(root / "manifest.jsonl", records)


def test_musigen_clap_learns_zero_shot_tags(tmp_path: Path) -> None:
    import lightning as L

    from musigen.embedders.musigen_clap import MusigenClap, MusigenClapConfig
    from musigen.eval.studies.clap_eval import evaluate_clap
    from musigen.training.clap_datamodule import ClapDataModule
    from musigen.training.clap_module import ClapModule, export

    train = _toy_corpus(tmp_path / "train", 48, seed=1)
    held = _toy_corpus(tmp_path / "held", 16, seed=2)
    module = ClapModule(
        arch=MusigenClapConfig(**TINY_ARCH),
        optim={"lr": 3e-3, "warmup_steps": 5, "total_steps": 80, "gain_db": 3.0},
    )
    untrained = evaluate_clap(
        MusigenClap(module.arch).eval(), held, window_s=1.0, hop_s=1.0, n_candidates=10
    )

    data = ClapDataModule(
        str(train), str(held), window_s=1.0, batch_size=16, val_hop_s=1.0, min_active_s=0.5
    )
    trainer = L.Trainer(
        max_steps=80,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=100,
        reload_dataloaders_every_n_epochs=1,
    )
    trainer.fit(module, data)
    ckpt = tmp_path / "run" / "last.ckpt"
    trainer.save_checkpoint(ckpt)

    out = export(ckpt, tmp_path / "clap_toy")  # the shipped format: fp16 safetensors + config
    model = load_embedder(out)
    assert isinstance(model, MusigenClap)
    trained = evaluate_clap(model, held, window_s=1.0, hop_s=1.0, n_candidates=10)
    assert (
        trained.instrument_map > 0.95 and trained.instrument_map > untrained.instrument_map + 0.05
    )
    assert trained.genre_accuracy > 0.9
    assert trained.r_at_5 > untrained.r_at_5
    # The exported fp16 model embeds like the float32 training weights.
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    ref = module.model.eval().embed_audio(wav, 16000, window_s=1.0)
    assert float((model.embed_audio(wav, 16000, window_s=1.0) * ref).sum()) > 0.999


def test_missing_demo_preset_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import musigen.checkpoints

    monkeypatch.setenv("MUSIGEN_CHECKPOINTS", str(tmp_path))
    monkeypatch.setattr(musigen.checkpoints, "PACKAGE_PARENT", tmp_path)  # as if installed
    with pytest.raises(CheckpointError,
                       match="preset 'demo' is not installed.*MUSIGEN_CHECKPOINTS"):
        load_embedder("demo")


def test_musigen_clap_windows_and_bad_checkpoints(tmp_path: Path) -> None:
    from musigen.embedders.musigen_clap import MusigenClap, MusigenClapConfig

    model = MusigenClap(MusigenClapConfig(**TINY_ARCH)).eval()
    wav = _music(2.5, 44100, channels=2)
    emb = model.embed_audio(wav, 44100, window_s=1.0)
    assert emb.shape == (3, 32) and torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.equal(emb, model.embed_audio(wav, 44100, window_s=1.0))
    folder = model.save_pretrained(tmp_path / "m")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors"}
    cfg = json.loads((folder / "config.json").read_text())
    cfg["channels"] = [8, 16, 64]  # the weights say 32
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        load_embedder(folder)
    cfg["channels"], cfg["bogus"] = [8, 16, 32], 1
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="bogus"):
        load_embedder(folder)
    with pytest.raises(CheckpointError, match="not found"):
        load_embedder(tmp_path / "nope")


def test_embed_cli_prints_tags_per_segment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.audio import save_audio
    from musigen.cli import main
    from musigen.embedders.musigen_clap import MusigenClap, MusigenClapConfig

    folder = MusigenClap(MusigenClapConfig(**TINY_ARCH)).save_pretrained(tmp_path / "m")
    wav = save_audio(tmp_path / "in.wav", _music(3.5, 22050, channels=2), 22050)
    out = tmp_path / "emb.safetensors"
    args = ["embed", str(wav), "--window", "1", "--model", str(folder), "--out", str(out)]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    segs = [line for line in lines if "instrument:" in line]
    assert len(segs) == 4  # 1 + 1 + 1 + a 0.5 s tail
    assert all("genre:" in s and "mood:" in s and "section:" in s for s in segs)
    assert segs[0].count(",") >= 2  # top-3 instruments
    from safetensors.torch import load_file

    assert load_file(str(out))["embeddings"].shape == (4, 32)
    assert main(["embed", str(tmp_path / "missing.wav"), "--model", str(folder)]) == 2
    assert main(["embed", str(wav), "--model", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
