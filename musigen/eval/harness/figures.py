"""Pictures for the report page: spectrogram PNGs and HTML timelines (chords, thoughts).

Timelines are plain HTML boxes positioned in percent of the clip, so the page needs no
script and no image per timeline, and a reader can hover a box to see its label and times.
"""

from __future__ import annotations

import colorsys
import html
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from musigen.atomic import atomic_path

Segments = Sequence[tuple[float, float, str]]


def spectrogram_png(wav: np.ndarray, sample_rate: int, path: str | os.PathLike[str],
                    title: str | None = None) -> Path:
    """Save a log-mel spectrogram image (time on x, mel on y), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from musigen.eval.metrics.signal_metrics import log_mel

    x = np.asarray(wav, dtype=np.float32)
    mel = log_mel(x if x.size else np.zeros(1024, np.float32), sample_rate, n_mels=80) / np.log(10) * 10
    fig, ax = plt.subplots(figsize=(4.8, 1.7), dpi=80)
    dur = x.shape[-1] / sample_rate
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0.0, dur, 0, mel.shape[0]),
              vmin=float(mel.max()) - 80.0, vmax=float(mel.max()))
    ax.set_yticks([])
    ax.set_xlabel("s", fontsize=7, labelpad=1)
    ax.tick_params(labelsize=7, pad=1)
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.2)
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return target


def _colour(label: str) -> str:
    """A stable pastel per label (chords of one root share a hue)."""
    if label in ("N", "X", ""):
        return "#dddddd"
    root = label.split(":")[0]
    hue = (zlib.crc32(root.encode()) % 360) / 360.0
    light = 0.80 if ":min" in label else 0.70
    r, g, b = colorsys.hls_to_rgb(hue, light, 0.55)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def timeline_html(segments: Segments, duration: float, caption: str) -> str:
    """A labelled horizontal timeline of (start_s, end_s, label) segments."""
    duration = max(float(duration), 1e-6)
    boxes = []
    for start, end, label in segments:
        s, e = max(0.0, float(start)), min(duration, float(end))
        if e <= s:
            continue
        left, width = 100.0 * s / duration, 100.0 * (e - s) / duration
        text = html.escape(str(label))
        boxes.append(
            f'<div class="seg" style="left:{left:.2f}%;width:{width:.2f}%;background:{_colour(str(label))}" '
            f'title="{text} ({s:.2f}-{e:.2f} s)">{text}</div>'
        )
    return (f'<div class="timeline"><span class="tl-cap">{html.escape(caption)}</span>'
            f'<div class="track">{"".join(boxes)}</div></div>')
