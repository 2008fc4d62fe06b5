"""Audio I/O for every part of musigen: load, check, convert, normalise and save.

All audio inside musigen is float32 ``[channels, samples]``.  Every reader goes through
:func:`load_audio` and every writer through :func:`save_audio`, so that bad files fail the
same way everywhere (a specific :mod:`musigen.errors` type with a one-line message) and
every output is atomic and carries its provenance.

Choices made here (documented because callers rely on them):

- At most :data:`MAX_CHANNELS` (8, i.e. up to 7.1 surround) channels; more is refused.
- Sample rates must lie in ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` = [1 kHz, 768 kHz].
- Channel conversion only mixes down to mono (mean) or duplicates mono; other changes
  (e.g. 6 -> 2) are ambiguous and raise :class:`ChannelCountError`.
- Loudness is LUFS-like (ITU-R BS.1770 gating and K-weighting, all channels weighted
  1.0); :mod:`musigen.loudness` says exactly how it is measured.
- Saving picks the subtype from the suffix: WAV float32 (lossless, so stems still sum
  to the mix), FLAC 24-bit, OGG Vorbis, MP3.  Integer subtypes are clipped to [-1, 1].
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musigen.errors import (
    AudioDecodeError,
    AudioError,
    AudioFileNotFoundError,
    ChannelCountError,
    ConfigError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
)
from musigen.quiet_stderr import quiet_native_stderr

#: Most channels any musigen entry point accepts (7.1 surround).
MAX_CHANNELS: int = 8
MIN_SAMPLE_RATE: int = 1_000
MAX_SAMPLE_RATE: int = 768_000
#: Default targets of :func:`save_audio`'s ``normalize="peak"`` / ``"loudness"``.
PEAK_TARGET_DB: float = -1.0
LOUDNESS_TARGET_LUFS: float = -14.0
#: Shortest audio the models read (an edit, a style reference, an analysis): below it a
#: CLAP window or a chord frame is nearly all padding, and what comes out is noise.
MIN_MODEL_AUDIO_S: float = 0.25

#: Output suffix -> (soundfile format, default subtype).
_WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "FLOAT"),
    ".flac": ("FLAC", "PCM_24"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
#: Formats whose header states the exact length, so a short read means truncation.
_EXACT_LENGTH_FORMATS: frozenset[str] = frozenset({"WAV", "WAVEX", "FLAC", "AIFF", "RF64", "W64"})

AudioLike = Any  # np.ndarray or torch.Tensor, 1-D or [C, N]


# ----------------------------------------------------------------------------- conversion


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _to_numpy(wav: AudioLike) -> np.ndarray:
    """float32 numpy view of numpy/torch/list input, integer PCM scaled to [-1, 1)."""
    if _is_torch(wav):
        wav = wav.detach().cpu()
        if wav.dtype.is_floating_point:
            wav = wav.float()
        wav = wav.numpy()
    arr = np.asarray(wav)
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(-np.iinfo(arr.dtype).min)
    elif arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise AudioError(f"audio must be a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _like(reference: AudioLike, arr: np.ndarray) -> AudioLike:
    """Return `arr` as the same kind of object as `reference` (torch stays torch, on its device)."""
    if _is_torch(reference):
        import torch

        return torch.from_numpy(np.ascontiguousarray(arr)).to(reference.device)
    return arr


def _as_2d(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 1:
        return arr[None, :]
    if arr.ndim == 2:
        return arr
    raise ChannelCountError(
        f"audio must be 1-D or [channels, samples], got an array of shape {tuple(arr.shape)}"
    )


def check_sample_rate(sample_rate: Any) -> int:
    """Validate a sample rate and return it as int (bools, floats with a fraction, <=0 refused)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float)):
        raise SampleRateError(f"sample rate must be an integer in Hz, got {sample_rate!r}")
    if isinstance(sample_rate, float) and not sample_rate.is_integer():
        raise SampleRateError(f"sample rate must be a whole number of Hz, got {sample_rate}")
    sr = int(sample_rate)
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise SampleRateError(
            f"sample rate {sr} Hz is outside the supported range "
            f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    return sr


def check_audio(wav: AudioLike, sample_rate: int) -> np.ndarray:
    """Raise a specific AudioError if `wav` is unusable; return it as float32 numpy [C, N].

    Silence is valid.  Shape [samples, channels] is refused with a hint, because a silent
    transpose would turn a stereo second into 16000 one-sample channels.
    """
    check_sample_rate(sample_rate)
    arr = _as_2d(_to_numpy(wav))
    channels, samples = arr.shape
    if channels > MAX_CHANNELS:
        hint = " (is it [samples, channels]? transpose it)" if samples <= MAX_CHANNELS else ""
        raise ChannelCountError(
            f"audio has {channels} channels; at most {MAX_CHANNELS} are supported{hint}"
        )
    if channels == 0 or samples == 0:
        raise EmptyAudioError("audio has zero samples")
    if not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise NonFiniteAudioError(f"audio holds {bad} NaN or Inf samples")
    return arr


def require_duration(wav: AudioLike, sample_rate: int, what: str = "audio") -> None:
    """Refuse audio under :data:`MIN_MODEL_AUDIO_S` in one line instead of reading noise from it."""
    seconds = _to_numpy(wav).shape[-1] / float(sample_rate)
    if seconds < MIN_MODEL_AUDIO_S:
        raise EmptyAudioError(f"{what} is {seconds:.3f} s long; at least {MIN_MODEL_AUDIO_S} s is needed")


def convert_channels(wav: AudioLike, channels: int) -> AudioLike:
    """Mix down to mono (mean of channels) or duplicate mono to `channels` channels."""
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)):
        raise ChannelCountError(f"channel count must be an integer, got {channels!r}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise ChannelCountError(
            f"cannot convert to {channels} channels; use 1-{MAX_CHANNELS}"
        )
    arr = _as_2d(_to_numpy(wav))
    have = arr.shape[0]
    if have == channels:
        out = arr
    elif channels == 1:
        out = arr.mean(axis=0, keepdims=True)
    elif have == 1:
        out = np.repeat(arr, channels, axis=0)
    else:
        raise ChannelCountError(
            f"cannot convert {have} channels to {channels}; only mono mix-down or mono duplication"
        )
    return _like(wav, np.ascontiguousarray(out, dtype=np.float32))


def resample(wav: AudioLike, sr_in: int, sr_out: int) -> AudioLike:
    """Resample with soxr (HQ); returns the same kind (numpy/torch) and rank as the input."""
    sr_in, sr_out = check_sample_rate(sr_in), check_sample_rate(sr_out)
    arr = _to_numpy(wav)
    if sr_in == sr_out:
        return _like(wav, arr)
    import soxr

    two_d = _as_2d(arr)
    out = soxr.resample(np.ascontiguousarray(two_d.T), sr_in, sr_out, quality="HQ")
    out = np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, two_d.shape[0]).T)
    return _like(wav, out[0] if arr.ndim == 1 else out)


# ----------------------------------------------------------------------------- levels


def peak_dbfs(wav: AudioLike) -> float:
    """Sample peak in dBFS (-inf for silence)."""
    arr = _to_numpy(wav)
    peak = float(np.max(np.abs(arr))) if arr.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def loudness_lufs(wav: AudioLike, sample_rate: int) -> float:
    """Integrated loudness in LUFS (BS.1770-style, :mod:`musigen.loudness`); -inf for silence."""
    from musigen.loudness import integrated_loudness

    return integrated_loudness(_as_2d(_to_numpy(wav)), check_sample_rate(sample_rate))


def peak_normalize(wav: AudioLike, target_db: float = PEAK_TARGET_DB) -> AudioLike:
    """Scale so the sample peak sits at `target_db` dBFS; silence is returned unchanged."""
    arr = _to_numpy(wav)
    peak = peak_dbfs(arr)
    if not math.isfinite(peak):
        return _like(wav, arr.copy())
    return _like(wav, (arr * 10.0 ** ((target_db - peak) / 20.0)).astype(np.float32))


def loudness_normalize(
    wav: AudioLike, sample_rate: int, target_lufs: float = LOUDNESS_TARGET_LUFS,
    max_peak_db: float | None = PEAK_TARGET_DB,
) -> AudioLike:
    """Scale to `target_lufs` integrated loudness (measured by :func:`loudness_lufs`).

    If that would push the sample peak above `max_peak_db`, the gain is lowered to stop
    there instead (loud targets on dynamic material would otherwise clip when saved).
    Silence and audio quieter than the -70 LUFS gate are returned unchanged.
    """
    arr = _to_numpy(wav)
    level = loudness_lufs(arr, sample_rate)
    if not math.isfinite(level):
        return _like(wav, arr.copy())
    gain_db = target_lufs - level
    if max_peak_db is not None:
        gain_db = min(gain_db, max_peak_db - peak_dbfs(arr))
    return _like(wav, (arr * 10.0 ** (gain_db / 20.0)).astype(np.float32))


# ----------------------------------------------------------------------------- reading


def _declared_wav_data_bytes(path: Path) -> tuple[int, int] | None:
    """(declared data-chunk bytes, bytes present after its header) of a RIFF WAV, or None.

    libsndfile silently shortens a truncated WAV to what is present, so we read the
    header ourselves to tell a truncated file from a short one.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                if csize in (0, 0xFFFFFFFF):  # streaming writers leave the size unknown
                    return None
                return csize, size - pos - 8
            pos += 8 + csize + (csize & 1)
    return None


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, without decoding it."""

    path: Path
    sample_rate: int
    frames: int
    channels: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _check_path(p: Path) -> None:
    if not p.exists():
        raise AudioFileNotFoundError(f"audio file not found: {p}")
    if p.is_dir():
        raise AudioFileNotFoundError(f"expected an audio file but {p} is a directory")


def _read(p: Path, start: int = 0, frames: int = -1) -> tuple[np.ndarray, AudioInfo]:
    """Open `p` (mapping every soundfile failure to an AudioError) and read [frames, C]."""
    import soundfile as sf

    _check_path(p)
    try:
        with quiet_native_stderr(), sf.SoundFile(str(p)) as f:
            info = AudioInfo(p, int(f.samplerate), int(f.frames), int(f.channels), f.format,
                             f.subtype)
            if info.channels > MAX_CHANNELS:
                raise ChannelCountError(
                    f"{p} has {info.channels} channels; at most {MAX_CHANNELS} are supported"
                )
            if start > 0:
                if start >= info.frames:
                    return np.zeros((0, info.channels), np.float32), info
                f.seek(start)
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "does not exist" in reason:  # libsndfile's words for data no decoder recognises
            reason = "unrecognised or corrupt audio data"
        raise AudioDecodeError(f"cannot decode {p} as audio ({reason})") from exc
    except OSError as exc:
        raise AudioError(f"cannot read {p}: {exc.strerror or exc}") from exc
    try:
        check_sample_rate(info.sample_rate)
    except SampleRateError as exc:
        raise SampleRateError(f"{p}: {exc}") from None
    return data, info


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Header facts of an audio file (rate, frames, channels), with the same errors as loading."""
    _, info = _read(Path(path), frames=0)
    return info


def check_complete(info: AudioInfo, decoded_frames: int) -> None:
    """Refuse a truncated or undecodable file: fewer frames decoded than its header promises."""
    p, fmt = info.path, info.format
    if fmt in _EXACT_LENGTH_FORMATS and decoded_frames < info.frames:
        raise AudioDecodeError(
            f"{p} is truncated: its header promises {info.frames} frames, "
            f"only {decoded_frames} decode"
        )
    if fmt == "WAV":
        wav_sizes = _declared_wav_data_bytes(p)
        if wav_sizes is not None and wav_sizes[0] > wav_sizes[1]:
            raise AudioDecodeError(
                f"{p} is truncated: its header declares {wav_sizes[0]} bytes of audio, "
                f"only {wav_sizes[1]} are present"
            )
    if decoded_frames == 0 and fmt not in _EXACT_LENGTH_FORMATS and p.stat().st_size > 1024:
        raise AudioDecodeError(f"{p} holds no decodable audio (truncated or corrupt?)")


def _convert(wav: np.ndarray, sr: int, sample_rate: int | None, channels: int | None
             ) -> tuple[np.ndarray, int]:
    if channels is not None:
        wav = convert_channels(wav, channels)
    if sample_rate is not None and sample_rate != sr:
        wav = resample(wav, sr, sample_rate)
        sr = sample_rate
    return wav, sr


def load_audio(
    path: str | os.PathLike[str], sample_rate: int | None = None, channels: int | None = None
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 [channels, samples]; resample/convert channels if asked.

    Raises AudioFileNotFoundError (missing path or a directory), AudioDecodeError (not
    audio, truncated, corrupt), EmptyAudioError, NonFiniteAudioError, ChannelCountError
    and SampleRateError, each with a one-line message naming the file.
    """
    p = Path(path)
    if sample_rate is not None:
        sample_rate = check_sample_rate(sample_rate)
    data, info = _read(p)
    check_complete(info, data.shape[0])
    wav = np.ascontiguousarray(data.T)
    try:
        check_audio(wav, info.sample_rate)
    except AudioError as exc:
        raise type(exc)(f"{p}: {exc}") from None
    return _convert(wav, info.sample_rate, sample_rate, channels)


def load_audio_segment(
    path: str | os.PathLike[str], start_s: float, duration_s: float,
    sample_rate: int | None = None, channels: int | None = None,
) -> tuple[np.ndarray, int]:
    """Read only ``[start_s, start_s + duration_s)`` of a file, zero-padded past its end.

    For training crops of long files: decoding seeks instead of reading everything.  The
    result has exactly ``round(duration_s * rate)`` samples.  Reading past the end is not
    an error (short pieces are padded); NaN/Inf inside the segment is.
    """
    p = Path(path)
    if sample_rate is not None:
        sample_rate = check_sample_rate(sample_rate)
    if not (math.isfinite(start_s) and start_s >= 0 and math.isfinite(duration_s)
            and duration_s > 0):
        raise AudioError(f"invalid segment start={start_s} s, duration={duration_s} s for {p}")
    native_sr = audio_info(p).sample_rate
    first = int(math.floor(start_s * native_sr))
    count = int(math.ceil((start_s + duration_s) * native_sr)) - first
    data, info = _read(p, start=first, frames=count)
    wav = np.zeros((info.channels, count), np.float32)
    wav[:, : data.shape[0]] = data.T
    if not np.isfinite(wav).all():
        raise NonFiniteAudioError(f"{p}: audio holds NaN or Inf samples near {start_s:.2f} s")
    wav, sr = _convert(wav, info.sample_rate, sample_rate, channels)
    want = int(round(duration_s * sr))
    if wav.shape[1] >= want:
        return np.ascontiguousarray(wav[:, :want]), sr
    return np.pad(wav, ((0, 0), (0, want - wav.shape[1]))), sr


# ----------------------------------------------------------------------------- writing


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`save_audio` writes the provenance of `path` (same stem, ``.json``)."""
    return Path(path).with_suffix(".json")


def save_audio(
    path: str | os.PathLike[str],
    wav: AudioLike,
    sample_rate: int,
    provenance: dict[str, Any] | None = None,
    normalize: str | None = None,
    subtype: str | None = None,
) -> Path:
    """Write `wav` atomically; with `provenance`, also a JSON sidecar (see :func:`sidecar_path`).

    `normalize` is None, ``"peak"`` (to PEAK_TARGET_DB) or ``"loudness"`` (to
    LOUDNESS_TARGET_LUFS, peak-limited).  The sidecar holds ``{"provenance": ...,
    "audio": {sample_rate, channels, samples, duration_s, subtype, normalize, gain_db},
    "musigen_version": ...}`` and no timestamps, so equal inputs give equal bytes.
    """
    import soundfile as sf

    from musigen import __version__
    from musigen.atomic import atomic_group

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in _WRITE_FORMATS:
        raise AudioError(
            f"cannot write {target}: unsupported suffix {target.suffix or '(none)'}; "
            f"use one of {', '.join(_WRITE_FORMATS)}"
        )
    if target.is_dir():
        raise AudioError(f"cannot write audio to {target}: it is a directory")
    fmt, default_subtype = _WRITE_FORMATS[suffix]
    subtype = subtype or default_subtype
    if not sf.check_format(fmt, subtype):
        raise AudioError(f"cannot write {target}: subtype {subtype} is not valid for {fmt}")
    if provenance is not None and not isinstance(provenance, dict):
        raise ConfigError(f"provenance must be a dict, got {type(provenance).__name__}")
    sr = check_sample_rate(sample_rate)
    arr = check_audio(wav, sr)
    before = peak_dbfs(arr)
    if normalize == "peak":
        arr = peak_normalize(arr)
    elif normalize == "loudness":
        arr = loudness_normalize(arr, sr)
    elif normalize is not None:
        raise ConfigError(f"normalize must be None, 'peak' or 'loudness', got {normalize!r}")
    after = peak_dbfs(arr)
    gain_db = after - before if math.isfinite(before) else 0.0
    if not subtype.startswith(("FLOAT", "DOUBLE")):
        arr = np.clip(arr, -1.0, 1.0)
    meta = None
    if provenance is not None:
        meta = {
            "provenance": provenance,
            "audio": {
                "sample_rate": sr,
                "channels": int(arr.shape[0]),
                "samples": int(arr.shape[1]),
                "duration_s": arr.shape[1] / sr,
                "subtype": subtype,
                "normalize": normalize,
                "gain_db": round(gain_db, 4),
            },
            "musigen_version": __version__,
        }
    # the audio and its sidecar land together or not at all (a full disk leaves neither)
    targets = [target] if meta is None else [target, sidecar_path(target)]
    with atomic_group(*targets) as tmps:
        sf.write(str(tmps[0]), np.ascontiguousarray(arr.T), sr, subtype=subtype, format=fmt)
        if meta is not None:
            tmps[1].write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return target


def load_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the sidecar written by :func:`save_audio` for audio file `path`."""
    side = sidecar_path(path)
    if not side.is_file():
        raise AudioFileNotFoundError(f"no provenance sidecar for {path} (looked for {side})")
    try:
        return json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AudioDecodeError(f"provenance sidecar {side} is not valid JSON ({exc})") from exc
