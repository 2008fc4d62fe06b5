"""Edits limited to a time range or a section: the request, its spans, and the splice.

A range edit runs the model on a context window (the span plus `MARGIN_S` each side, cut to
the file), then splices the window's edited samples back into the input:

- outside the span the output *is* the input, sample for sample (copied, never mixed);
- inside, it is the model's edit, faded in and out over `CROSSFADE_S` with equal-power
  (sine/cosine) gains that lie wholly inside the span, so the untouched part stays bit-exact
  and the seams have no step.

The margin gives the U-Net and the chord reader the music on both sides of the span, so the
edit starts and ends in context instead of at a hard cut.  The module imports no torch: the
CLI checks ranges with it before the model loads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from musigen.edits import check_section
from musigen.errors import ConfigError

#: Seconds of context edited on each side of a span (cut to the file's ends).
MARGIN_S = 1.0
#: Seconds of the equal-power cross-fade at each seam, inside the span.
CROSSFADE_S = 0.05
#: The shortest span an edit may cover: room for both fades.
MIN_SPAN_S = 2 * CROSSFADE_S

_CLOCK = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+(?:\.\d*)?)$")


def parse_time(text: str | float | int) -> float:
    """Seconds from "45", "45.5", "0:45" or "1:02:03.5" (h:mm:ss), else a ConfigError."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        s = str(text).strip()
        m = _CLOCK.match(s)
        if m is not None:
            if float(m.group("s")) >= 60 or (m.group("h") is not None and int(m.group("m")) >= 60):
                raise ConfigError(f"time {s!r}: minutes and seconds must be below 60")
            value = (int(m.group("h") or 0) * 3600 + int(m.group("m")) * 60
                     + float(m.group("s")))
        else:
            try:
                value = float(s)
            except ValueError:
                raise ConfigError(
                    f"cannot read the time {s[:40]!r}; give seconds (45.5) or m:ss (0:45)"
                ) from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"a time must be a finite number of seconds >= 0, got {text!r}")
    return value


@dataclass(frozen=True)
class EditRange:
    """Which part of the piece one round edits: a time range, or every span of a section.

    `start`/`end` in seconds (None: the file's start/end); or `section` (one of
    musigen.edits.SECTIONS), never both.
    """

    start: float | None = None
    end: float | None = None
    section: str | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, parse_time(value))
        if self.section is not None:
            check_section(self.section)
            if self.start is not None or self.end is not None:
                raise ConfigError("give a section or a start/end range, not both")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError(f"the range ends ({_clock(self.end)}) before it starts "
                              f"({_clock(self.start)})")

    @property
    def is_whole(self) -> bool:
        return self.start is None and self.end is None and self.section is None

    def spans(self, duration: float,
              sections: list[tuple[float, float, str]] | None = None) -> list[tuple[float, float]]:
        """The spans in seconds this range covers in a piece of `duration` seconds.

        A section needs the piece's `sections` ((start, end, label) list); a section the piece
        does not have, or a range that does not lie inside the file, is a ConfigError.
        """
        if self.section is not None:
            if sections is None:
                raise ConfigError("a section edit needs the piece's sections")
            spans = [(max(0.0, s), min(duration, e)) for s, e, lab in sections
                     if lab == self.section and min(duration, e) - max(0.0, s) > 0]
            if not spans:
                found = sorted({lab for _, _, lab in sections})
                raise ConfigError(f"the piece has no {self.section} (sections found: "
                                  f"{', '.join(found) or 'none'})")
            return merge_spans(spans)
        start = 0.0 if self.start is None else self.start
        end = duration if self.end is None else self.end
        if start >= duration or end > duration + 1e-6:
            raise ConfigError(f"the range {_clock(start)}-{_clock(end)} lies outside the input "
                              f"({_clock(duration)} long)")
        if end <= start:
            raise ConfigError(f"the range ends ({_clock(end)}) before it starts ({_clock(start)})")
        if end - start < MIN_SPAN_S:
            raise ConfigError(f"the range {_clock(start)}-{_clock(end)} is shorter than "
                              f"{MIN_SPAN_S:g} s (two {CROSSFADE_S * 1000:g} ms cross-fades)")
        return [(start, min(end, duration))]

    def to_dict(self) -> dict[str, float | str | None]:
        return {"start": self.start, "end": self.end, "section": self.section}


def merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted spans with touching or overlapping ones joined (two choruses in a row = one)."""
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + 1e-6:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def context_window(span: tuple[float, float], n_samples: int, sample_rate: int,
                   margin_s: float = MARGIN_S) -> tuple[int, int]:
    """Sample bounds [a, b) of the span plus `margin_s` each side, cut to the file."""
    a = max(0, int(math.floor((span[0] - margin_s) * sample_rate)))
    b = min(n_samples, int(math.ceil((span[1] + margin_s) * sample_rate)))
    return a, b


def span_samples(span: tuple[float, float], n_samples: int, sample_rate: int) -> tuple[int, int]:
    """Sample bounds [s, e) of a span in seconds, cut to the file."""
    return (max(0, int(round(span[0] * sample_rate))),
            min(n_samples, int(round(span[1] * sample_rate))))


def splice(original: np.ndarray, edited_window: np.ndarray, window_start: int,
           span: tuple[int, int], fade: int) -> np.ndarray:
    """`original` with samples span[0]:span[1] taken from the edited window, faded.

    `edited_window[i]` is the edit of `original[window_start + i]`.  Within `fade` samples
    of each span end the two are mixed with equal-power gains (cos/sin of a quarter turn),
    so the output starts and ends each span on the input's own sample values; everything
    outside the span is copied from `original` unchanged.
    """
    s, e = span
    if not (window_start <= s < e <= window_start + edited_window.shape[-1]):
        raise ConfigError(f"span {span} lies outside the edited window "
                          f"[{window_start}, {window_start + edited_window.shape[-1]})")
    out = np.array(original, dtype=np.float32, copy=True)
    inside = edited_window[..., s - window_start:e - window_start].astype(np.float32)
    fade = max(0, min(fade, (e - s) // 2))
    gain = np.ones(e - s, dtype=np.float64)
    if fade:
        ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade)
        gain[:fade] = ramp
        gain[e - s - fade:] = ramp[::-1]
    keep = np.sqrt(np.clip(1.0 - gain ** 2, 0.0, 1.0))  # cos where gain is sin: equal power
    out[..., s:e] = (keep * original[..., s:e] + gain * inside).astype(np.float32)
    return out


def _clock(seconds: float) -> str:
    """m:ss.s for messages."""
    m, s = divmod(max(0.0, seconds), 60.0)
    return f"{int(m)}:{s:04.1f}"
