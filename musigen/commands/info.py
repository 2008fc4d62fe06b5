"""`musigen info in.wav`: print duration, rate, channels, peak and loudness of an audio file.

It reads the header (soundfile's info) and then measures the levels in blocks
(:mod:`musigen.audio_levels`), so memory stays flat for an hour of audio; bad files fail
exactly as :func:`musigen.audio.load_audio` would, so it is where bad-input handling is
easiest to see and test.
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
    from musigen.audio_levels import scan_levels

    levels = scan_levels(args.path)
    sr, channels, samples = levels.info.sample_rate, levels.info.channels, levels.info.frames
    peak, loud = levels.peak_dbfs, levels.loudness_lufs
    print(f"path:        {args.path}")
    print(f"duration:    {samples / sr:.3f} s ({samples} samples)")
    print(f"sample rate: {sr} Hz")
    print(f"channels:    {channels}")
    print(f"peak:        {peak:.2f} dBFS")
    print(f"loudness:    {loud:.2f} LUFS")
    return 0
