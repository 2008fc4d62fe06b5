"""Text encoders: the pretrained MiniLM default understands paraphrases; T5/CLAP load offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from musigen.embedders.text import (
    ClapTextEncoder,
    MiniLMTextEncoder,
    T5TextEncoder,
    TextEncoder,
    load_text_encoder,
    minilm_dir,
)
from musigen.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return load_text_encoder()  # the default backend


def _cos(enc: TextEncoder, a: str, b: str) -> float:
    e = enc.encode([a, b]).pooled
    return float(e[0] @ e[1])


@pytest.mark.parametrize(
    ("anchor", "paraphrase", "other"),
    [
        ("remove the drums", "take out the percussion", "add a violin melody"),
        ("make it sound like jazz", "turn this into a jazz piece", "remove the bass"),
        ("add a piano", "put in some piano", "make the song sadder"),
        (
            "a calm ambient track",
            "a relaxing, peaceful atmospheric piece",
            "an aggressive rock song",
        ),
        (
            "replace the guitar with strings",
            "swap the guitar for a string section",
            "extract the drums",
        ),
    ],
)
def test_minilm_paraphrases_are_near(
    minilm: TextEncoder, anchor: str, paraphrase: str, other: str
) -> None:
    assert _cos(minilm, anchor, paraphrase) > _cos(minilm, anchor, other) + 0.1


def test_minilm_outputs(minilm: TextEncoder) -> None:
    out = minilm.encode(["drums", "a long sentence about a funky bass line and bright brass"])
    assert isinstance(minilm, MiniLMTextEncoder) and minilm.dim == 384
    b, length, d = out.states.shape
    assert (b, d) == (2, 384) and out.mask.shape == (2, length) and out.mask.dtype == torch.bool
    assert out.mask[0].sum() < out.mask[1].sum()  # the short text is padded
    assert torch.allclose(out.pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    # Mean pooling ignores padding: a text encodes the same alone and in a padded batch.
    alone = minilm.encode(["drums"]).pooled[0]
    assert torch.allclose(alone, out.pooled[0], atol=1e-4)


def test_minilm_is_frozen_and_deterministic(minilm: TextEncoder) -> None:
    assert not any(p.requires_grad for p in minilm.parameters())
    minilm.train()
    assert not minilm.training  # dropout stays off inside a training parent
    a = minilm.encode(["a happy pop song"]).pooled
    b = minilm.encode(["a happy pop song"]).pooled
    assert torch.equal(a, b) and not a.requires_grad


def test_minilm_cache_is_reused(tmp_path: Path) -> None:
    first = minilm_dir(tmp_path)
    assert (first / "model.safetensors").is_file() and (first / "tokenizer.json").is_file()
    stamp = (first / "config.json").stat().st_mtime_ns
    assert minilm_dir(tmp_path) == first
    assert (first / "config.json").stat().st_mtime_ns == stamp  # not re-extracted
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".minilm-")]  # no temp leftovers


def test_bad_texts_are_clear_errors(minilm: TextEncoder) -> None:
    with pytest.raises(ConfigError, match="list of strings"):
        minilm.encode("remove the drums")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least one"):
        minilm.encode([])


def test_unknown_backend_and_missing_folder() -> None:
    with pytest.raises(ConfigError, match="unknown text encoder"):
        load_text_encoder("bert-huge")
    with pytest.raises(CheckpointError, match="not found"):
        load_text_encoder("t5", "/nonexistent/t5-folder")


def _tiny_t5(path: Path) -> Path:
    """A random T5 encoder in t5-base's config format, with an offline-built Unigram tokenizer."""
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    words = "remove add the drums bass piano guitar a song jazz rock make it sound like".split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{w}", -float(i + 3)) for i, w in enumerate(words)]
    vocab += [(c, -20.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    config = T5Config(
        vocab_size=len(vocab),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        feed_forward_proj="relu",
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    T5EncoderModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_t5_loads_from_folder_and_masks_padding(tmp_path: Path) -> None:
    enc = load_text_encoder("t5", _tiny_t5(tmp_path / "t5"))
    assert isinstance(enc, T5TextEncoder) and enc.dim == 32
    out = enc.encode(["remove the drums", "add a jazz piano to the song"])
    assert out.states.shape[0] == 2 and out.states.shape[-1] == 32
    assert out.mask[0].sum() < out.mask[1].sum()
    ids = enc.tokenize(["remove the drums"])["input_ids"][0].tolist()
    assert ids[-1] == 1 and 2 not in ids  # ends with </s>, no unknown tokens for known words
    # Padding does not change a text's pooled vector.
    assert torch.allclose(enc.encode(["remove the drums"]).pooled[0], out.pooled[0], atol=1e-5)
    # Round trip through save_pretrained / from_pretrained keeps the encoding.
    again = T5TextEncoder.from_pretrained(enc.save_pretrained(tmp_path / "copy"))
    assert torch.allclose(
        again.encode(["make it sound like rock"]).states,
        enc.encode(["make it sound like rock"]).states,
    )


def test_t5_config_weights_mismatch_is_clear(tmp_path: Path) -> None:
    import json

    folder = _tiny_t5(tmp_path / "t5")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["num_layers"] = 3  # the weights hold 2 layers
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        load_text_encoder("t5", folder)


def test_clap_text_tower_matches_full_model(tmp_path: Path) -> None:
    from tokenizers import pre_tokenizers
    from transformers import ClapModel, RobertaTokenizer

    from musigen.embedders.clap import larger_clap_music_config

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    folder = tmp_path / "clap"
    ClapModel(larger_clap_music_config(tiny=True, vocab_size=len(vocab))).save_pretrained(folder)
    RobertaTokenizer(vocab=vocab, merges=[], model_max_length=128).save_pretrained(folder)
    enc = load_text_encoder("clap", folder)
    assert isinstance(enc, ClapTextEncoder) and enc.pooled_dim == 64 and enc.dim == 32
    full = ClapModel.from_pretrained(folder).eval()
    batch = enc.tokenize(["calm piano", "loud drums and bass"])
    with torch.no_grad():
        ref = full.get_text_features(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
    ref = torch.nn.functional.normalize(ref.pooler_output, dim=-1)
    assert torch.allclose(enc.encode(["calm piano", "loud drums and bass"]).pooled, ref, atol=1e-5)
