"""What the page shows, as HTML fragments and PNGs: timelines, chord lanes, vocabularies.

Plain strings and files (no Gradio here), so the handlers' outputs can be checked in unit
tests and the same fragments render in any browser.  Every user-visible text is escaped.
"""

from __future__ import annotations

import colorsys
import html
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from musigen.musicot.analysis import SegmentAnalysis

Chord = tuple[float, float, str]

#: Styles used by the fragments (handed to the page once, see ui.CSS).
CSS = """
.musigen-msg { padding: 8px 12px; border-radius: 6px; margin: 4px 0; }
.musigen-error { background: #fde8e8; color: #8a1414; border: 1px solid #f3b4b4; }
.musigen-ok { background: #e8f6ec; color: #14532d; border: 1px solid #a7dcb5; }
.musigen-table { border-collapse: collapse; width: 100%; font-size: 13px; }
.musigen-table th, .musigen-table td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; }
.musigen-lane { display: flex; height: 30px; margin: 2px 0 8px 0; border: 1px solid #ccc; }
.musigen-lane div { overflow: hidden; white-space: nowrap; font-size: 11px; line-height: 30px;
  text-align: center; border-right: 1px solid #fff; color: #111; }
.musigen-lane-label { font-size: 13px; font-weight: 600; }
"""


def message(text: str, error: bool = False) -> str:
    """A status line: red for a problem the user can fix, green for a success."""
    kind = "musigen-error" if error else "musigen-ok"
    return f'<div class="musigen-msg {kind}" role="status">{html.escape(text)}</div>'


def _tags(pairs: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{html.escape(n)} <small>{s:.2f}</small>" for n, s in pairs)


def _chord_names(chords: Sequence[Chord]) -> str:
    names = list(dict.fromkeys(lab for _, _, lab in chords if lab != "N"))
    return html.escape(" ".join(names)) if names else "&ndash;"


def timeline_table(segments: Sequence[SegmentAnalysis], caption: str = "") -> str:
    """The thought timeline: one row per segment, its top tags per category and its chords."""
    if not segments:
        return message("no segments to show (the piece is shorter than one analysis window)")
    cats = list(dict.fromkeys(cat for seg in segments for cat in seg.tags))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cats)
    rows = []
    for seg in segments:
        cells = "".join(f"<td>{_tags(seg.tags.get(c, []))}</td>" for c in cats)
        rows.append(f"<tr><td>{seg.start:.1f}&ndash;{seg.end:.1f} s</td>{cells}"
                    f"<td>{_chord_names(seg.chords)}</td></tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<table class="musigen-table">{cap}<tr><th>time</th>{head}<th>chords</th></tr>'
            + "".join(rows) + "</table>")


def _chord_colour(label: str) -> str:
    """Same root, same hue; minor chords darker; N grey, so changes stand out between lanes."""
    if label == "N" or ":" not in label:
        return "#e5e5e5"
    from musigen.chords import ROOTS

    root, quality = label.split(":", 1)
    hue = ROOTS.index(root) / 12 if root in ROOTS else 0.0
    r, g, b = colorsys.hls_to_rgb(hue, 0.62 if quality.startswith("min") else 0.78, 0.6)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def chord_lane(chords: Sequence[Chord], duration: float) -> str:
    """One row of blocks whose widths are proportional to each chord's duration."""
    if duration <= 0 or not chords:
        return '<div class="musigen-lane"><div style="flex: 1">no chords</div></div>'
    blocks = []
    for start, end, label in chords:
        width = max(end - start, 0.0) / duration * 100
        blocks.append(f'<div style="width: {width:.3f}%; background: {_chord_colour(label)}" '
                      f'title="{start:.2f}-{end:.2f} s {html.escape(label)}">'
                      f"{html.escape(label)}</div>")
    return '<div class="musigen-lane">' + "".join(blocks) + "</div>"


def titled_lane(title: str, chords: Sequence[Chord]) -> str:
    """A single chord lane under a heading (a version with nothing to compare against)."""
    end = chords[-1][1] if chords else 0.0
    return f'<div class="musigen-lane-label">{html.escape(title)}</div>' + chord_lane(chords, end)


def chord_agreement(a: Sequence[Chord], b: Sequence[Chord], hop: float = 0.05) -> float:
    """Fraction of time (over the shorter piece) where both readings name the same chord."""
    end = min(a[-1][1] if a else 0.0, b[-1][1] if b else 0.0)
    if end <= 0:
        return 0.0
    times = np.arange(0.0, end, hop) + hop / 2

    def at(chords: Sequence[Chord]) -> list[str]:
        starts = np.array([s for s, _, _ in chords])
        idx = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(chords) - 1)
        return [chords[i][2] for i in idx]

    return float(np.mean([x == y for x, y in zip(at(a), at(b), strict=True)]))


def chord_comparison(source: Sequence[Chord], edit: Sequence[Chord], source_title: str,
                     edit_title: str) -> str:
    """The source's and the edit's chord lanes on one time axis, with their agreement."""
    duration = max(source[-1][1] if source else 0.0, edit[-1][1] if edit else 0.0)
    agree = chord_agreement(source, edit)
    return (f'<div class="musigen-lane-label">{html.escape(source_title)}</div>'
            + chord_lane(source, duration)
            + f'<div class="musigen-lane-label">{html.escape(edit_title)}</div>'
            + chord_lane(edit, duration)
            + f"<div>same chord {agree:.0%} of the time</div>")


def vocabulary_markdown() -> str:
    """The instruments, genres and edit forms the demo models were trained to understand."""
    from musigen.edits import TASKS, TEMPLATES
    from musigen.vocab import (
        GENRE_SYNONYMS,
        GENRES,
        INSTRUMENT_SYNONYMS,
        INSTRUMENTS,
        MOODS,
    )

    def with_synonyms(names: Sequence[str], synonyms: dict[str, str]) -> str:
        parts = []
        for name in names:
            alias = [k for k, v in synonyms.items() if v == name]
            parts.append(f"**{name}**" + (f" ({', '.join(alias[:4])})" if alias else ""))
        return ", ".join(parts)

    forms = "; ".join(f"`{TEMPLATES[t][0].format(a='X', b='Y', g='GENRE', l='X, Y and Z')}`"
                      for t in TASKS)
    return (f"**Instruments:** {with_synonyms(INSTRUMENTS, INSTRUMENT_SYNONYMS)}  \n"
            f"**Genres:** {with_synonyms(GENRES, GENRE_SYNONYMS)}  \n"
            f"**Moods:** {', '.join(MOODS)}  \n"
            f"**Edit instructions:** {forms}")


def spectrogram_png(wav: np.ndarray, sample_rate: int, path: str | os.PathLike[str],
                    title: str = "") -> Path:
    """A log-mel spectrogram of mono audio as a PNG (written atomically)."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from musigen.atomic import atomic_path

    mono = np.asarray(wav, dtype=np.float32).reshape(-1, np.asarray(wav).shape[-1]).mean(0)
    n_fft = 1024 if sample_rate >= 16000 else 512
    mel = librosa.feature.melspectrogram(y=mono, sr=sample_rate, n_fft=n_fft,
                                         hop_length=n_fft // 4, n_mels=64)
    db = librosa.power_to_db(mel + 1e-10, ref=max(float(mel.max()), 1e-10), top_db=80.0)
    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma",
              extent=(0.0, mono.size / sample_rate, 0.0, 64.0))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    ax.set_title(title or "log-mel spectrogram", fontsize=10)
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return target
