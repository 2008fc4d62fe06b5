"""Tiny random MusiCoT components shared by the pipeline and training tests (offline, fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from musigen.codec import Codec, encodec_config, fill_codebooks
from musigen.embedders.musigen_clap import MusigenClap, MusigenClapConfig
from musigen.embedders.text import MiniLMTextEncoder, minilm_dir
from musigen.musicot.lm import LMConfig, MusiCoTLM
from musigen.musicot.pipeline import MusiCoTPipeline, MusiCoTPipelineConfig
from musigen.musicot.sampling import SamplingParams
from musigen.musicot.thoughts import ThoughtConfig, ThoughtTokenizer

SR = 8000
TEXT_DIM = 32
EMBED_DIM = 16


def tiny_codec() -> Codec:
    torch.manual_seed(0)
    codec = Codec.from_config(encodec_config(
        sample_rate=SR, upsampling_ratios=[8, 5, 4], num_filters=4, hidden_size=16,
        codebook_size=32, num_codebooks=2, num_lstm_layers=1))
    fill_codebooks(codec.model, generator=torch.Generator().manual_seed(0))
    return codec


def tiny_text_encoder() -> MiniLMTextEncoder:
    """A 1-layer random BERT with the packaged MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=TEXT_DIM,
                                 num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=64))
    return MiniLMTextEncoder(model, tokenizer, max_length=32)


def tiny_embedder(text: MiniLMTextEncoder) -> MusigenClap:
    torch.manual_seed(0)
    cfg = MusigenClapConfig(sample_rate=SR, n_fft=256, hop_length=128, n_mels=16, f_max=4000.0,
                            channels=[4, 8], embed_dim=EMBED_DIM, text_dim=TEXT_DIM,
                            text_hidden=32, window_s=1.0)
    return MusigenClap(cfg, text_encoder=text).eval()


def tone(seconds: float, freq: float = 220.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def tiny_tokenizer(embedder: MusigenClap) -> ThoughtTokenizer:
    clips = [tone(1.0, f, seed=i) for i, f in enumerate(np.linspace(110, 880, 24))]
    vecs = torch.cat([embedder.embed_audio(c, SR, window_s=1.0) for c in clips])
    cfg = ThoughtConfig(embed_dim=EMBED_DIM, levels=2, codebook_size=4, window_s=1.0, hop_s=1.0,
                        min_last_s=0.25, kmeans_iters=5, refine_passes=2)
    return ThoughtTokenizer.fit(vecs, cfg)


def tiny_lm_config(**overrides: object) -> LMConfig:
    kwargs: dict[str, object] = dict(num_codebooks=2, codebook_size=32, thought_levels=2,
                                     thought_codebook_size=4, text_dim=TEXT_DIM, max_seq_len=256)
    return LMConfig.preset("debug", **(kwargs | overrides))


def tiny_pipeline(use_thoughts: bool = True) -> MusiCoTPipeline:
    text = tiny_text_encoder()
    embedder = tiny_embedder(text)
    torch.manual_seed(0)
    lm = MusiCoTLM(tiny_lm_config())
    config = MusiCoTPipelineConfig(window_s=1.0, context_s=0.25, use_thoughts=use_thoughts,
                                   sampling=SamplingParams(top_k=8, thought_cfg=2.0, audio_cfg=2.0))
    return MusiCoTPipeline(tiny_codec(), text, embedder, tiny_tokenizer(embedder), lm, config)


def save_tiny_pipeline(directory: Path) -> Path:
    return tiny_pipeline().save_pretrained(directory)


def preencoded_corpus(root: Path, n: int, out: str = "train") -> Path:
    """`n` synthetic 8 s pieces pre-encoded with a random 2 x 32-code codec and thought RVQ 2 x 8."""
    from musigen.data.synth.corpus import build_corpus
    from musigen.encode.musicot_shards import PreencodeConfig, preencode

    build_corpus(root / "corpus", n=n, duration=8.0, seed=0, progress=False)
    cfg = PreencodeConfig(manifest=str(root / "corpus" / "manifest.jsonl"), out=str(root / out),
                          codec="random:tiny", embedder="random:tiny", levels=2, codebook_size=8,
                          window_s=2.5, shard_size=4)
    return preencode(cfg, progress=False)
