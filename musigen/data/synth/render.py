"""Render an arranged piece to per-stem audio and an exact mix, with all its labels.

The mix is computed as the float32 sum of the final stems (after every gain), so stems
always sum to the mix; gains are applied jointly so no per-piece normalisation breaks that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pretty_midi

from musigen.data.synth.captions import make_caption
from musigen.data.synth.composition import Composition
from musigen.data.synth.midi import build_midi
from musigen.data.synth.orchestration import Orchestration
from musigen.data.synth.theory import pitch_name
from musigen.errors import ConfigError, SampleRateError

RENDERERS = ("builtin", "fluidsynth")
#: mix level per role / instrument, dBFS RMS over the frames where the stem sounds
_TARGET_DB = {"drums": -18.0, "bass": -19.0, "melody": -22.0, "chords": -22.0}
_QUIETER = {"pad": -2.5, "strings": -1.0, "organ": -1.0}
_PEAK = 0.89
_FADE_S = 0.05


@dataclass
class RenderedPiece:
    """Audio, stems and exact labels of one piece (times in seconds)."""

    mix: np.ndarray
    stems: dict[str, np.ndarray]
    chords: list[tuple[float, float, str]]
    sections: list[tuple[float, float, str]]
    stem_activity: dict[str, list[tuple[float, float]]]
    midi: pretty_midi.PrettyMIDI
    caption: str
    genre: str
    tempo: float
    key: str
    mood: str
    duration: float
    sample_rate: int
    seed: int = 0
    instruments: list[str] = field(default_factory=list)
    renderer: str = "builtin"


def _frame_rms(x: np.ndarray, hop: int) -> np.ndarray:
    n = len(x) // hop
    if n == 0:
        return np.sqrt(np.mean(x.astype(np.float64) ** 2, keepdims=True))
    fr = x[: n * hop].reshape(n, hop)
    rms = np.sqrt(np.einsum("ij,ij->i", fr, fr, dtype=np.float64) / hop)
    if len(x) > n * hop:
        rms = np.append(rms, np.sqrt(np.mean(x[n * hop :].astype(np.float64) ** 2)))
    return rms


def _active_level(x: np.ndarray, sr: int) -> float:
    """RMS over the frames where the stem actually plays (so sparse parts are not boosted)."""
    rms = _frame_rms(x, max(1, sr // 20))
    if rms.max() <= 0:
        return 0.0
    act = rms > rms.max() * 0.1
    return float(np.sqrt(np.mean(rms[act] ** 2)))


def activity(
    x: np.ndarray,
    sr: int,
    rel_db: float = -40.0,
    floor: float = 1e-3,
    min_gap: float = 0.25,
    min_len: float = 0.05,
) -> list[tuple[float, float]]:
    """Spans (seconds) where a stem sounds: 10 ms frames above an absolute and relative floor."""
    hop = max(1, sr // 100)
    rms = _frame_rms(x, hop)
    if rms.size == 0 or rms.max() <= floor:
        return []
    on = rms > max(floor, rms.max() * 10 ** (rel_db / 20))
    spans: list[list[float]] = []
    dur = len(x) / sr
    idx = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    for s, e in zip(idx[::2], idx[1::2]):
        t0, t1 = s * hop / sr, min(e * hop / sr, dur)
        if spans and t0 - spans[-1][1] < min_gap:
            spans[-1][1] = t1
        else:
            spans.append([t0, t1])
    return [(round(float(a), 3), round(float(b), 3)) for a, b in spans if b - a >= min_len]


def balance(raw: dict[str, np.ndarray], orch: Orchestration, sr: int) -> dict[str, np.ndarray]:
    """Per-stem level by role, one shared headroom gain, an end fade; all in float32."""
    out: dict[str, np.ndarray] = {}
    for inst, x in raw.items():
        lvl = _active_level(x, sr)
        target = 10 ** ((_TARGET_DB[orch.parts[inst].role] + _QUIETER.get(inst, 0.0)) / 20)
        out[inst] = (x * np.float32(target / lvl if lvl > 0 else 0.0)).astype(np.float32)
    n = len(next(iter(raw.values())))
    fade = min(n, int(_FADE_S * sr))
    ramp = np.ones(n, dtype=np.float32)
    ramp[n - fade :] = np.linspace(1.0, 0.0, fade, dtype=np.float32)
    mix = _sum(out)
    peak = float(np.max(np.abs(mix))) if n else 0.0
    g = np.float32(min(1.0, _PEAK / peak) if peak > 0 else 1.0)
    return {k: (v * g * ramp).astype(np.float32) for k, v in out.items()}


def _sum(stems: dict[str, np.ndarray]) -> np.ndarray:
    """The mix: float32 sum of stems in instrument order (the order is part of exactness)."""
    keys = list(stems)
    mix = np.zeros_like(stems[keys[0]])
    for k in keys:
        mix += stems[k]
    return mix


def render(
    composition: Composition,
    orchestration: Orchestration,
    sample_rate: int = 16000,
    renderer: str = "builtin",
) -> RenderedPiece:
    """Audio, stems, MIDI, labels and caption of an arranged composition."""
    if not isinstance(sample_rate, (int, np.integer)) or not 8000 <= int(sample_rate) <= 96000:
        raise SampleRateError(
            f"sample rate must be an integer from 8000 to 96000 Hz, got {sample_rate!r}"
        )
    if renderer not in RENDERERS:
        raise ConfigError(f"unknown renderer {renderer!r}; choose from {', '.join(RENDERERS)}")
    sr = int(sample_rate)
    midi = build_midi(composition, orchestration)
    if renderer == "builtin":
        from musigen.data.synth.builtin import render_stems

        raw = render_stems(composition, orchestration, sr)
    else:
        from musigen.data.synth.fluidsynth import render_stems as fs_render

        raw = fs_render(midi, orchestration, sr, int(round(composition.duration * sr)))
    stems = balance(raw, orchestration, sr)
    mix = _sum(stems)
    act = {k: activity(v, sr) for k, v in stems.items()}
    sounding = [k for k in orchestration.instruments if act[k]]
    caption = make_caption(
        orchestration.genre,
        composition.tempo,
        pitch_name(composition.key_root),
        composition.mode,
        orchestration.mood,
        sounding or list(orchestration.instruments),
        composition.seed,
    )
    return RenderedPiece(
        mix=mix,
        stems=stems,
        chords=composition.chord_times(),
        sections=composition.section_times(),
        stem_activity=act,
        midi=midi,
        caption=caption,
        genre=orchestration.genre,
        tempo=composition.tempo,
        key=composition.key,
        mood=orchestration.mood,
        duration=composition.duration,
        sample_rate=sr,
        seed=composition.seed,
        instruments=sounding,
        renderer=renderer,
    )
