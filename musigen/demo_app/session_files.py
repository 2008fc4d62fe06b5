"""The demo's temporary files: one folder per run, removed when the server stops.

Gradio copies every upload into its cache (``$GRADIO_TEMP_DIR``, by default a shared
``/tmp/gradio`` that outlives the process), and the demo writes its results to a work
folder.  :func:`demo_files` gives both a private folder of their own for one run and
removes them on the way out, also on Ctrl-C and SIGTERM.  A ``--work-dir`` the user named
is theirs and is kept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DemoFolders:
    """Where one run keeps its results (`work`) and Gradio its uploads (`cache`)."""

    work: Path
    cache: Path


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so the cleanup below runs


@contextlib.contextmanager
def demo_files(work_dir: Path | None = None) -> Iterator[DemoFolders]:
    """Create the run's folders and point Gradio's cache at one; remove what we made on exit.

    Must be entered before the page is built: Gradio reads ``GRADIO_TEMP_DIR`` when its
    components and server are created.
    """
    root = Path(tempfile.mkdtemp(prefix="musigen-demo-"))
    cache = root / "uploads"
    cache.mkdir()
    if work_dir is None:
        work = root / "results"
        work.mkdir()
    else:
        work = Path(work_dir)
        work.mkdir(parents=True, exist_ok=True)
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(cache)
    old_term = None
    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield DemoFolders(work, cache)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before
        shutil.rmtree(root, ignore_errors=True)
