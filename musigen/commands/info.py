"""`musigen info in.wav`: print duration, rate, channels, peak and loudness of an audio file.

It is also the shortest path from the CLI to :func:`musigen.audio.load_audio`, so it is
where bad-input handling is easiest to see and test.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `info` command."""
    p = sub.add_parser("info", help="describe an audio file (duration, rate, level)")
    p.add_argument("path", type=Path, help="audio file (WAV, FLAC, OGG, MP3)")
    p.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    from musigen.audio import load_audio, loudness_lufs, peak_dbfs

    wav, sr = load_audio(args.path)
    channels, samples = wav.shape
    peak, loud = peak_dbfs(wav), loudness_lufs(wav, sr)
    print(f"path:        {args.path}")
    print(f"duration:    {samples / sr:.3f} s ({samples} samples)")
    print(f"sample rate: {sr} Hz")
    print(f"channels:    {channels}")
    print(f"peak:        {peak:.2f} dBFS")
    print(f"loudness:    {loud:.2f} LUFS")
    return 0
