"""The one error contract of every `python -m musigen...` entry point.

A user's mistake (a MusigenError) ends in one line on stderr and exit code 2, never a
traceback; `musigen` subcommands get the same from :mod:`musigen.cli`.  Module mains call
:func:`guarded` instead of each repeating the try/except.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from musigen.errors import MusigenError


def guarded(prog: str, run: Callable[[], int | None]) -> int:
    """Run `run`; a MusigenError prints ``prog: error: message`` and returns 2."""
    try:
        return int(run() or 0)
    except MusigenError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
