"""Pre-encode edit triplets into shards: codec latents, chord matrices, cached text states.

Training then never runs the codec, the chord recogniser or the text encoder.  See
:mod:`musigen.encode.edit_shards` for the folder layout.

**Chords at training time come from the recogniser on the source audio** (the default,
``chord_source="recognizer"``), the very function the pipeline runs at inference.  The
corpus knows its chords exactly, but a model trained on perfect chords learns to trust
them, and at inference it only ever sees the recogniser's, mistakes included; trained on
the recogniser's output it learns how far to trust that condition against the source
latent.  Real stem datasets have no chord labels anyway.  ``"exact"`` (corpus labels where
known) is kept as an option for the ablation.

    musigen encode instructme --out data/instructme/train --n 2000 \
        --duration 8 --seed 0 --codec checkpoints/codec_demo
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musigen.atomic import atomic_path, write_json
from musigen.data.triplets import Triplet, TripletConfig
from musigen.encode.components import load_latent_codec
from musigen.encode.edit_shards import FORMAT, TEXTS_NAME
from musigen.encode.index import INDEX_NAME
from musigen.errors import ConfigError, DataError
from musigen.instructme.chord_vocabs import CHORD_SOURCES, chord_vocab
from musigen.instructme.latent_stats import STATS_NAME, LatentStats

@dataclass
class ShardBuildConfig:
    """Everything that defines a pre-encoded edit set; `build_shards` turns it into a folder."""

    n: int = 64  # corpus sequences (each round of a sequence is one item)
    seed: int = 0
    triplets: TripletConfig = field(default_factory=TripletConfig)
    stems_manifest: str | None = None  # also add/remove/extract crops of a stems manifest
    n_stems: int = 0
    codec: str = "demo"  # `random:<name>`, a preset or a folder
    text_encoder: str = "minilm"
    text_encoder_path: str | None = None  # None = the backend's default weights
    chord_source: str = "recognizer"
    chord_vocab: str = "majmin"
    shard_size: int = 256

    def __post_init__(self) -> None:
        if isinstance(self.triplets, dict):
            self.triplets = TripletConfig(**self.triplets)
        if self.n < 0 or self.n_stems < 0 or self.n + self.n_stems == 0:
            raise ConfigError("need n >= 0 and n_stems >= 0, at least one item in total")
        if self.n_stems and not self.stems_manifest:
            raise ConfigError("n_stems > 0 needs stems_manifest")
        if self.chord_source not in CHORD_SOURCES:
            raise ConfigError(f"chord_source must be one of {', '.join(CHORD_SOURCES)}")
        chord_vocab(self.chord_vocab)
        if self.shard_size < 1:
            raise ConfigError("shard_size must be at least 1")


class ShardWriter:
    """Writes items into shards as they come; texts, statistics and the index at `close`."""

    def __init__(self, out_dir: Path, latent_dim: int, shard_size: int) -> None:
        self.out_dir = out_dir
        self.latent_dim, self.shard_size = latent_dim, shard_size
        self.pending: list[tuple[torch.Tensor, torch.Tensor, np.ndarray, int]] = []
        self.shards: list[dict[str, Any]] = []
        self.texts: dict[str, int] = {}
        self.items: list[dict[str, Any]] = []

    def add(self, source: torch.Tensor, target: torch.Tensor, chords: np.ndarray,
            instruction: str, meta: dict[str, Any]) -> None:
        tid = self.texts.setdefault(instruction, len(self.texts))
        self.pending.append((source, target, chords, tid))
        self.items.append({"instruction": instruction, "frames": int(source.shape[-1]), **meta})
        if len(self.pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        from safetensors.torch import save_file

        if not self.pending:
            return
        lengths = [s.shape[-1] for s, _, _, _ in self.pending]
        offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64)
        tensors = {
            "source": torch.cat([s for s, _, _, _ in self.pending], -1).half().contiguous(),
            "target": torch.cat([t for _, t, _, _ in self.pending], -1).half().contiguous(),
            "chords": torch.from_numpy(np.concatenate([c for _, _, c, _ in self.pending]))
            .to(torch.int16),
            "offsets": offsets,
            "text_ids": torch.tensor([i for _, _, _, i in self.pending], dtype=torch.int64),
        }
        name = f"shard-{len(self.shards):05d}.safetensors"
        with atomic_path(self.out_dir / name) as tmp:
            save_file(tensors, str(tmp))
        self.shards.append({"file": name, "count": len(self.pending)})
        self.pending = []

    def close(self, text_encoder: Any, info: dict[str, Any]) -> Path:
        """Encode the distinct instructions, compute statistics, write the index (last)."""
        from safetensors.torch import load_file, save_file

        from musigen.codec import latent_channel_stats

        self.flush()
        if not self.items:
            raise DataError("no triplets were pre-encoded")
        texts = list(self.texts)
        states, masks = [], []
        with torch.no_grad():
            for i in range(0, len(texts), 64):
                enc = text_encoder.encode(texts[i : i + 64])
                states += list(enc.states.float().cpu())
                masks += list(enc.mask.cpu())
        width = max(s.shape[0] for s in states)
        st = torch.zeros(len(states), width, states[0].shape[-1], dtype=torch.float16)
        mk = torch.zeros(len(states), width, dtype=torch.bool)
        for i, (s, m) in enumerate(zip(states, masks)):
            st[i, : s.shape[0]], mk[i, : m.shape[0]] = s.half(), m
        with atomic_path(self.out_dir / TEXTS_NAME) as tmp:
            save_file({"states": st, "mask": mk}, str(tmp))

        def latents() -> Iterable[torch.Tensor]:
            for entry in self.shards:
                data = load_file(str(self.out_dir / entry["file"]))
                yield torch.cat([data["source"], data["target"]], -1).float()[None]

        mean, std = latent_channel_stats(latents())
        LatentStats(mean, std).save(self.out_dir / STATS_NAME)
        index = {"format": FORMAT, "count": len(self.items), "latent_dim": self.latent_dim,
                 "text_dim": int(st.shape[-1]), "shards": self.shards, "texts": TEXTS_NAME,
                 "stats": STATS_NAME, **info, "items": self.items}
        return write_json(self.out_dir / INDEX_NAME, index)


def preencode(
    triplets: Iterable[Triplet], out_dir: str | os.PathLike[str], codec: Any, text_encoder: Any,
    info: dict[str, Any], chord_source: str = "recognizer", vocab: str = "majmin",
    shard_size: int = 256, progress: bool = False,
) -> Path:
    """Encode `triplets` into a shard folder; returns the index path.

    `info` (codec and text encoder references, settings) is stored in the index so that a
    model trained on the folder can be exported with the very same components.
    """
    from tqdm import tqdm

    from musigen.chords.matrix import chord_matrix
    from musigen.chords.recognize import recognize_chords

    if chord_source not in CHORD_SOURCES:
        raise ConfigError(f"chord_source must be one of {', '.join(CHORD_SOURCES)}")
    labels = chord_vocab(vocab)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX_NAME).unlink(missing_ok=True)  # the folder is incomplete until close()
    writer = ShardWriter(out, codec.latent_dim, shard_size)
    for t in tqdm(triplets, desc="pre-encode", unit="item", disable=not progress):
        z = codec.encode_latents(np.stack([t.source, t.target])[:, None], t.sample_rate)
        chords = t.chords if chord_source == "exact" and t.chords is not None else None
        if chords is None:
            chords = recognize_chords(t.source, t.sample_rate)
        frames = z.shape[-1]
        cm = chord_matrix(chords, codec.frame_rate, frames, labels).argmax(1).astype(np.int16)
        writer.add(z[0].cpu(), z[1].cpu(), cm, t.instruction,
                   {"task": t.op.task, "op": t.op.canonical_text(), "origin": t.origin})
    return writer.close(text_encoder, {
        "frame_rate": float(codec.frame_rate), "sample_rate": int(codec.sample_rate),
        "chord_vocab_name": vocab, "chord_vocab": list(labels), "chord_source": chord_source,
        **info,
    })


def build_shards(config: ShardBuildConfig, out_dir: str | os.PathLike[str],
                 progress: bool = False) -> Path:
    """Draw the triplets `config` describes and pre-encode them into `out_dir`.

    A random codec is saved into ``out_dir/codec`` so that the data can always be decoded
    and a model trained on it exported with it; other codecs are referenced by path.
    """
    from itertools import chain

    from musigen.data.stem_triplets import StemTripletConfig, StemTriplets
    from musigen.data.triplets import CorpusTriplets
    from musigen.embedders.text import load_text_encoder

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    codec = load_latent_codec(config.codec)
    if config.codec.startswith("random:"):
        codec_dir = out / "codec"
        shutil.rmtree(codec_dir, ignore_errors=True)
        codec.save_pretrained(codec_dir)
        codec_ref = str(codec_dir.resolve())
    else:
        path = Path(config.codec)
        codec_ref = str(path.resolve()) if path.exists() else config.codec
    text = load_text_encoder(config.text_encoder, config.text_encoder_path)
    tc = config.triplets
    if tc.sample_rate != codec.sample_rate:
        raise ConfigError(f"triplets are rendered at {tc.sample_rate} Hz but the codec runs at "
                          f"{codec.sample_rate} Hz; set triplets.sample_rate to match")
    corpus = CorpusTriplets(tc, config.seed).iter_triplets(config.n)
    parts: list[Iterable[Triplet]] = [corpus]
    if config.n_stems:
        assert config.stems_manifest is not None
        stems = StemTriplets(config.stems_manifest, StemTripletConfig(
            segment_s=tc.duration, sample_rate=tc.sample_rate, paraphrase=tc.paraphrase,
            synonyms=tc.synonyms, min_active_s=tc.min_active_s), config.seed)
        parts.append(stems.iter_triplets(config.n_stems))
    text_path = config.text_encoder_path
    info = {
        "codec": codec_ref, "codec_spec": config.codec,
        "text_encoder": {"kind": config.text_encoder,
                         "path": str(Path(text_path).resolve()) if text_path else None},
        "build": asdict(config),
    }
    with torch.inference_mode():
        return preencode(chain(*parts), out, codec, text, info, config.chord_source,
                         config.chord_vocab, config.shard_size, progress)
