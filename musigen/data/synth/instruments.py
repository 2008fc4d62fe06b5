"""Built-in pitched instruments: one distinct, plausible timbre per instrument class.

Every note is a slice of a cached "held note" waveform for (instrument, pitch, velocity
layer, length bucket) followed by a release fade, so rendering costs a few array adds per
note. Synthesis methods per class (why: an instrument classifier and a CLAP model learn
classes from these sounds, so each needs its own spectral and temporal signature):

- bass: plucked, bright-to-dark harmonic crossfade, fast decay of the upper partials;
- piano: inharmonic partials, two-stage decay, hammer thump, slightly detuned unison;
- guitar: Karplus-Strong string (scipy lfilter) with a fractional-delay loop;
- organ: drawbar additive tones with sub-octave, key click and Leslie tremolo;
- strings: detuned sawtooth ensemble, bow attack, delayed vibrato, body formant;
- brass: brightness that follows the swell, pitch scoop, "blat" formant;
- lead: detuned square/pulse synth with vibrato;
- pad: many detuned dark saws, slow attack and long release.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
from scipy.signal import lfilter

_TABLE_BITS = 13
TABLE = 2**_TABLE_BITS
_CACHE: dict[tuple, np.ndarray] = {}
_CACHE_BYTES = [0]
_CACHE_LIMIT = 400 * 2**20

#: seconds of release after note-off per instrument
RELEASE: dict[str, float] = {
    "bass": 0.05,
    "piano": 0.12,
    "guitar": 0.06,
    "organ": 0.05,
    "strings": 0.25,
    "brass": 0.08,
    "lead": 0.08,
    "pad": 0.9,
}


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def _noise(key: tuple, n: int) -> np.ndarray:
    """Deterministic white noise per key (independent of call order and PYTHONHASHSEED)."""
    rng = np.random.default_rng(zlib.crc32(repr(key).encode()))
    return rng.standard_normal(n).astype(np.float32)


def _table(amps: np.ndarray) -> np.ndarray:
    """One period of a band-limited wave with harmonic amplitudes `amps` (index 0 = f0)."""
    spec = np.zeros(TABLE // 2 + 1, dtype=np.complex128)
    k = min(len(amps), TABLE // 2 - 1)
    spec[1 : k + 1] = amps[:k] * (-1j) * TABLE / 2
    return np.fft.irfft(spec, TABLE).astype(np.float32)


def _osc(
    table: np.ndarray, freq: np.ndarray | float, n: int, sr: int, phase0: float = 0.0
) -> np.ndarray:
    """Wavetable oscillator: a 32-bit fixed-point phase that wraps for free, 8192-point table.

    Integer phase accumulation is exact over any note length and several times faster than
    float phase with modulo and interpolation (the oscillator is the renderer's hot spot).
    """
    start = np.uint32(int(phase0 % 1.0 * 2**32))
    if np.isscalar(freq):
        inc = np.uint32(int(round(float(freq) / sr * 2**32)) % 2**32)
        phase = np.arange(n, dtype=np.uint32) * inc + start
    else:
        incs = np.round(np.asarray(freq, dtype=np.float64) / sr * 2**32).astype(np.int64)
        phase = np.cumsum(incs.astype(np.uint32), dtype=np.uint32) + start
    return table[phase >> np.uint32(32 - _TABLE_BITS)]


def _n_harm(f0: float, sr: int, cap: int = 64) -> int:
    return max(1, min(cap, int(0.45 * sr / f0)))


def _formant(freqs: np.ndarray, center: float, width: float, gain: float) -> np.ndarray:
    return 1.0 + gain * np.exp(-0.5 * ((freqs - center) / width) ** 2)


def _adsr(n: int, sr: int, attack: float, decay: float = 0.0, sustain: float = 1.0) -> np.ndarray:
    t = np.arange(n, dtype=np.float32) / sr
    env = np.minimum(1.0, t / max(attack, 1e-4))
    if decay > 0:
        env = env * (sustain + (1 - sustain) * np.exp(-np.maximum(t - attack, 0) / decay))
    return env.astype(np.float32)


# ----------------------------------------------------------------------------- voices


def _bass(p: int, n: int, sr: int, layer: int) -> np.ndarray:
    f0 = midi_hz(p)
    k = np.arange(1, _n_harm(f0, sr, 24) + 1)
    bright = _table((1.0 / k**1.1) * (1.0 + 0.2 * layer))
    dark = _table(1.0 / k**2.6)
    t = np.arange(n, dtype=np.float32) / sr
    x = np.exp(-t / 0.12)
    y = x * _osc(bright, f0, n, sr) + (1 - x) * _osc(dark, f0, n, sr)
    return y * _adsr(n, sr, 0.004, 0.9, 0.25)


def _piano(p: int, n: int, sr: int, layer: int) -> np.ndarray:
    f0 = midi_hz(p)
    K = _n_harm(f0, sr, 14)
    t = np.arange(n, dtype=np.float32) / sr
    B = 0.0004 * 2 ** ((p - 60) / 24)
    k = np.arange(1, K + 1, dtype=np.float32)
    fk = f0 * k * np.sqrt(1 + B * k**2)
    keep = fk < 0.45 * sr
    k, fk = k[keep], fk[keep]
    hardness = 1.6 - 0.2 * layer
    amps = (1.0 / k**hardness) * np.abs(np.sin(np.pi * k / 7.3)) + 0.02
    tau = (2.8 * 2 ** (-(p - 48) / 18)) / (1 + 0.35 * (k - 1))
    y = np.zeros(n, dtype=np.float32)
    for a, f, ta in zip(amps, fk, tau):
        env = 0.65 * np.exp(-t / ta) + 0.35 * np.exp(-t / (ta * 0.12))
        y += (
            a * env * (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(2 * np.pi * f * 1.0012 * t))
        ).astype(np.float32)
    thump = _noise(("piano", p), min(n, int(0.012 * sr)))
    thump = lfilter([0.15], [1, -0.85], thump).astype(np.float32) * np.linspace(
        1, 0, len(thump), dtype=np.float32
    )
    y[: len(thump)] += 0.4 * thump
    return y * _adsr(n, sr, 0.002)


def _guitar(p: int, n: int, sr: int, layer: int) -> np.ndarray:
    f0 = midi_hz(p)
    period = sr / f0
    L = max(2, int(np.floor(period - 0.5)))
    frac = period - 0.5 - L
    g = 0.996 ** (110.0 / max(f0, 40.0)) if f0 > 110 else 0.997
    # loop: linear fractional delay convolved with the two-point average -> 3 taps
    a = np.zeros(L + 3)
    a[0] = 1.0
    a[L] -= g * 0.5 * (1 - frac)
    a[L + 1] -= g * 0.5
    a[L + 2] -= g * 0.5 * frac
    burst = _noise(("guitar", p, layer), L + 2)
    # pick brightness by velocity layer; pluck position comb for a guitar-like spectrum
    alpha = 0.12 + 0.07 * layer + 0.1 * min(1.0, f0 / 400.0)
    burst = lfilter([alpha], [1, alpha - 1], burst).astype(np.float32)
    pos = max(1, int(L * 0.18))
    burst[pos:] -= 0.7 * burst[:-pos]
    x = np.zeros(n, dtype=np.float32)
    x[: min(n, len(burst))] = burst[:n]
    y = lfilter([1.0], a, x).astype(np.float32)
    body = lfilter([1, 0, -1], [1, -1.8 * np.cos(2 * np.pi * 110 / sr), 0.81], y)  # body resonance
    return (0.7 * y + 0.08 * body).astype(np.float32)


def _organ(p: int, n: int, sr: int, layer: int) -> np.ndarray:
    f0 = midi_hz(p) / 2  # table fundamental is the 16' sub-octave
    draw = {1: 0.5, 2: 1.0, 3: 0.7, 4: 0.6, 6: 0.35, 8: 0.3, 12: 0.12, 16: 0.08}
    amps = np.zeros(_n_harm(f0, sr, 32))
    for h, a in draw.items():
        if h <= len(amps):
            amps[h - 1] = a
    t = np.arange(n, dtype=np.float32) / sr
    vib = f0 * (1 + 0.002 * np.sin(2 * np.pi * 6.1 * t))
    y = _osc(_table(amps), vib, n, sr)
    y *= 1 + 0.18 * np.sin(2 * np.pi * 6.1 * t + 1.0)  # Leslie tremolo
    click = _noise(("organ", p), min(n, int(0.006 * sr))) * 0.15
    y[: len(click)] += click
    return y * _adsr(n, sr, 0.006)


def _strings(p: int, n: int, sr: int, layer: int) -> np.ndarray:
    f0 = midi_hz(p)
    k = np.arange(1, _n_harm(f0, sr, 40) + 1)
    amps = (
        (1.0 / k**1.15) * _formant(k * f0, 1400.0, 700.0, 1.5) * _formant(k * f0, 500.0, 150.0, 0.8)
    )
    tab = _table(amps)
    t = np.arange(n, dtype=np.float32) / sr
    vib_depth = 0.004 * np.minimum(1.0, np.maximum(0.0, t - 0.25) / 0.4)
    y = np.zeros(n, dtype=np.float32)
    for i, (cents, rate) in enumerate(((-7, 5.3), (0, 5.7), (6, 5.0))):
        f = f0 * 2 ** (cents / 1200) * (1 + vib_depth * np.sin(2 * np.pi * rate * t + i))
        y += _osc(tab, f, n, sr, phase0=0.31 * i)
    bow = _noise(("strings", p), n) * 0.02 * np.exp(-t / 0.15)
    return (y / 3 + bow) * _adsr(n, sr, 0.12 + 0.03 * (2 - layer))


def _brass(p: int, n: int, sr: int, layer: int) -> np.ndarray:
    f0 = midi_hz(p)
    k = np.arange(1, _n_harm(f0, sr, 40) + 1)
    fk = k * f0
    rolloff = np.exp(-((fk / 3800.0) ** 2))  # brass energy stops around 4 kHz
    bright = _table((1.0 / k**0.9) * _formant(fk, 1050.0, 380.0, 3.0) * rolloff)
    dark = _table((1.0 / k**2.0) * _formant(fk, 700.0, 300.0, 1.0))
    t = np.arange(n, dtype=np.float32) / sr
    env = _adsr(n, sr, 0.05, 0.4, 0.8)
    swell = np.clip(env * (0.6 + 0.15 * layer), 0, 1) * np.exp(-t / 1.5) + 0.25
    swell = np.clip(swell, 0, 1)
    scoop = (
        f0 * 2 ** ((-40 * np.exp(-t / 0.035)) / 1200) * (1 + 0.003 * np.sin(2 * np.pi * 5.2 * t))
    )
    y = swell * _osc(bright, scoop, n, sr) + (1 - swell) * _osc(dark, scoop, n, sr)
    return y * env


def _lead(p: int, n: int, sr: int, layer: int) -> np.ndarray:
    f0 = midi_hz(p)
    k = np.arange(1, _n_harm(f0, sr, 48) + 1)
    square = _table(np.where(k % 2 == 1, 1.0 / k**1.25, 0.15 / k))
    t = np.arange(n, dtype=np.float32) / sr
    vib = 1 + 0.006 * np.minimum(1.0, t / 0.3) * np.sin(2 * np.pi * 5.5 * t)
    y = _osc(square, f0 * vib, n, sr) + 0.6 * _osc(square, f0 * 1.005 * vib, n, sr, 0.25)
    return y * 0.6 * _adsr(n, sr, 0.01, 0.3, 0.85)


def _pad(p: int, n: int, sr: int, layer: int) -> np.ndarray:
    f0 = midi_hz(p)
    k = np.arange(1, _n_harm(f0, sr, 24) + 1)
    tab = _table(1.0 / k**1.9)
    t = np.arange(n, dtype=np.float32) / sr
    y = np.zeros(n, dtype=np.float32)
    for i, cents in enumerate((-14, -6, 0, 7, 15)):
        y += _osc(tab, f0 * 2 ** (cents / 1200), n, sr, phase0=0.17 * i)
    y *= 1 + 0.12 * np.sin(2 * np.pi * 0.3 * t)
    return y / 3 * _adsr(n, sr, 0.7)


VOICES: dict[str, Callable[[int, int, int, int], np.ndarray]] = {
    "bass": _bass,
    "piano": _piano,
    "guitar": _guitar,
    "organ": _organ,
    "strings": _strings,
    "brass": _brass,
    "lead": _lead,
    "pad": _pad,
}
#: decaying instruments never need a cached note longer than this (seconds)
_MAX_DECAY = {"bass": 3.0, "piano": 4.0, "guitar": 3.0}


def held_note(inst: str, pitch: int, layer: int, n: int, sr: int) -> np.ndarray:
    """Waveform of `inst` holding `pitch` for at least n samples (cached by length bucket)."""
    seconds = n / sr
    cap = _MAX_DECAY.get(inst)
    bucket = 0.5
    while bucket < seconds and (cap is None or bucket < cap):
        bucket *= 2
    key = (inst, int(pitch), int(layer), bucket, sr)
    wav = _CACHE.get(key)
    if wav is None:
        wav = VOICES[inst](int(pitch), int(round(bucket * sr)), sr, layer).astype(np.float32)
        # equal peak level across pitches, so chords and melodies are evenly balanced
        head = wav[: max(1, int(0.3 * sr))]
        wav *= np.float32(1.0 / max(float(np.max(np.abs(head))), 1e-6))
        if _CACHE_BYTES[0] + wav.nbytes > _CACHE_LIMIT:
            _CACHE.clear()
            _CACHE_BYTES[0] = 0
        _CACHE[key] = wav
        _CACHE_BYTES[0] += wav.nbytes
    return wav


def note_wave(inst: str, pitch: int, velocity: int, dur_s: float, sr: int) -> np.ndarray:
    """One note: held for `dur_s`, then released; amplitude follows velocity."""
    n_hold = max(1, int(round(dur_s * sr)))
    n_rel = max(1, int(round(RELEASE[inst] * sr)))
    layer = min(3, velocity // 32)
    base = held_note(inst, pitch, layer, n_hold + n_rel, sr)
    total = n_hold + n_rel
    out = np.zeros(total, dtype=np.float32)
    m = min(total, len(base))
    out[:m] = base[:m]
    # exponential-ish release from the note-off level
    rel = np.exp(-np.arange(n_rel, dtype=np.float32) / (n_rel / 5.0))
    out[n_hold:] *= rel
    return out * ((velocity / 127.0) ** 1.4)
