"""Resource limits: what a small input or a typo may ask of the machine.

A thread count, a duration or a length declared in a file header is checked here before
anything is allocated, so ``--threads 100000`` or a codes file that claims a billion samples
is a one-line error (exit 2), not a segfault or a 5 GB allocation.  The choices:

- ``--threads`` above the machine's core count is **refused** (not clamped): the user asked
  for something this machine cannot give, and a silent clamp would hide a typo.
- Audio that a command reads whole (edit, codec encode, a style reference, chords, embed)
  is at most :data:`MAX_INPUT_AUDIO_S` long; the header is read first, so a long file is
  refused before it is decoded.
- Codes files decode at most :data:`MAX_DECODE_S` of audio, and every length in their
  header must agree with the tensor actually stored (and the tensor with the file's size).
"""

from __future__ import annotations

import os
from typing import Any

from musigen.errors import ConfigError

#: Longest audio any command reads whole into memory (20 minutes).
MAX_INPUT_AUDIO_S: float = 1200.0
#: Longest audio `codec decode` writes (20 minutes: ~150 MB of float32 at 32 kHz).
MAX_DECODE_S: float = 1200.0


def core_count() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_threads(threads: int | None, flag: str = "--threads") -> int | None:
    """`threads` if in [1, cores] (None passes through: the library's default); else one line."""
    if threads is None:
        return None
    cores = core_count()
    if isinstance(threads, bool) or not 1 <= int(threads) <= cores:
        raise ConfigError(f"{flag} must be between 1 and the {cores} core(s) of this machine, "
                          f"got {threads}")
    return int(threads)


def check_input_duration(info: Any, maximum: float = MAX_INPUT_AUDIO_S,
                         what: str = "the input") -> None:
    """Refuse audio (an :class:`~musigen.audio.AudioInfo`, header only) longer than `maximum`."""
    seconds = info.frames / info.sample_rate
    if seconds > maximum:
        raise ConfigError(f"{what} {info.path} is {seconds / 60:.1f} min long; at most "
                          f"{maximum / 60:g} min is read (cut it into parts first)")
