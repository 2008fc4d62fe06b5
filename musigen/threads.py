"""Thread counts that do not change results: the sampling path runs at one intra-op thread.

Why: a float32 matrix product splits its work by the thread count, so the LM's logits differ
in their last bits between ``--threads 1`` and ``--threads 2``.  Classifier-free guidance
(scale 3) amplifies that, and once one draw of the sampler lands on the other side of a
cumulative-probability boundary every later token differs: on the shipped MusiCoT demo, two
of three 5 s prompts sampled other codes at 2 threads than at 1.  Rounding logits to a grid
does not remove this (a logit straddling a grid step jumps by the whole step), and pinning
only the LM is not enough either (the text encoder's states differ in their last bits too:
measured, two of three prompts still diverged).  So a whole generation call (text encoding,
reference, LM decode loop, codec decoder) runs at :data:`SAMPLING_THREADS` whatever the caller
set; the CLI, Python callers and the demo app then get the same samples for the same seed.
On the 2-core machine these were measured on, a second thread does not speed generation up
(docs/speed.md), so this costs nothing there.

Editing is not pinned (diffusion output is continuous, and it may use more threads where they
help), but its default is :data:`EDIT_THREADS`, chosen by the same measurement.  torch is
imported lazily, so the CLI can read these defaults before importing it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

#: Intra-op threads of every operation whose result decides or is a sample.
SAMPLING_THREADS: int = 1
#: Intra-op threads of an edit when the caller names none (CLI and Python).
EDIT_THREADS: int = 1

_LOCK = threading.RLock()  # torch's thread count is process-wide: one sampler at a time


@contextlib.contextmanager
def use_threads(threads: int) -> Iterator[None]:
    """Run the enclosed block at `threads` intra-op threads, then restore the count."""
    import torch

    with _LOCK:
        before = torch.get_num_threads()
        if before != threads:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)


def sampling_threads() -> contextlib.AbstractContextManager[None]:
    """Run the enclosed block at :data:`SAMPLING_THREADS` threads, then restore the count."""
    return use_threads(SAMPLING_THREADS)
