"""Report writer: metrics.json, a Markdown table and a self-contained HTML listening page.

The HTML page uses only relative paths (audio/ and img/ beside index.html), so the whole
report folder can be zipped, moved or opened from disk in any browser.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musigen.atomic import write_json, write_text
from musigen.eval.harness.figures import Segments, spectrogram_png, timeline_html

Cell = str | float | int | None


@dataclass
class Table:
    """A metric table: one row per (task, system) or per system."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]


@dataclass
class Track:
    """One clip on the listening page, with optional chord and thought timelines."""

    label: str
    wav: np.ndarray
    sample_rate: int
    chords: Segments | None = None
    thoughts: Segments | None = None
    note: str = ""
    is_output: bool = False  # a system's output (gets the thought-timeline slot)


@dataclass
class ListenItem:
    id: str
    title: str
    subtitle: str
    tracks: list[Track]
    thought_slot: bool = False  # show "no thought plan" when a track has none (generation)


@dataclass
class ReportPaths:
    root: Path
    metrics: Path
    markdown: Path
    html: Path
    files: list[Path] = field(default_factory=list)


def fmt(value: Cell, digits: int = 3) -> str:
    """Table formatting: None/NaN -> n/a, floats to `digits` significant places."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.2f}" if abs(value) >= 10 else f"{value:.{digits}f}"
    return str(value)


def markdown_table(table: Table) -> str:
    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>"
                   for row in table.rows)
    return f"<h2>{html.escape(table.title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px} h2{font-size:17px;margin-top:28px} .notes{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:12px;margin:8px 0} td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3} td:first-child,td:nth-child(2){text-align:left}
.item{border:1px solid #ddd;border-radius:6px;padding:10px 14px;margin:14px 0}
.item h3{margin:0 0 2px 0;font-size:15px} .sub{color:#666;font-size:12px;margin-bottom:8px}
.tracks{display:flex;flex-wrap:wrap;gap:12px} .track-card{width:390px}
.track-card b{font-size:13px} audio{width:384px;height:32px} img{width:384px;display:block}
.timeline{display:flex;align-items:center;margin:3px 0;font-size:10px}
.tl-cap{width:54px;color:#666} .track{position:relative;height:18px;flex:1;background:#f7f7f7;border:1px solid #e3e3e3}
.seg{position:absolute;top:0;height:18px;overflow:hidden;white-space:nowrap;font-size:10px;line-height:18px;
     border-right:1px solid #fff;box-sizing:border-box;padding-left:2px}
.empty{color:#999;font-size:11px;font-style:italic}
"""


def _track_html(item: ListenItem, track: Track, root: Path, files: list[Path]) -> str:
    from musigen.audio import save_audio

    stem = f"{_slug(item.id)}__{_slug(track.label)}"
    audio_rel, img_rel = f"audio/{stem}.wav", f"img/{stem}.png"
    wav = np.asarray(track.wav, dtype=np.float32)
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    safe = wav / peak * 0.99 if peak > 0.99 else wav  # keep the page's audio unclipped
    files.append(save_audio(root / audio_rel, safe[None, :] if safe.size else np.zeros((1, 1), np.float32),
                            track.sample_rate, subtype="PCM_16"))
    files.append(spectrogram_png(wav, track.sample_rate, root / img_rel))
    duration = wav.shape[-1] / track.sample_rate
    parts = [f"<b>{html.escape(track.label)}</b>",
             f'<audio controls preload="metadata" src="{audio_rel}"></audio>',
             f'<img src="{img_rel}" alt="spectrogram of {html.escape(track.label)}">']
    if track.chords is not None:
        parts.append(timeline_html(track.chords, duration, "chords"))
    if track.thoughts is not None:
        parts.append(timeline_html(track.thoughts, duration, "thoughts"))
    elif item.thought_slot and track.is_output:
        parts.append('<div class="empty">no thought plan from this system</div>')
    if track.note:
        parts.append(f'<div class="sub">{html.escape(track.note)}</div>')
    return '<div class="track-card">' + "".join(parts) + "</div>"


def write_report(out_dir: str | os.PathLike[str], title: str, metrics: dict[str, Any],
                 tables: Sequence[Table], listen: Sequence[ListenItem], notes: Sequence[str]) -> ReportPaths:
    """Write metrics.json, report.md and index.html (+ audio/, img/) into `out_dir`."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    metrics_path = write_json(root / "metrics.json", metrics)
    md = [f"# {title}", ""] + [f"- {n}" for n in notes] + [""] + [markdown_table(t) for t in tables]
    md_path = write_text(root / "report.md", "\n".join(md))
    cards = []
    for item in listen:
        tracks = "".join(_track_html(item, t, root, files) for t in item.tracks)
        cards.append(f'<div class="item"><h3>{html.escape(item.title)}</h3>'
                     f'<div class="sub">{html.escape(item.subtitle)}</div><div class="tracks">{tracks}</div></div>')
    page = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><ul class=\"notes\">"
        + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"
        + "".join(_html_table(t) for t in tables)
        + "<h2>Listen</h2>" + "".join(cards)
        + '<p class="notes">Full numbers: <a href="metrics.json">metrics.json</a> · '
          '<a href="report.md">report.md</a></p></body></html>'
    )
    html_path = write_text(root / "index.html", page)
    return ReportPaths(root, metrics_path, md_path, html_path, files)
