"""Pre-encode a corpus for MusiCoT training: audio codes, thought codes, text states.

Training then never runs the codec, the CLAP embedder or the text encoder. Folder layout:

    index.json           pieces (shard, key, frames, segments, caption), sizes, fidelity
    thoughts/            the ThoughtTokenizer fitted on this corpus (or the one given)
    shard_00000.safetensors   per piece `<key>.codes` [K, T] int16, `<key>.thoughts` [S, L]
                              int16, `<key>.text` [Tt, D] float16 (caption token states)

Resumable: finished shards are listed in `progress.json` and skipped on a rerun; every
file is written atomically, and index.json comes last (a folder with it is complete).

    musigen encode musicot --manifest data/corpus/manifest.jsonl \
        --out data/musicot/train --codec checkpoints/codec_demo --embedder checkpoints/clap_demo
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from musigen.atomic import atomic_path, write_json
from musigen.encode.components import load_codec, load_embedder
from musigen.encode.index import INDEX_NAME
from musigen.errors import ConfigError, DataError
from musigen.musicot.analysis import window_embeddings
from musigen.musicot.thoughts import ThoughtConfig, ThoughtTokenizer

FORMAT = "musigen-musicot-shards/1"
PROGRESS_NAME = "progress.json"


@dataclass
class PreencodeConfig:
    """What defines a pre-encoded MusiCoT set."""

    manifest: str
    out: str
    codec: str = "checkpoints/codec_demo"  # a folder, a preset, or `random:tiny` (CI)
    embedder: str = "checkpoints/clap_demo"  # a folder, `demo`, or `random:tiny` (CI)
    text_encoder: str = "minilm"
    tokenizer: str | None = None  # an existing thoughts/ folder; None = fit on this corpus
    levels: int = 4
    codebook_size: int = 64
    window_s: float = 2.5  # the demo corpus is 10-30 s: short windows give a real plan
    shard_size: int = 64
    limit: int = 0  # 0 = every piece
    num_codebooks: int = 0  # 0 = the codec's whole stack; fewer = a lower bandwidth (demo LM: 4)

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.limit < 0 or self.num_codebooks < 0:
            raise ConfigError("shard_size must be >= 1, limit and num_codebooks >= 0")


def _pieces(manifest: Path, limit: int) -> list[tuple[str, Path, str]]:
    from musigen.data.manifest import read_manifest

    records = read_manifest(manifest)
    out = []
    for i, rec in enumerate(records[: limit or None]):
        caption = rec.get("caption")
        if not isinstance(caption, str) or not caption:
            raise DataError(f"{manifest} piece {i} has no caption")
        out.append((f"p{i:06d}", manifest.parent / rec["path"], caption))
    if not out:
        raise DataError(f"{manifest} holds no pieces")
    return out


def preencode(config: PreencodeConfig, progress: bool = True) -> Path:
    """Build (or finish) the folder `config.out`; returns it."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from musigen.audio import load_audio
    from musigen.embedders.text import load_text_encoder

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    pieces = _pieces(Path(config.manifest), config.limit)
    codec, embedder = load_codec(config.codec), load_embedder(config.embedder)
    text = load_text_encoder(config.text_encoder)
    audio: dict[str, tuple[Any, int]] = {}

    def wav_of(key: str, path: Path) -> tuple[Any, int]:
        if key not in audio:
            audio.clear()
            audio[key] = load_audio(path)
        return audio[key]

    tok_dir = out / "thoughts"
    if config.tokenizer is not None:
        tokenizer = ThoughtTokenizer.from_pretrained(config.tokenizer)
    elif (tok_dir / "config.json").is_file():
        tokenizer = ThoughtTokenizer.from_pretrained(tok_dir)  # resumed run: keep the same RVQ
    else:  # fit the RVQ on every window of the corpus
        tconf = ThoughtConfig(embed_dim=embedder.dim, levels=config.levels,
                              codebook_size=config.codebook_size, window_s=config.window_s,
                              hop_s=config.window_s, min_last_s=config.window_s / 4)
        probe = ThoughtTokenizer(tconf)
        vecs = [window_embeddings(*wav_of(k, p), embedder, probe)[0]
                for k, p, _ in tqdm(pieces, desc="embed", disable=not progress)]
        tokenizer = ThoughtTokenizer.fit(torch.cat(vecs), tconf)
        tokenizer.save_pretrained(tok_dir)
    done_path = out / PROGRESS_NAME
    done: dict[str, Any] = json.loads(done_path.read_text()) if done_path.is_file() else {}
    entries: list[dict[str, Any]] = list(done.get("entries", []))
    finished = set(done.get("shards", []))
    all_vecs: list[torch.Tensor] = []
    for start in tqdm(range(0, len(pieces), config.shard_size), desc="shards",
                      disable=not progress):
        name = f"shard_{start // config.shard_size:05d}.safetensors"
        if name in finished:
            continue
        tensors: dict[str, torch.Tensor] = {}
        new_entries = []
        for key, path, caption in pieces[start : start + config.shard_size]:
            wav, sr = wav_of(key, path)
            codes = codec.encode(wav, sr, num_codebooks=config.num_codebooks or None)[0].to(torch.int16).cpu()
            vecs, _ = window_embeddings(wav, sr, embedder, tokenizer)
            all_vecs.append(vecs)
            thoughts = tokenizer.encode(vecs).to(torch.int16).cpu()
            enc = text.encode([caption])
            states = enc.states[0][enc.mask[0]].to(torch.float16).cpu()
            tensors |= {f"{key}.codes": codes.contiguous(), f"{key}.thoughts": thoughts.contiguous(),
                        f"{key}.text": states.contiguous()}
            new_entries.append({"key": key, "shard": name, "frames": int(codes.shape[-1]),
                                "segments": int(thoughts.shape[0]), "caption": caption,
                                "path": str(path)})
        with atomic_path(out / name) as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT})
        entries += new_entries
        finished.add(name)
        write_json(done_path, {"shards": sorted(finished), "entries": entries})
    fidelity = tokenizer.fidelity(torch.cat(all_vecs)) if all_vecs else None
    write_json(out / INDEX_NAME, {
        "format": FORMAT, "config": asdict(config), "entries": entries,
        "num_codebooks": config.num_codebooks or codec.num_codebooks, "codebook_size": codec.cardinality,
        "frame_rate": float(codec.frame_rate), "sample_rate": int(codec.sample_rate),
        "text_dim": int(text.dim), "thought_levels": tokenizer.config.levels,
        "thought_codebook_size": tokenizer.config.codebook_size,
        "segment_s": tokenizer.config.hop_s, "thoughts": "thoughts",
        "fidelity": fidelity,
    })
    if config.tokenizer is not None and not (tok_dir / "config.json").is_file():
        tokenizer.save_pretrained(tok_dir)
    return out

