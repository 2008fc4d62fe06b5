"""MusicGen -> plan-free MusiCoT pipeline: exact logits and greedy codes against transformers.

A random MusicGen in the musicgen-small layout (T5 text encoder, EnCodec audio encoder,
4 codebooks with the delay pattern, sinusoidal positions, projection from T5 width) with tiny
dimensions is saved with `save_pretrained`, converted with `musigen convert musicgen`, and
compared with `MusicgenForConditionalGeneration` on the same text and codes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from musigen.cli import main
from musigen.musicot.long_form import generate_long
from musigen.musicot.pipeline import MusiCoTPipeline
from musigen.musicot.sampling import SamplingParams, generate

PROMPTS = ["calm jazz with piano and bass", "loud rock drums"]
FRAME_RATE = 50  # 8 kHz / hop 160
WINDOW_S, CONTEXT_S = 2.0, 0.5


def _tokenizer() -> Any:
    from transformers import T5Tokenizer

    words = "calm jazz with piano and bass rock drums a loud song".split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{w}", -float(i + 3)) for i, w in enumerate(words)]
    vocab += [(c, -20.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_musicgen(path: Path, *, small: bool = False, seed: int = 0) -> Path:
    """A random MusicGen saved as `save_pretrained` writes it; `small=True`: the real
    musicgen-small dimensions (t5-base, 1024 x 24 layers, EnCodec-32k)."""
    from transformers import (
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    from musigen.codec import encodec_config, fill_codebooks, preset_config

    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    if small:
        t5 = T5Config(vocab_size=len(tokenizer), d_model=768, d_kv=64, d_ff=3072, num_layers=12,
                      num_heads=12, feed_forward_proj="relu", decoder_start_token_id=0,
                      pad_token_id=0, eos_token_id=1)
        audio = preset_config("encodec_32khz")
        decoder = MusicgenDecoderConfig(vocab_size=2048, max_position_embeddings=2048,
                                        num_hidden_layers=24, ffn_dim=4096,
                                        num_attention_heads=16, hidden_size=1024,
                                        num_codebooks=4, pad_token_id=2048, bos_token_id=2048,
                                        dropout=0.0)
    else:
        t5 = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2,
                      num_heads=4, feed_forward_proj="relu", decoder_start_token_id=0,
                      pad_token_id=0, eos_token_id=1)
        audio = encodec_config(sample_rate=8000, upsampling_ratios=[8, 5, 4], num_filters=4,
                               hidden_size=16, codebook_size=32, num_codebooks=4,
                               num_lstm_layers=1)
        decoder = MusicgenDecoderConfig(vocab_size=32, max_position_embeddings=256,
                                        num_hidden_layers=2, ffn_dim=256, num_attention_heads=4,
                                        hidden_size=64, num_codebooks=4, pad_token_id=32,
                                        bos_token_id=32, dropout=0.0)
    config = MusicgenConfig(text_encoder=t5, audio_encoder=audio, decoder=decoder)
    model = MusicgenForConditionalGeneration(config).eval()
    fill_codebooks(model.audio_encoder, generator=torch.Generator().manual_seed(seed))
    model.generation_config.decoder_start_token_id = decoder.vocab_size
    model.generation_config.pad_token_id = decoder.vocab_size
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(MusicGen folder, converted pipeline folder), converted through the CLI."""
    root = tmp_path_factory.mktemp("musicgen")
    src = build_musicgen(root / "musicgen")
    out = root / "converted"
    code = main(["convert", "musicgen", str(src), str(out), "--window", str(WINDOW_S),
                 "--context", str(CONTEXT_S)])
    assert code == 0
    return src, out


@pytest.fixture(scope="module")
def hf_model(folders: tuple[Path, Path]) -> Any:
    from transformers import MusicgenForConditionalGeneration

    return MusicgenForConditionalGeneration.from_pretrained(folders[0], use_safetensors=True).eval()


@pytest.fixture(scope="module")
def pipe(folders: tuple[Path, Path]) -> MusiCoTPipeline:
    return MusiCoTPipeline.from_pretrained(folders[1])


def _hf_greedy(hf_model: Any, pipe: MusiCoTPipeline, prompts: list[str], frames: int,
               guidance: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' greedy CFG generation: (codes [B, K, frames], audio [B, C, N])."""
    batch = pipe.text_encoder.tokenize(prompts)
    seen: list[torch.Tensor] = []
    decode = hf_model.audio_encoder.decode

    def spy(codes: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.append(codes)
        return decode(codes, *args, **kwargs)

    hf_model.audio_encoder.decode = spy
    try:
        k = hf_model.decoder.config.num_codebooks
        audio = hf_model.generate(input_ids=batch["input_ids"],
                                  attention_mask=batch["attention_mask"], do_sample=False,
                                  guidance_scale=guidance, max_new_tokens=frames + k - 1)
    finally:
        hf_model.audio_encoder.decode = decode
    return seen[0][0], audio


def test_converted_folder_is_plan_free(folders: tuple[Path, Path], pipe: MusiCoTPipeline) -> None:
    out = folders[1]
    config = json.loads((out / "pipeline.json").read_text())
    assert config["use_thoughts"] is False and config["embedder"] is None
    assert config["thoughts"] is None and config["text_encoder_kind"] == "t5"
    assert (out / "lm" / "model.safetensors").is_file()
    assert (out / "codec" / "model.safetensors").is_file()
    assert (out / "text_encoder" / "model.safetensors").is_file()
    assert (out / "text_encoder" / "tokenizer.json").is_file()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))
    assert pipe.tokenizer is None and pipe.embedder is None and pipe.lm.config.plan_free
    assert pipe.frame_rate == FRAME_RATE


def test_logits_match_transformers(hf_model: Any, pipe: MusiCoTPipeline) -> None:
    """Teacher-forced on the same text and codes, delay pattern applied the same way."""
    torch.manual_seed(1)
    k, card, frames = 4, 32, 40
    codes = torch.randint(0, card, (len(PROMPTS), k, frames))
    steps = pipe.lm.pattern.interleave(codes)  # [B, K, S], pad = card
    batch = pipe.text_encoder.tokenize(PROMPTS)
    assert not bool(batch["attention_mask"].all())  # the prompts pad: the mask is exercised
    start = torch.full((len(PROMPTS), k, 1), card)  # MusicGen's decoder start: all pad
    hf_in = torch.cat([start, steps[:, :, :-1]], -1).reshape(len(PROMPTS) * k, -1)
    with torch.no_grad():
        theirs = hf_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          decoder_input_ids=hf_in).logits  # [B * K, S, card]
        enc = pipe.text_encoder.encode(PROMPTS)
        ours = pipe.lm(codes, enc.states, enc.mask).audio_logits  # [B, S, K, card]
    theirs = theirs.reshape(len(PROMPTS), k, -1, card).transpose(1, 2)
    diff = (ours - theirs).abs().max().item()
    print(f"max |logit difference| = {diff:.3g}")
    assert diff < 1e-4


def test_unconditional_logits_match(hf_model: Any, pipe: MusiCoTPipeline) -> None:
    """MusicGen's CFG null row (zeroed text) is the LM's null condition."""
    codes = torch.randint(0, 32, (1, 4, 12))
    steps = pipe.lm.pattern.interleave(codes)
    batch = pipe.text_encoder.tokenize(PROMPTS[:1])
    hf_in = torch.cat([torch.full((1, 4, 1), 32), steps[:, :, :-1]], -1).reshape(4, -1)
    with torch.no_grad():
        theirs = hf_model.decoder(input_ids=hf_in,
                                  encoder_hidden_states=torch.zeros(1, batch["input_ids"].shape[1],
                                                                    64),
                                  encoder_attention_mask=torch.zeros_like(batch["attention_mask"])
                                  ).logits
        ours = pipe.lm(codes, None).audio_logits
    assert (ours - theirs.reshape(1, 4, -1, 32).transpose(1, 2)).abs().max().item() < 1e-4


def test_greedy_cfg_codes_match_transformers(hf_model: Any, pipe: MusiCoTPipeline) -> None:
    frames = 30
    hf_codes, hf_audio = _hf_greedy(hf_model, pipe, PROMPTS, frames)
    enc = pipe.text_encoder.encode(PROMPTS)
    ours = generate(pipe.lm, num_frames=frames, text_states=enc.states, text_mask=enc.mask,
                    params=SamplingParams(audio_temperature=0.0, audio_cfg=3.0), seed=0).codes
    assert ours.shape == hf_codes.shape == (2, 4, frames)
    assert torch.equal(ours, hf_codes)
    top1 = generate(pipe.lm, num_frames=frames, text_states=enc.states, text_mask=enc.mask,
                    params=SamplingParams(top_k=1, audio_cfg=3.0), seed=5).codes
    assert torch.equal(top1, hf_codes)  # top-k 1 is greedy
    wav = pipe.codec.decode(ours)
    assert torch.allclose(wav, hf_audio, atol=1e-5)


def test_cli_greedy_audio_matches_transformers(folders: tuple[Path, Path], hf_model: Any,
                                               pipe: MusiCoTPipeline, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    duration = 0.6  # 30 frames at 50 Hz: max_new_tokens 30 + 3
    hf_codes, hf_audio = _hf_greedy(hf_model, pipe, PROMPTS[:1], round(duration * FRAME_RATE))
    wav_path = tmp_path / "greedy.wav"
    code = main(["generate", "--model", str(folders[1]), "--prompt", PROMPTS[0], "--top-k", "1",
                 "--cfg-audio", "3", "--duration", str(duration), "--out", str(wav_path)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "no plan" in printed
    wav, sr = sf.read(wav_path, dtype="float32")
    assert sr == 8000 and wav.shape == (hf_audio.shape[-1],)
    assert np.abs(wav - hf_audio[0, 0].numpy()).max() < 1e-4
    sidecar = json.loads(wav_path.with_suffix(".json").read_text())["provenance"]
    assert sidecar["plan"] == [] and "no plan" in sidecar["plan_note"]
    assert "MusicGen" in sidecar["plan_note"]


def test_long_form_continues_the_first_window(pipe: MusiCoTPipeline) -> None:
    """Past one window (2 s), generation continues window by window; greedy, the first
    window is the single-window result."""
    enc = pipe.text_encoder.encode(PROMPTS[:1])
    greedy = SamplingParams(audio_temperature=0.0, audio_cfg=3.0)
    window, context = round(WINDOW_S * FRAME_RATE), round(CONTEXT_S * FRAME_RATE)
    long = generate_long(pipe.lm, num_frames=260, window_frames=window, context_frames=context,
                         text_states=enc.states, text_mask=enc.mask, params=greedy, seed=0).codes
    one = generate(pipe.lm, num_frames=window, text_states=enc.states, text_mask=enc.mask,
                   params=greedy, seed=0).codes
    assert long.shape == (1, 4, 260) and torch.equal(long[..., :window], one)
    result = pipe(PROMPTS[0], duration=5.2, seed=3, progress=False)
    assert result.audio.shape == (1, round(5.2 * 8000)) and np.isfinite(result.audio).all()
    assert result.thoughts == [[]] and result.analysis == [[]]


def test_cli_prompts_batch_and_seeds(folders: tuple[Path, Path], tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"prompt": PROMPTS[0], "seed": 1, "out": str(tmp_path / "a.wav")},
             {"prompt": PROMPTS[0], "seed": 1, "out": str(tmp_path / "b.wav")},
             {"prompt": PROMPTS[0], "seed": 2, "out": str(tmp_path / "c.wav")},
             {"prompt": PROMPTS[1], "seed": 1, "out": str(tmp_path / "d.wav"), "duration": 2.5}]
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["generate", "--model", str(folders[1]), "--prompts", str(jobs),
                 "--duration", "0.5"]) == 0
    a, b, c, d = (sf.read(tmp_path / f"{n}.wav", dtype="float32")[0] for n in "abcd")
    assert np.array_equal(a, b)  # same seed, same audio
    assert a.shape == c.shape and not np.array_equal(a, c)  # another seed, other audio
    assert d.shape == (round(2.5 * 8000),)  # longer than a window
    side = json.loads((tmp_path / "d.json").read_text())["provenance"]
    assert side["seed"] == 1 and side["parameters"]["use_thoughts"] is False


def test_plan_free_refuses_a_reference_and_analyze_says_why(
        folders: tuple[Path, Path], pipe: MusiCoTPipeline, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.errors import ConfigError

    with pytest.raises(ConfigError, match="no plan"):
        pipe(PROMPTS[0], ref=np.zeros(8000, np.float32), ref_sample_rate=8000, duration=0.2)
    wav = tmp_path / "tone.wav"
    sf.write(wav, 0.1 * np.sin(np.arange(16000) / 8000 * 2 * np.pi * 220), 8000)
    assert main(["analyze", str(wav), "--model", str(folders[1])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no plan" in err[0]


def _bad_folders(src: Path, root: Path) -> dict[str, Path]:
    def copy(name: str) -> Path:
        return Path(shutil.copytree(src, root / name))

    cases = {}
    cases["not_musicgen"] = copy("not_musicgen")
    config = json.loads((src / "config.json").read_text())
    json.dump(config["audio_encoder"], (cases["not_musicgen"] / "config.json").open("w"))
    cases["no_tokenizer"] = copy("no_tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json", "spiece.model"):
        (cases["no_tokenizer"] / name).unlink(missing_ok=True)
    cases["pickle_only"] = copy("pickle_only")
    (cases["pickle_only"] / "model.safetensors").rename(cases["pickle_only"] / "pytorch_model.bin")
    cases["melody"] = copy("melody")
    json.dump(config | {"model_type": "musicgen_melody"},
              (cases["melody"] / "config.json").open("w"))
    cases["stereo"] = copy("stereo")
    stereo = config | {"decoder": config["decoder"] | {"audio_channels": 2, "num_codebooks": 8}}
    json.dump(stereo, (cases["stereo"] / "config.json").open("w"))
    cases["corrupt"] = copy("corrupt")
    weights = cases["corrupt"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    cases["missing"] = root / "does_not_exist"
    return cases


@pytest.mark.parametrize("case", ["not_musicgen", "no_tokenizer", "pickle_only", "melody",
                                  "stereo", "corrupt", "missing"])
def test_bad_sources_fail_in_one_line(folders: tuple[Path, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str], case: str) -> None:
    src = _bad_folders(folders[0], tmp_path)[case]
    out = tmp_path / "out"
    assert main(["convert", "musicgen", str(src), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("musigen: error:"), err
    words = {"not_musicgen": "not a MusicGen", "no_tokenizer": "no tokenizer",
             "pickle_only": "only pickle", "melody": "Melody", "stereo": "stereo",
             "corrupt": "corrupt", "missing": "not found"}
    assert words[case] in err[0]
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_existing_output_needs_overwrite(folders: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["convert", "musicgen", str(folders[0]), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "keep.txt").is_file()


@pytest.mark.slow
def test_musicgen_small_dimensions_match(tmp_path: Path) -> None:
    """The real musicgen-small sizes (random weights): logits and greedy codes."""
    from transformers import MusicgenForConditionalGeneration

    from musigen.convert.musicgen import convert_musicgen

    src = build_musicgen(tmp_path / "small", small=True)
    pipe = MusiCoTPipeline.from_pretrained(convert_musicgen(src, tmp_path / "out"))
    hf = MusicgenForConditionalGeneration.from_pretrained(src, use_safetensors=True).eval()
    assert pipe.lm.config.dim == 1024 and pipe.lm.config.num_layers == 24
    codes = torch.randint(0, 2048, (2, 4, 20))
    steps = pipe.lm.pattern.interleave(codes)
    batch = pipe.text_encoder.tokenize(PROMPTS)
    hf_in = torch.cat([torch.full((2, 4, 1), 2048), steps[:, :, :-1]], -1).reshape(8, -1)
    with torch.no_grad():
        theirs = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    decoder_input_ids=hf_in).logits.reshape(2, 4, -1, 2048).transpose(1, 2)
        enc = pipe.text_encoder.encode(PROMPTS)
        ours = pipe.lm(codes, enc.states, enc.mask).audio_logits
    diff = (ours - theirs).abs().max().item()
    print(f"musicgen-small dims: max |logit difference| = {diff:.3g}")
    assert diff < 1e-4
    hf_codes, _ = _hf_greedy(hf, pipe, PROMPTS[:1], 10)
    enc = pipe.text_encoder.encode(PROMPTS[:1])
    ours = generate(pipe.lm, num_frames=10, text_states=enc.states, text_mask=enc.mask,
                    params=SamplingParams(audio_temperature=0.0, audio_cfg=3.0)).codes
    assert torch.equal(ours, hf_codes)
