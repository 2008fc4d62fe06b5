"""Built-in drum kit: synthesized one-shots for the General MIDI drum keys the grooves use.

Each hit is pre-rendered once per sample rate (a few dozen milliseconds of numpy work)
and then added at every onset, which keeps drums nearly free at render time.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfilt

from musigen.data.synth import drums as D


def _noise(name: str, n: int) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(name.encode())).standard_normal(n)


def _band(x: np.ndarray, sr: int, lo: float | None, hi: float | None) -> np.ndarray:
    nyq = sr / 2
    hi = min(hi, nyq * 0.95) if hi else None
    if lo and hi and lo < hi:
        sos = butter(2, [lo / nyq, hi / nyq], btype="band", output="sos")
    elif lo:
        sos = butter(2, min(lo, nyq * 0.9) / nyq, btype="high", output="sos")
    elif hi:
        sos = butter(2, hi / nyq, btype="low", output="sos")
    else:
        return x
    return sosfilt(sos, x)


def _metal(n: int, sr: int) -> np.ndarray:
    """Six detuned square-ish partials (the classic analog cymbal recipe)."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0):
        for h in (1, 3, 5):
            if f * h * 1.7 < sr / 2:
                out += np.sin(2 * np.pi * f * h * 1.7 * t) / h
    return out


@lru_cache(maxsize=16)
def kit(sr: int) -> dict[int, np.ndarray]:
    """GM drum key -> one-shot waveform (float32) at sample rate `sr`."""

    def t_(sec: float) -> np.ndarray:
        return np.arange(int(sec * sr)) / sr

    out: dict[int, np.ndarray] = {}
    t = t_(0.35)
    f = 46 + 120 * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.085)  # short: little pitch
    kick[: int(0.004 * sr)] += _band(_noise("kick", int(0.004 * sr)), sr, 1000, None) * 0.3
    out[D.KICK] = kick * 1.1

    t = t_(0.3)
    body = (np.sin(2 * np.pi * 185 * t) + 0.6 * np.sin(2 * np.pi * 330 * t)) * np.exp(-t / 0.03)
    snares = _band(_noise("snare", len(t)), sr, 1500, 7500) * np.exp(-t / 0.09)
    out[D.SNARE] = 0.55 * body + 0.9 * snares

    t = t_(0.06)
    out[D.RIM] = (
        np.sin(2 * np.pi * 830 * t) * 0.6 + _band(_noise("rim", len(t)), sr, 1500, 4000)
    ) * np.exp(-t / 0.012)

    t = t_(0.3)
    env = np.exp(-t / 0.09)
    for d in (0.0, 0.011, 0.022):
        env = np.maximum(env, np.where(t >= d, np.exp(-(t - d) / 0.006), 0))
    out[D.CLAP] = _band(_noise("clap", len(t)), sr, 900, 2600) * env * 1.3

    t = t_(0.12)
    hat = _band(_noise("hat", len(t)) * 0.7 + _metal(len(t), sr) * 0.4, sr, 5000, None)
    out[D.HAT] = hat * np.exp(-t / 0.025) * 0.8
    out[D.PEDAL] = hat * np.exp(-t / 0.015) * 0.5
    t = t_(0.7)
    ohat = _band(_noise("ohat", len(t)) * 0.7 + _metal(len(t), sr) * 0.4, sr, 5000, None)
    out[D.OPEN] = ohat * np.exp(-t / 0.22) * 0.7

    t = t_(2.0)
    crash = _band(_noise("crash", len(t)) + 0.3 * _metal(len(t), sr), sr, 3000, None)
    out[D.CRASH] = crash * np.exp(-t / 0.9) * 0.7
    t = t_(1.2)
    bell = sum(
        np.sin(2 * np.pi * fr * t) * a
        for fr, a in ((2950, 0.5), (4100, 0.3), (5230, 0.2))
        if fr < sr / 2
    )
    ride = _band(_noise("ride", len(t)), sr, 4000, None) * 0.4 + 0.35 * np.asarray(bell)
    out[D.RIDE] = ride * np.exp(-t / 0.55) * 0.55

    for key, f0 in ((D.TOM_LO, 95.0), (D.TOM_MID, 130.0), (D.TOM_HI, 175.0)):
        t = t_(0.5)
        f = f0 * (1 + 0.4 * np.exp(-t / 0.03))
        tom = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.22)
        tom += _band(_noise(f"tom{key}", len(t)), sr, 200, 3000) * np.exp(-t / 0.02) * 0.2
        out[key] = tom

    for key, wav in out.items():
        fade = min(len(wav), int(0.005 * sr))
        wav[-fade:] *= np.linspace(1, 0, fade)
        out[key] = wav.astype(np.float32)
    return out
