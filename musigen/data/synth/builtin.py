"""The built-in renderer: arranged parts -> dry per-instrument audio plus room and drive.

Pure numpy/scipy with no system dependency, so the corpus builds anywhere. Notes come
from :mod:`instruments` and :mod:`drumkit`; this module only places them in time and adds
the per-stem effects (guitar overdrive, a shared synthetic room).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy.signal import lfilter

from musigen.data.synth.composition import Composition
from musigen.data.synth.drumkit import kit
from musigen.data.synth.instruments import note_wave
from musigen.data.synth.orchestration import Orchestration

#: how much of each instrument goes to the room (times the genre's reverb amount)
REVERB_SEND: dict[str, float] = {
    "drums": 0.25,
    "bass": 0.05,
    "piano": 0.7,
    "guitar": 0.6,
    "organ": 0.5,
    "strings": 1.0,
    "brass": 0.6,
    "lead": 0.7,
    "pad": 1.0,
}


@lru_cache(maxsize=8)
def room_ir(sr: int, rt60: float) -> np.ndarray:
    """A synthetic room impulse response: pre-delay, then darkening exponential noise."""
    n = int(rt60 * sr)
    rng = np.random.default_rng(1234)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir = lfilter([0.35], [1, -0.65], ir)  # high frequencies die first
    pre = int(0.012 * sr)
    ir[:pre] = 0.0
    return (ir / np.sqrt(np.sum(ir**2))).astype(np.float32)


@lru_cache(maxsize=8)
def _room_spectrum(sr: int, rt60: float, n_fft: int) -> np.ndarray:
    return sfft.rfft(room_ir(sr, rt60), n_fft)


def reverb(x: np.ndarray, sr: int, rt60: float) -> np.ndarray:
    """Wet signal of the room, cut to len(x); float32 FFTs at a fast size (the hot spot)."""
    n = len(x)
    n_fft = sfft.next_fast_len(n + int(rt60 * sr), real=True)
    return sfft.irfft(sfft.rfft(x, n_fft) * _room_spectrum(sr, rt60, n_fft), n_fft)[:n]


def _place(buf: np.ndarray, wave: np.ndarray, start: int) -> None:
    if start >= len(buf) or start + len(wave) <= 0:
        return
    if start < 0:
        wave, start = wave[-start:], 0
    m = min(len(wave), len(buf) - start)
    buf[start : start + m] += wave[:m]


def render_part(comp: Composition, orch: Orchestration, inst: str, sr: int) -> np.ndarray:
    """Audio of one part at `sr`, exactly `comp.duration` long, effects included."""
    n = int(round(comp.duration * sr))
    spb = comp.seconds_per_beat
    buf = np.zeros(n, dtype=np.float32)
    part = orch.parts[inst]
    if inst == "drums":
        sounds = kit(sr)
        for note in part.notes:
            _place(
                buf,
                sounds[note.pitch] * np.float32((note.velocity / 127.0) ** 1.3),
                int(round(note.start * spb * sr)),
            )
    else:
        for note in part.notes:
            start = note.start * spb
            if start >= comp.duration:
                continue
            wave = note_wave(inst, note.pitch, note.velocity, note.duration * spb, sr)
            _place(buf, wave, int(round(start * sr)))
    if inst == "guitar" and orch.drive > 0:
        k = 1.0 + 12.0 * orch.drive
        peak = float(np.max(np.abs(buf))) or 1.0
        buf = np.tanh(buf / peak * k).astype(np.float32) * np.float32(peak / np.tanh(k) * 0.6)
        buf = lfilter([0.5, 0.5], [1.0], buf).astype(np.float32)  # cabinet-ish top cut
    send = REVERB_SEND[inst] * orch.reverb
    if send > 0:
        wet = reverb(buf, sr, round(0.8 + 2.2 * orch.reverb, 3))
        buf = buf + np.float32(send * 0.5) * wet.astype(np.float32)
    return buf


def render_stems(comp: Composition, orch: Orchestration, sr: int) -> dict[str, np.ndarray]:
    """Dry-level (un-normalised) stems for every instrument of the orchestration."""
    return {inst: render_part(comp, orch, inst, sr) for inst in orch.instruments}
