"""`musigen encode shards`: any manifest -> litdata shards, over many workers, resumable.

Why litdata (and not WebDataset): its `StreamingDataset` reads the same folder from local
disk or an object store (s3://, gs://, azure://) and its `StreamingDataLoader.state_dict`
carries the mid-epoch position (samples yielded per worker, shuffle seed, epoch), which is
what a resumed training run needs to neither re-see nor skip data.  With WebDataset we
would have to build that position tracking ourselves.

Folder layout (a litdata dataset plus our metadata):

    encode.json               the settings; a rerun must match them (written first)
    codec/ thoughts/          a random codec / a fitted thought tokenizer, when made here
    shard-00000-0.bin ...     litdata chunks of shard 0 (records 0 .. shard_size-1) ...
    parts/shard-00000.json    shard 0 is finished: its chunk entries, keys, statistics
    latent_stats.safetensors  per-channel mean/std of the latents (when there are latents)
    index.json                litdata's index plus our metadata; written LAST

Crash safety: a worker writes a shard's chunks into `.tmp/`, moves them into place with
`os.replace` (atomic), and only then writes the shard's `parts/` record (atomic).  A shard
without its record does not exist and is rewritten on the next run; `index.json` appears
only when every shard is finished, so a reader never sees a partial dataset.  Re-running
the same command skips finished shards.  (Two encoders must not share one folder.)
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from musigen.atomic import write_json
from musigen.encode.components import load_codec, load_embedder
from musigen.encode.index import INDEX_NAME
from musigen.encode.litdata_items import ItemEncoder, check_what, item_frames, item_latents
from musigen.errors import ConfigError, DataError
from musigen.instructme.chord_vocabs import CHORD_SOURCES

FORMAT = "musigen-litdata-shards/1"
# INDEX_NAME is litdata's name too; our metadata rides in it under top-level keys.
SETTINGS_NAME = "encode.json"
PARTS_DIR = "parts"
TMP_DIR = ".tmp"


@dataclass
class EncodeConfig:
    """Everything that defines an encoded folder (a rerun must give the same values)."""

    manifest: str
    out: str
    what: tuple[str, ...] = ("codes", "thoughts", "text")
    codec: str = "checkpoints/codec_demo"  # folder, preset, or `random:tiny` (saved to out/codec)
    num_codebooks: int = 0  # codes: 0 = the codec's whole stack; fewer = a lower bandwidth
    embedder: str | None = "checkpoints/clap_demo"  # for thoughts: folder, `demo`, `random:tiny`
    tokenizer: str | None = None  # thoughts/ folder; None = fit one on the first `fit_pieces`
    text_encoder: str = "minilm"
    text_encoder_path: str | None = None
    chord_source: str = "recognizer"  # the pipeline's chords at inference (see instructme)
    chord_vocab: str = "majmin"
    segment_s: float = 10.0  # edits: crop length of the stem triplets
    min_duration_s: float = 0.0  # skip shorter pieces (training crops need this much)
    levels: int = 4  # a fitted thought tokenizer: RVQ levels x codebook size, window
    codebook_size: int = 64
    window_s: float = 2.5
    fit_pieces: int = 256
    shard_size: int = 64
    workers: int = 1
    seed: int = 0
    fail_after: int = 0  # fault injection for tests: a worker fails after this many shards

    def __post_init__(self) -> None:
        self.what = check_what(tuple(self.what))
        if self.shard_size < 1 or self.workers < 1 or self.fit_pieces < 1:
            raise ConfigError("shard_size, workers and fit_pieces must be at least 1")
        if self.num_codebooks < 0:
            raise ConfigError(f"num_codebooks must be >= 0 (0 = all), got {self.num_codebooks}")
        if self.chord_source not in CHORD_SOURCES:
            raise ConfigError(f"chord_source must be one of {', '.join(CHORD_SOURCES)}")
        if self.segment_s <= 0 or self.min_duration_s < 0 or self.fail_after < 0:
            raise ConfigError("segment_s must be positive, min_duration_s and fail_after >= 0")

    def settings(self) -> dict[str, Any]:
        """What must agree between a run and its continuation."""
        keep = {k: v for k, v in asdict(self).items() if k not in ("workers", "fail_after")}
        keep["what"] = list(self.what)
        if not self.num_codebooks:
            del keep["num_codebooks"]  # "all": what folders written before this option hold
        return keep


# ---------------------------------------------------------------------------- workers
_ENCODER: ItemEncoder | None = None
_WRITTEN = 0


def _init_worker(kwargs: dict[str, Any]) -> None:
    global _ENCODER, _WRITTEN
    torch.set_num_threads(1)
    _ENCODER, _WRITTEN = ItemEncoder(**kwargs), 0


def _encode_shard(out: str, shard: int, records: list[tuple[int, dict[str, Any]]],
                  min_duration_s: float, fail_after: int) -> str:
    """Encode one shard into `.tmp/`, move its chunks into place, then record it as done."""
    global _WRITTEN
    from litdata.streaming.writer import BinaryWriter

    assert _ENCODER is not None, "worker not initialised"
    root = Path(out)
    tmp = root / TMP_DIR / f"shard-{shard:05d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        writer = BinaryWriter(str(tmp), chunk_bytes="256MB")
        keys, frames, total, total_sq, count = [], [], None, None, 0
        text_dim = None
        for n, (i, rec) in enumerate(records):
            if fail_after and _WRITTEN >= fail_after and n == 1:
                raise RuntimeError(f"injected failure in shard {shard} after {_WRITTEN} shards")
            if float(rec["duration"]) < min_duration_s:
                continue
            item = _ENCODER.encode(i, rec)
            if item is None:
                continue
            z = item_latents(item)
            if z is not None:
                total = z.sum(1) if total is None else total + z.sum(1)
                total_sq = (z**2).sum(1) if total_sq is None else total_sq + (z**2).sum(1)
                count += z.shape[1]
            writer.add_item(len(keys), item)
            keys.append(item["key"])
            frames.append(item_frames(item))
            text_dim = int(item["text"].shape[-1]) if "text" in item else None
        chunks: list[dict[str, Any]] = []
        config = None
        if keys:
            writer.done()
            index = json.loads((tmp / f"0.{INDEX_NAME}").read_text())
            config = index["config"]
            for j, chunk in enumerate(index["chunks"]):
                name = f"shard-{shard:05d}-{j}.bin"
                os.replace(tmp / chunk["filename"], root / name)
                chunks.append({**chunk, "filename": name})
        write_json(root / PARTS_DIR / f"shard-{shard:05d}.json", {
            "chunks": chunks, "config": config, "keys": keys, "frames": frames,
            "text_dim": text_dim,
            "latent_sum": None if total is None else total.tolist(),
            "latent_sq": None if total_sq is None else total_sq.tolist(), "latent_count": count,
        })
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _WRITTEN += 1
    return f"shard-{shard:05d}"


# ---------------------------------------------------------------------------- the run
def _prepare(config: EncodeConfig, out: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Check or write the settings, make the codec/tokenizer every worker loads."""
    settings = config.settings()
    saved = out / SETTINGS_NAME
    if saved.is_file():
        before = json.loads(saved.read_text())
        diff = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if diff:
            raise ConfigError(f"{out} was encoded with other settings ({', '.join(diff)}); "
                              "use a new folder or the same command")
    else:
        write_json(saved, settings)
    codec_dir = out / "codec"
    if config.codec.startswith("random:"):
        if not (codec_dir / "config.json").is_file():
            load_codec(config.codec).save_pretrained(codec_dir)
        codec_ref = str(codec_dir.resolve())
    else:
        codec_ref = str(Path(config.codec).resolve()) if Path(config.codec).exists() else config.codec
    tok_dir = config.tokenizer
    if "thoughts" in config.what and tok_dir is None:
        tok_dir = str(out / "thoughts")
        if not (Path(tok_dir) / "config.json").is_file():
            _fit_tokenizer(config, codec_ref, records, Path(tok_dir))
    return {"what": config.what, "codec_dir": codec_ref, "manifest": config.manifest,
            "embedder": config.embedder, "tokenizer_dir": tok_dir,
            "text_encoder": config.text_encoder, "text_encoder_path": config.text_encoder_path,
            "chord_source": config.chord_source, "chord_vocab": config.chord_vocab,
            "segment_s": config.segment_s, "seed": config.seed, "num_codebooks": config.num_codebooks}


def _fit_tokenizer(config: EncodeConfig, codec_ref: str, records: list[dict[str, Any]],
                   out: Path) -> None:
    """Fit the thought RVQ on the first `fit_pieces` pieces (k-means init, as in preencode)."""
    from musigen.audio import load_audio
    from musigen.musicot.analysis import window_embeddings
    from musigen.musicot.thoughts import ThoughtConfig, ThoughtTokenizer

    if config.embedder is None:
        raise ConfigError("thoughts need --embedder (or an existing --tokenizer)")
    embedder = load_embedder(config.embedder)
    tconf = ThoughtConfig(embed_dim=embedder.dim, levels=config.levels,
                          codebook_size=config.codebook_size, window_s=config.window_s,
                          hop_s=config.window_s, min_last_s=config.window_s / 4)
    probe = ThoughtTokenizer(tconf)
    root = Path(config.manifest).parent
    with torch.inference_mode():
        vecs = [window_embeddings(*load_audio(root / r["path"]), embedder, probe)[0]
                for r in records[: config.fit_pieces]]
    ThoughtTokenizer.fit(torch.cat(vecs), tconf).save_pretrained(out)


def encode_manifest(config: EncodeConfig, progress: bool = True) -> Path:
    """Encode (or finish encoding) `config.manifest` into `config.out`; returns the folder.

    Raises DataError when a worker fails; the shards finished so far are kept, and running
    the same command again continues from them.
    """
    from tqdm.auto import tqdm

    from musigen.data.manifest import read_manifest

    out = Path(config.out)
    records = read_manifest(config.manifest)
    if not records:
        raise DataError(f"manifest {config.manifest} holds no records")
    out.mkdir(parents=True, exist_ok=True)
    kwargs = _prepare(config, out, records)
    if (out / INDEX_NAME).is_file():
        return out  # finished earlier
    shutil.rmtree(out / TMP_DIR, ignore_errors=True)  # leftovers of a killed run
    n_shards = -(-len(records) // config.shard_size)
    todo = [s for s in range(n_shards) if not (out / PARTS_DIR / f"shard-{s:05d}.json").is_file()]

    def job(s: int) -> tuple[str, int, list[tuple[int, dict[str, Any]]], float, int]:
        lo = s * config.shard_size
        part = list(enumerate(records[lo : lo + config.shard_size], start=lo))
        return str(out), s, part, config.min_duration_s, config.fail_after

    bar = tqdm(total=n_shards, initial=n_shards - len(todo), desc="shards", disable=not progress)
    try:
        if config.workers == 1:
            _init_worker(kwargs)
            for s in todo:
                _encode_shard(*job(s))
                bar.update()
        else:
            with ProcessPoolExecutor(config.workers, mp_context=get_context("spawn"),
                                     initializer=_init_worker, initargs=(kwargs,)) as pool:
                futures = [pool.submit(_encode_shard, *job(s)) for s in todo]
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    bar.update(len(done))
                    failed = [f for f in done if f.exception() is not None]
                    if failed:
                        for f in pending:
                            f.cancel()  # running shards still finish; queued ones do not start
                        raise failed[0].exception()  # type: ignore[misc]
    except Exception as exc:
        if isinstance(exc, (ConfigError, DataError)):
            raise
        raise DataError(f"encoding {config.manifest} failed ({exc}); finished shards are kept, "
                        "run the same command again to continue") from exc
    finally:
        bar.close()
    return finalize(out, n_shards, kwargs)


def finalize(out: Path, n_shards: int, kwargs: dict[str, Any]) -> Path:
    """Merge the shard records into litdata's index.json (last), with our metadata."""
    from musigen.codec import Codec

    parts = [json.loads((out / PARTS_DIR / f"shard-{s:05d}.json").read_text())
             for s in range(n_shards)]
    chunks = [c for p in parts for c in p["chunks"]]
    configs = [p["config"] for p in parts if p["config"] is not None]
    if not chunks:
        raise DataError(f"no record of the manifest gave an item; nothing written to {out}")
    if any(c["data_format"] != configs[0]["data_format"] for c in configs):
        raise DataError(f"shards in {out} hold differently shaped items; re-encode the folder")
    codec = Codec.from_pretrained(kwargs["codec_dir"])
    what = list(kwargs["what"])
    meta: dict[str, Any] = {
        "format": FORMAT, "what": what, "count": sum(len(p["keys"]) for p in parts),
        "min_frames": min(f for p in parts for f in p["frames"]),
        "codec": kwargs["codec_dir"], "codec_spec": json.loads(
            (out / SETTINGS_NAME).read_text())["codec"],
        "sample_rate": int(codec.sample_rate), "frame_rate": float(codec.frame_rate),
        "num_codebooks": int(kwargs.get("num_codebooks") or codec.num_codebooks), "codebook_size": int(codec.cardinality),
        "latent_dim": int(codec.latent_dim),
        "text_encoder": {"kind": kwargs["text_encoder"], "path": kwargs["text_encoder_path"]},
    }
    if "chords" in what or "edits" in what:
        from musigen.instructme.chord_vocabs import chord_vocab

        meta |= {"chord_vocab_name": kwargs["chord_vocab"],
                 "chord_vocab": list(chord_vocab(kwargs["chord_vocab"])),
                 "chord_source": kwargs["chord_source"]}
    if "text" in what or "edits" in what:
        meta["text_dim"] = next(p["text_dim"] for p in parts if p["text_dim"] is not None)
    if "thoughts" in what:
        from musigen.musicot.thoughts import ThoughtTokenizer

        tok = ThoughtTokenizer.from_pretrained(kwargs["tokenizer_dir"])
        meta |= {"thoughts": str(Path(kwargs["tokenizer_dir"]).resolve()),
                 "thought_levels": tok.config.levels,
                 "thought_codebook_size": tok.config.codebook_size, "segment_s": tok.config.hop_s}
    count = sum(p["latent_count"] for p in parts)
    if count:
        from musigen.instructme.latent_stats import STATS_NAME, LatentStats

        total = sum(torch.tensor(p["latent_sum"], dtype=torch.float64) for p in parts
                    if p["latent_count"])
        sq = sum(torch.tensor(p["latent_sq"], dtype=torch.float64) for p in parts
                 if p["latent_count"])
        mean = total / count
        std = (sq / count - mean**2).clamp_min(1e-12).sqrt()
        LatentStats(mean.float(), std.float()).save(out / STATS_NAME)
        meta |= {"stats": STATS_NAME, "latent_mean": mean.tolist(), "latent_std": std.tolist()}
    write_json(out / INDEX_NAME, {"chunks": chunks, "config": configs[0], **meta})
    return out

