"""`musigen chords song.wav [--lab out.lab]`: print the chord timeline, optionally save a .lab."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `chords` command."""
    p = sub.add_parser("chords", help="recognise chords in an audio file")
    p.add_argument("audio", type=Path, help="audio file (wav, flac, ogg, mp3)")
    p.add_argument("--lab", type=Path, default=None, help="also write a three-column .lab file")
    p.add_argument(
        "--method",
        choices=("auto", "model", "templates"),
        default="auto",
        help="auto: learned model if its checkpoint exists, else templates",
    )
    p.add_argument("--checkpoint", type=Path, default=None, help="learned model folder")
    p.set_defaults(func=_chords)


def _chords(args: argparse.Namespace) -> int:
    from musigen.audio import load_audio
    from musigen.chords import recognize_chords, write_lab

    wav, sr = load_audio(args.audio, channels=1)
    chords = recognize_chords(wav, sr, method=args.method, checkpoint=args.checkpoint)
    for start, end, label in chords:
        print(f"{start:8.3f} {end:8.3f}  {label}")
    if args.lab is not None:
        write_lab(args.lab, chords)
        print(f"wrote {args.lab}")
    return 0
