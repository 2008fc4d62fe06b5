"""`musigen data ...`: build the procedural corpus and import real stem datasets."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `data` command group."""
    p = sub.add_parser("data", help="build or import datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    s = dsub.add_parser("synth", help="render the procedural multitrack corpus")
    s.add_argument("--n", type=int, required=True, help="number of pieces")
    s.add_argument("--duration", type=float, default=20.0, help="seconds per piece")
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument("--seed", type=int, default=0, help="corpus seed; piece i uses seed+i")
    s.add_argument("--renderer", choices=("builtin", "fluidsynth"), default="builtin")
    s.add_argument("--sample-rate", type=int, default=16000)
    s.add_argument("--genres", nargs="*", default=None, help="restrict to these genres")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(func=_synth)

    i = dsub.add_parser("import", help="write a manifest for a real stem dataset")
    i.add_argument("dataset", choices=("slakh", "musdb", "moisesdb"))
    i.add_argument("root", type=Path, help="dataset root in its native layout")
    i.add_argument("--out", type=Path, required=True, help="manifest.jsonl to write")
    i.add_argument("--split", default=None, help="train / validation / test where defined")
    i.add_argument(
        "--activity",
        action="store_true",
        help="measure per-stem activity from the audio (decodes every stem; slower)",
    )
    i.set_defaults(func=_import)

    _register_encode(dsub)

    p.set_defaults(func=lambda args: p.print_help() or 2)


def _register_encode(dsub: argparse._SubParsersAction) -> None:
    """`musigen data encode`: a manifest -> litdata shards (see musigen.data.shards)."""
    e = dsub.add_parser("encode", help="pre-encode a manifest into streaming shards")
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
    e.add_argument("--text-encoder-path", default=None)
    e.add_argument("--chord-source", choices=("recognizer", "exact"), default="recognizer")
    e.add_argument("--chord-vocab", choices=("majmin", "full"), default="majmin")
    e.add_argument("--segment-s", type=float, default=10.0, help="edits: triplet crop length")
    e.add_argument("--min-duration", type=float, default=0.0, help="skip shorter pieces (s)")
    e.add_argument("--workers", type=int, default=1, help="encoder processes")
    e.add_argument("--shard-size", type=int, default=64, help="records per shard")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    e.set_defaults(func=_encode)


def _synth(args: argparse.Namespace) -> int:
    from musigen.data.synth.corpus import build_corpus

    manifest = build_corpus(
        out_dir=args.out,
        n=args.n,
        duration=args.duration,
        seed=args.seed,
        renderer=args.renderer,
        sample_rate=args.sample_rate,
        genres=args.genres,
        progress=not args.no_progress,
    )
    print(f"wrote {args.n} pieces; manifest: {manifest}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from musigen.data.stems import build_manifest

    n = build_manifest(args.dataset, args.root, args.out, split=args.split, activity=args.activity)
    print(f"wrote {n} items to {args.out}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    import json

    from musigen.data.shards import INDEX_NAME, EncodeConfig, encode_manifest

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
