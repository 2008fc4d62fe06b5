"""`musigen embed in.wav --window 10`: per-window zero-shot tags from an audio–text embedder."""

from __future__ import annotations

import argparse
from pathlib import Path

from musigen.output_paths import add_overwrite_flag


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `embed` command."""
    p = sub.add_parser("embed", help="embed audio per window and print its top tags")
    p.add_argument("audio", type=Path, help="an audio file (any rate and channel count)")
    p.add_argument("--window", type=float, default=10.0, help="window length in seconds")
    p.add_argument("--hop", type=float, default=None, help="hop in seconds (default: the window)")
    p.add_argument("--model", default="demo", help="embedder: 'demo', a folder, or a CLAP hub id")
    p.add_argument("--top-k", type=int, default=3, help="instruments to print per window")
    p.add_argument("--out", type=Path, default=None, help="also save the embeddings (.safetensors)")
    add_overwrite_flag(p)
    p.set_defaults(func=_embed)


def _embed(args: argparse.Namespace) -> int:
    from musigen.audio import audio_info, load_audio
    from musigen.limits import check_input_duration
    from musigen.output_paths import check_output
    from musigen.embedders.clap import load_embedder
    from musigen.embedders.tags import analyze_audio
    from musigen.errors import ConfigError

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
    if not args.window > 0 or (args.hop is not None and not args.hop > 0):
        raise ConfigError(f"--window and --hop must be > 0 seconds, got {args.window:g} and "
                          f"{args.hop}")
    if args.out is not None:
        check_output(args.out, inputs=[args.audio], overwrite=args.overwrite)
    check_input_duration(audio_info(args.audio), what="the audio")  # header only
    wav, sr = load_audio(args.audio)
    embedder = load_embedder(args.model)
    emb = embedder.embed_audio(wav, sr, args.window, args.hop)
    segments = analyze_audio(
        embedder, wav, sr, args.window, args.hop, top_k=args.top_k, audio_embeddings=emb
    )
    print(
        f"{args.audio}  model={embedder.name or embedder.kind}  window={args.window:g} s  "
        f"{len(segments)} segment(s)"
    )
    for seg in segments:
        print(seg.line())
    if args.out is not None:
        from safetensors.torch import save_file

        from musigen.atomic import atomic_path

        with atomic_path(args.out) as tmp:
            save_file(
                {"embeddings": emb.contiguous()},
                str(tmp),
                metadata={"model": embedder.name, "window_s": str(args.window)},
            )
        print(f"wrote {args.out}")
    return 0
