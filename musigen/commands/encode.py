"""`musigen encode ...`: pre-encode data into the sharded formats training reads.

- `musigen encode musicot`: a captioned manifest -> MusiCoT codes, thoughts, caption states;
- `musigen encode instructme`: edit triplets (corpus, optionally a stems manifest) ->
  latents, chord indices, instruction states;
- `musigen encode shards`: any manifest -> litdata shards for streaming at scale (also
  reachable as `musigen data encode`, its earlier name).

Every encoder lives in :mod:`musigen.encode`; this module only parses arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `encode` command group."""
    p = sub.add_parser("encode", help="pre-encode data into training shards")
    esub = p.add_subparsers(dest="encode_command", metavar="SUBCOMMAND")
    _register_musicot(esub)
    _register_instructme(esub)
    register_shards(esub, "shards")
    p.set_defaults(func=lambda args: p.print_help() or 2)


# ---------------------------------------------------------------------------- musicot
_CHORD_SOURCE_HELP = ("recognizer: chords read off the audio, as at inference (default); "
                      "exact: the corpus' own chord labels")
_CHORD_VOCAB_HELP = ("majmin: N + 24 major/minor chords (default); full: the recogniser's "
                     "whole vocabulary")

#: PreencodeConfig's fields, as `--flag` (type, default, help); manifest and out are required.
_MUSICOT_FLAGS: tuple[tuple[str, type, object, str], ...] = (
    ("codec", str, "checkpoints/codec_demo", "codec folder, preset or random:tiny"),
    ("embedder", str, "checkpoints/clap_demo", "CLAP embedder of the thoughts"),
    ("text_encoder", str, "minilm", "caption encoder: minilm, t5 or clap"),
    ("tokenizer", str, None, "a fitted thoughts/ folder (default: fit one on this corpus)"),
    ("levels", int, 4, "thought RVQ levels"),
    ("codebook_size", int, 64, "codes per thought RVQ level"),
    ("window_s", float, 2.5, "thought window in seconds"),
    ("shard_size", int, 64, "pieces per shard"),
    ("limit", int, 0, "only the first N pieces (0: all)"),
    ("num_codebooks", int, 0, "first K audio codebooks only (0: all)"),
)


def _register_musicot(esub: argparse._SubParsersAction) -> None:
    m = esub.add_parser("musicot", help="pre-encode a captioned manifest for MusiCoT training",
                        description="pre-encode a corpus manifest for MusiCoT training")
    m.add_argument("--manifest", required=True, help="manifest.jsonl with captions")
    m.add_argument("--out", required=True, help="output folder (rerun to resume)")
    for name, kind, default, text in _MUSICOT_FLAGS:
        m.add_argument("--" + name.replace("_", "-"), type=kind, default=default,
                       help=f"{text} (default {default})")
    m.set_defaults(func=_musicot)


def _musicot(args: argparse.Namespace) -> int:
    import json

    from musigen.encode.index import INDEX_NAME
    from musigen.encode.musicot_shards import PreencodeConfig, preencode

    fields = ("manifest", "out") + tuple(name for name, *_ in _MUSICOT_FLAGS)
    out = preencode(PreencodeConfig(**{k: getattr(args, k) for k in fields}))
    index = json.loads((out / INDEX_NAME).read_text())
    print(f"wrote {out}: {len(index['entries'])} pieces, thought fidelity {index['fidelity']}")
    return 0


# ---------------------------------------------------------------------------- instructme
def _register_instructme(esub: argparse._SubParsersAction) -> None:
    p = esub.add_parser("instructme", help="pre-encode InstructME training triplets",
                        description="pre-encode InstructME training triplets")
    p.add_argument("--out", required=True, type=Path, help="output shard folder")
    p.add_argument("--n", type=int, default=64, help="corpus sequences")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds per training triplet (default 10)")
    p.add_argument("--max-rounds", type=int, default=1,
                   help="most edit rounds combined in one triplet (default 1)")
    p.add_argument("--codec", default="demo",
                   help="codec whose latents are stored: preset, folder or random:<name> "
                        "(default demo)")
    p.add_argument("--chord-source", choices=("recognizer", "exact"), default="recognizer",
                   help=_CHORD_SOURCE_HELP)
    p.add_argument("--chord-vocab", choices=("majmin", "full"), default="majmin",
                   help=_CHORD_VOCAB_HELP)
    p.add_argument("--text-encoder", default="minilm", help="minilm, t5 or clap")
    p.add_argument("--text-encoder-path", default=None, help="weights folder (default: backend's)")
    p.add_argument("--shard-size", type=int, default=256, help="triplets per shard (default 256)")
    p.add_argument("--stems-manifest", default=None,
                   help="also draw triplets from this real stems manifest (musigen data import)")
    p.add_argument("--n-stems", type=int, default=0,
                   help="triplets from --stems-manifest (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads, at most the core count (default 1)")
    p.set_defaults(func=_instructme)


def _instructme(args: argparse.Namespace) -> int:
    from musigen.limits import check_threads

    check_threads(args.threads)
    import torch

    from musigen.data.triplets import TripletConfig
    from musigen.encode.components import load_latent_codec
    from musigen.encode.edit_build import ShardBuildConfig, build_shards

    torch.set_num_threads(args.threads)
    rate = 16000 if args.codec.startswith("random:") else load_latent_codec(args.codec).sample_rate
    config = ShardBuildConfig(
        n=args.n, seed=args.seed, codec=args.codec, chord_source=args.chord_source,
        chord_vocab=args.chord_vocab, text_encoder=args.text_encoder,
        text_encoder_path=args.text_encoder_path, shard_size=args.shard_size,
        triplets=TripletConfig(duration=args.duration, max_rounds=args.max_rounds,
                               sample_rate=rate),
        stems_manifest=args.stems_manifest, n_stems=args.n_stems)
    print(f"wrote {build_shards(config, args.out, progress=True)}")
    return 0


# ---------------------------------------------------------------------------- litdata shards
def register_shards(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the litdata shard encoder as subcommand `name` of `sub`."""
    e = sub.add_parser(name, help="pre-encode a manifest into streaming (litdata) shards")
    e.add_argument("--manifest", type=Path, required=True, help="manifest.jsonl (any adapter)")
    e.add_argument("--out", type=Path, required=True, help="shard folder (rerun to resume)")
    e.add_argument("--what", default="codes,thoughts,text",
                   help="comma list of codes, thoughts, text, latents, chords, edits")
    e.add_argument("--codec", default="checkpoints/codec_demo", help="folder, preset or random:tiny")
    e.add_argument("--num-codebooks", type=int, default=0,
                   help="codes: first K codebooks only, a lower bandwidth (default 0: all)")
    e.add_argument("--embedder", default="checkpoints/clap_demo", help="CLAP for thoughts")
    e.add_argument("--tokenizer", default=None, help="thoughts/ folder (default: fit one here)")
    e.add_argument("--text-encoder", default="minilm", help="minilm, t5 or clap")
    e.add_argument("--text-encoder-path", default=None,
                   help="text encoder weights folder (default: the backend's)")
    e.add_argument("--chord-source", choices=("recognizer", "exact"), default="recognizer",
                   help=_CHORD_SOURCE_HELP)
    e.add_argument("--chord-vocab", choices=("majmin", "full"), default="majmin",
                   help=_CHORD_VOCAB_HELP)
    e.add_argument("--segment-s", type=float, default=10.0, help="edits: triplet crop length")
    e.add_argument("--min-duration", type=float, default=0.0, help="skip shorter pieces (s)")
    e.add_argument("--workers", type=int, default=1,
                   help="encoder processes, at most the core count")
    e.add_argument("--shard-size", type=int, default=64, help="records per shard")
    e.add_argument("--seed", type=int, default=0,
                   help="seed of the random crops and edits (default 0)")
    e.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    e.set_defaults(func=_shards)


def _shards(args: argparse.Namespace) -> int:
    import json

    from musigen.encode.index import INDEX_NAME
    from musigen.encode.litdata_shards import EncodeConfig, encode_manifest
    from musigen.limits import check_threads

    check_threads(args.workers, "--workers")

    config = EncodeConfig(
        manifest=str(args.manifest), out=str(args.out),
        what=tuple(w.strip() for w in args.what.split(",") if w.strip()), codec=args.codec,
        num_codebooks=args.num_codebooks,
        embedder=args.embedder, tokenizer=args.tokenizer, text_encoder=args.text_encoder,
        text_encoder_path=args.text_encoder_path, chord_source=args.chord_source,
        chord_vocab=args.chord_vocab, segment_s=args.segment_s, min_duration_s=args.min_duration,
        workers=args.workers, shard_size=args.shard_size, seed=args.seed)
    out = encode_manifest(config, progress=not args.no_progress)
    index = json.loads((out / INDEX_NAME).read_text())
    print(f"wrote {index['count']} items in {len(index['chunks'])} chunks to {out}")
    return 0
