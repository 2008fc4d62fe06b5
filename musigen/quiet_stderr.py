"""Silence what native decoders print straight to file descriptor 2.

libsndfile's MP3 backend (libmpg123) writes "Note: Illegal Audio-MPEG-Header ..." lines to the
process's stderr from C when it is handed a corrupt or non-audio file. musigen promises one
clear error line for bad input, so decoding runs with fd 2 pointed at the null device; the
Python-level exception still carries the reason.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

#: fd 2 is one per process: threads (e.g. the demo app's request handlers) take turns, or one
#: could save another's redirect as "the real stderr" and leave it redirected for good.
_LOCK = threading.RLock()


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send fd 2 to the null device for the duration of the block, then restore it."""
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2 (e.g. embedded interpreters)
            yield
            return
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(null)
            os.close(saved)
