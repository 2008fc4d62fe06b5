"""Tiny random MusiCoT and InstructME pipelines saved to folders, for the demo's tests.

The MusiCoT one is `musicot_tiny`'s; the InstructME one mirrors the pipeline test's (a 1-layer
random BERT, the "tiny" random codec, a debug U-Net), with the shipped chord recogniser so that
the chords the page shows are real.  Both build offline in a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from musicot_tiny import save_tiny_pipeline

EDIT_SR = 16000


def tiny_edit_pipeline():  # -> InstructMEPipeline
    from transformers import AutoTokenizer, BertConfig, BertModel

    from musigen.chords import ChordRecognizer, default_checkpoint
    from musigen.embedders.text import MiniLMTextEncoder, minilm_dir
    from musigen.encode.components import random_codec
    from musigen.instructme.latent_stats import LatentStats
    from musigen.instructme.pipeline import InstructMEPipeline
    from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig

    codec = random_codec("tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    torch.manual_seed(1)
    bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32,
                                num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    torch.manual_seed(2)
    unet = InstructMEUNet(InstructMEUNetConfig.preset(
        "debug", latent_channels=codec.latent_dim, text_dim=32, chord_dim=25,
        base_channels=16, chord_channels=8, chunk_size=16))
    d = codec.latent_dim
    stats = LatentStats(torch.linspace(-0.1, 0.1, d), torch.linspace(0.5, 1.5, d))
    # the shipped recogniser (small): the page shows the chords an edit read off its source
    chords = ChordRecognizer.from_pretrained(default_checkpoint())
    pipe = InstructMEPipeline(codec, MiniLMTextEncoder(bert, tokenizer), unet, stats,
                              chord_model=chords)
    # the page's default steps come from here: keep CPU runs short
    pipe.config.params = pipe.config.params.replace(steps=3)
    return pipe


def save_tiny_models(root: Path) -> tuple[Path, Path]:
    """(MusiCoT folder, InstructME folder) under `root`."""
    torch.set_num_threads(1)
    return (save_tiny_pipeline(root / "musicot"),
            tiny_edit_pipeline().save_pretrained(root / "instructme"))


def chord_clip(seconds: float = 2.0, sr: int = EDIT_SR) -> np.ndarray:
    """A C major triad with a little noise: something with a recognisable chord."""
    t = np.arange(int(seconds * sr)) / sr
    tone = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0))
    return (tone + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
