"""The demo's actions as plain functions: generate, start an edit history, edit, restore, analyze.

They take what the page's widgets hold (strings, numbers, file paths, the session's
:class:`EditHistory`) and return dataclasses of files and HTML fragments, raising a
:class:`MusigenError` with a one-line message for anything a user can get wrong.  The UI
(:mod:`musigen.demo_app.ui`) shows that message in the page; :func:`describe_error` is how it
words any other exception, so no traceback ever reaches the browser.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musigen.demo_app import render
from musigen.demo_app.history import Chords, EditHistory
from musigen.demo_app.models import DemoModels
from musigen.errors import AudioError, ConfigError, MusigenError
from musigen.musicot.analysis import SegmentAnalysis

#: Called with (fraction done in [0, 1], what is happening) while a handler works.
ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class DemoLimits:
    """What the demo accepts; larger requests are refused as typos, not run for hours on a CPU."""

    max_duration_s: float = 60.0  # generated length
    max_input_s: float = 300.0  # uploaded pieces (edit source, reference, analysis)
    max_upload_mb: float = 50.0  # uploaded file size (a 5-minute stereo WAV at 44.1 kHz)
    max_steps: int = 200  # editing sampler steps


DEFAULT_LIMITS = DemoLimits()


@dataclass(frozen=True)
class GenerateOutput:
    audio_path: Path
    spectrogram_path: Path
    segments: list[SegmentAnalysis]  # the plan's tags per segment, with the audio's chords
    timeline_html: str
    message: str


@dataclass(frozen=True)
class EditOutput:
    history: EditHistory
    comparison_html: str  # chord lanes of the source and the edit on one time axis
    message: str


@dataclass(frozen=True)
class AnalyzeOutput:
    segments: list[SegmentAnalysis]
    chords: list[tuple[float, float, str]]
    spectrogram_path: Path
    timeline_html: str
    chords_html: str
    message: str


def describe_error(exc: BaseException) -> str:
    """One line for the page: the message of a user error, the type of anything else."""
    if isinstance(exc, MusigenError):
        return str(exc)
    return (f"internal error ({type(exc).__name__}: {exc}); this is a bug, the server log has "
            "the details")


# ----------------------------------------------------------------------------- input checks


def _number(name: str, value: Any, minimum: float = 0.0, maximum: float = math.inf) -> float:
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        raise ConfigError(f"{name} is empty; enter a number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or not minimum <= x <= maximum:
        bound = f"between {minimum:g} and {maximum:g}" if math.isfinite(maximum) else f">= {minimum:g}"
        raise ConfigError(f"{name} must be {bound}, got {value}")
    return x


def _integer(name: str, value: Any, minimum: int, maximum: int) -> int:
    x = _number(name, value, minimum, maximum)
    if x != int(x):
        raise ConfigError(f"{name} must be a whole number, got {value}")
    return int(x)


def check_duration(duration: Any, limits: DemoLimits) -> float:
    """Seconds to generate: a positive number no larger than the demo's limit."""
    d = _number("duration", duration, 0.0, math.inf)
    if d <= 0:
        raise ConfigError(f"duration must be more than 0 seconds, got {duration}")
    if d > limits.max_duration_s:
        raise ConfigError(f"duration {d:g} s is over this demo's maximum of "
                          f"{limits.max_duration_s:g} s")
    return d


def load_piece(path: str | Path | None, what: str, limits: DemoLimits) -> tuple[np.ndarray, int]:
    """Read an uploaded file as audio, refusing missing, corrupt, empty and over-long ones."""
    from musigen.audio import audio_info, load_audio

    if path is None or not str(path).strip():
        raise AudioError(f"no {what} given: upload an audio file first")
    name = Path(str(path)).name
    size = Path(str(path)).stat().st_size if Path(str(path)).is_file() else 0
    if size > limits.max_upload_mb * 1e6:  # before a byte of it is decoded
        raise AudioError(f"the {what} {name} is {size / 1e6:.0f} MB; this demo takes files up "
                         f"to {limits.max_upload_mb:g} MB")
    try:
        seconds = audio_info(path).duration  # the header only: a long file is not decoded
        if seconds > limits.max_input_s:
            raise AudioError(f"the {what} {name} is {seconds:.0f} s long; this demo takes at "
                             f"most {limits.max_input_s:g} s")
        wav, sr = load_audio(path)
    except AudioError as exc:  # name the file as the user knows it, not the server's cache path
        raise type(exc)(str(exc).replace(str(path), name)) from None
    return wav, sr


def _tell(progress: ProgressFn | None, fraction: float, text: str) -> None:
    if progress is not None:
        progress(fraction, text)


def _new_path(out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / f"{stem}_{uuid.uuid4().hex[:10]}.wav"


def _cut(chords: list[tuple[float, float, str]], start: float, end: float) -> list[tuple[float, float, str]]:
    return [(max(s, start), min(e, end), lab) for s, e, lab in chords if s < end and e > start]


def _chords_of(wav: np.ndarray, sr: int) -> list[tuple[float, float, str]]:
    from musigen.chords import recognize_chords

    return recognize_chords(np.asarray(wav, dtype=np.float32).reshape(-1, wav.shape[-1]).mean(0), sr)


# ----------------------------------------------------------------------------- generate


def generate(models: DemoModels, out_dir: Path, prompt: str, reference: str | None,
             duration: Any, seed: Any, thought_temperature: Any, audio_temperature: Any,
             thought_cfg: Any, audio_cfg: Any, limits: DemoLimits = DEFAULT_LIMITS,
             progress: ProgressFn | None = None) -> GenerateOutput:
    """Text (+ optional style reference) -> a WAV with provenance, its spectrogram and plan."""
    from musigen.audio import save_audio

    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("the prompt is empty; describe the music, e.g. 'calm jazz with piano'")
    seconds = check_duration(duration, limits)
    seed_value = _integer("seed", seed, 0, 2**31 - 1)
    overrides = {"thought_temperature": _number("plan temperature", thought_temperature, 0, 10),
                 "audio_temperature": _number("audio temperature", audio_temperature, 0, 10),
                 "thought_cfg": _number("plan CFG scale", thought_cfg, 0, 50),
                 "audio_cfg": _number("audio CFG scale", audio_cfg, 0, 50)}
    ref = load_piece(reference, "style reference", limits) if reference else None
    _tell(progress, 0.02, "loading the generation model")
    pipe = models.generator()
    params = dataclasses.replace(pipe.config.sampling, **overrides)
    _tell(progress, 0.05, "planning and writing the piece")
    result = pipe(prompt.strip(), ref=None if ref is None else ref[0],
                  ref_sample_rate=None if ref is None else ref[1], duration=seconds,
                  seed=seed_value, params=params, progress=progress is not None)
    audio, sr = result.audio[0], result.sample_rate
    _tell(progress, 0.9, "reading the chords and drawing the spectrogram")
    chords = _chords_of(audio, sr)
    segments = [dataclasses.replace(seg, chords=_cut(chords, seg.start, seg.end))
                for seg in result.analysis[0]]
    path = save_audio(_new_path(out_dir, "generated"), audio[None], sr, provenance={
        "command": "demo generate", "prompt": prompt.strip(), "seed": seed_value,
        "model": str(models.paths.gen_dir()), "reference": None if ref is None else str(reference),
        "parameters": result.parameters, "plan": result.thoughts[0],
        "analysis": [seg.to_dict() for seg in segments]})
    png = render.spectrogram_png(audio, sr, path.with_suffix(".png"), title=prompt.strip()[:80])
    text = (f"generated {seconds:g} s at {sr} Hz with seed {seed_value}; the plan has "
            f"{len(segments)} segment(s)" + (" and followed the style reference" if ref else ""))
    return GenerateOutput(path, png, segments,
                          render.timeline_table(segments, "the plan, read back as tags"),
                          render.message(text))


# ----------------------------------------------------------------------------- edit


def start_history(path: str | Path | None, label: str,
                  limits: DemoLimits = DEFAULT_LIMITS) -> EditHistory:
    """A new history whose v0 is `path` (an upload or the generated piece), checked first."""
    load_piece(path, "piece to edit", limits)
    return EditHistory.start(str(path), label)


def _ensure_chords(history: EditHistory, index: int) -> tuple[EditHistory, Chords]:
    from musigen.audio import load_audio

    version = history.versions[index]
    if version.chords is not None:
        return history, version.chords
    wav, sr = load_audio(version.path)
    chords = tuple(_chords_of(wav, sr))
    return history.with_chords(index, chords), chords


def compare(history: EditHistory, index: int) -> tuple[EditHistory, str]:
    """Chord lanes of version `index` and of the version it was edited from (if any)."""
    history, chords = _ensure_chords(history, index)
    version = history.versions[index]
    if version.parent is None:
        return history, render.titled_lane(version.title(), chords)
    history, source = _ensure_chords(history, version.parent)
    return history, render.chord_comparison(
        source, chords, "source: " + history.versions[version.parent].title(),
        "edit: " + version.title())


def edit(models: DemoModels, history: EditHistory | None, out_dir: Path, instruction: str,
         seed: Any, steps: Any, guidance_text: Any, guidance_source: Any,
         limits: DemoLimits = DEFAULT_LIMITS, progress: ProgressFn | None = None,
         range_start: Any = None, range_end: Any = None) -> EditOutput:
    """Apply one instruction to the current version; the result becomes a new, current version.

    `range_start`/`range_end` (seconds or m:ss; blank = the file's start/end) limit the edit
    to that part; outside it the new version equals the current one sample for sample.
    """
    from musigen.audio import load_audio, save_audio
    from musigen.edits import InstructionError, parse_instruction
    from musigen.instructme.edit_range import EditRange

    if history is None or history.empty:
        raise ConfigError("nothing to edit yet: upload a piece or take the generated one")
    if not isinstance(instruction, str) or not instruction.strip():
        raise InstructionError("the instruction is empty; try e.g. 'remove drums' or "
                               "'remix to funk genre'")
    op = parse_instruction(instruction)  # unknown instrument/genre: VocabularyError, no work done
    seed_value = _integer("seed", seed, 0, 2**31 - 1)
    steps_value = _integer("steps", steps, 1, limits.max_steps)
    gt = _number("instruction guidance", guidance_text, 0, 50)
    gs = _number("source guidance", guidance_source, 0, 50)
    edit_range = EditRange(*(None if v is None or str(v).strip() == "" else str(v).strip()
                             for v in (range_start, range_end)))
    if op.section is not None and not edit_range.is_whole:
        raise ConfigError("the instruction names its own section; clear the range fields")
    source = history.current_version()
    wav, sr = load_audio(source.path)
    if not edit_range.is_whole:
        edit_range.spans(wav.shape[-1] / sr)  # outside the piece: refused before the model loads
    _tell(progress, 0.02, "loading the editing model")
    pipe = models.editor()
    _tell(progress, 0.05, f"editing v{source.index}: {op.canonical_text()}")
    params = pipe.config.params.replace(steps=steps_value, guidance_text=gt,
                                        guidance_source=gs, seed=seed_value)
    result = pipe(wav, sr, instruction.strip(), params, progress=progress is not None,
                  ranges=None if edit_range.is_whole else edit_range)
    _tell(progress, 0.95, "reading the chords of the edit")
    edited = tuple(_chords_of(result.audio, result.sample_rate))
    if source.chords is None:
        history = history.with_chords(source.index, tuple(result.chords[0]))
    path = save_audio(_new_path(out_dir, f"edit_v{len(history.versions)}"), result.audio,
                      result.sample_rate, provenance={
                          "command": "demo edit", "instruction": instruction.strip(),
                          "op": op.canonical_text(), "source": source.path,
                          "source_version": source.index, "model": str(models.paths.edit_dir()),
                          **result.parameters,
                          "chords_source": [list(c) for c in result.chords[0]],
                          "chords_edit": [list(c) for c in edited]})
    history = history.add(str(path), instruction.strip(), edited)
    history, html = compare(history, history.current)
    seconds = result.audio.shape[-1] / result.sample_rate
    return EditOutput(history, html, render.message(
        f"v{history.current}: '{op.canonical_text()}' applied to v{source.index} "
        f"({seconds:.1f} s); the next instruction edits v{history.current}"))


def restore(history: EditHistory | None, index: Any) -> EditOutput:
    """Make version `index` current again; the history keeps every version."""
    if history is None or history.empty:
        raise ConfigError("the history is empty: upload a piece or take the generated one")
    history = history.restore(_integer("version", index, 0, 2**31 - 1))
    history, html = compare(history, history.current)
    return EditOutput(history, html, render.message(
        f"restored v{history.current}; the next instruction edits it"))


# ----------------------------------------------------------------------------- analyze


def analyze(models: DemoModels, path: str | None, out_dir: Path,
            limits: DemoLimits = DEFAULT_LIMITS, progress: ProgressFn | None = None) -> AnalyzeOutput:
    """A recording -> per-segment tags (the thought view when a MusiCoT model is there) + chords."""
    from musigen.musicot.analysis import analyze as analyze_audio

    wav, sr = load_piece(path, "piece to analyze", limits)
    _tell(progress, 0.05, "loading the analysis model")
    embedder, tokenizer = models.analyzer()
    _tell(progress, 0.2, "ranking tags per segment")
    segments = analyze_audio(wav, sr, embedder, tokenizer, chords=False)
    _tell(progress, 0.7, "recognising chords")
    chords = _chords_of(wav, sr)
    segments = [dataclasses.replace(s, chords=_cut(chords, s.start, s.end)) for s in segments]
    png = render.spectrogram_png(wav, sr, _new_path(out_dir, "analysis").with_suffix(".png"),
                                 title=Path(str(path)).name)
    seconds = wav.shape[-1] / sr
    view = "thought tokens" if tokenizer is not None else "CLAP windows"
    return AnalyzeOutput(segments, chords, png,
                         render.timeline_table(segments, f"tags per segment ({view})"),
                         render.chord_lane(chords, seconds),
                         render.message(f"{Path(str(path)).name}: {seconds:.1f} s, "
                                        f"{len(segments)} segment(s), {len(chords)} chord span(s)"))
