"""musigen.audio: formats, conversion, levels, atomic saving and every bad-input case."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from musigen import audio
from musigen.audio import (
    MAX_CHANNELS,
    audio_info,
    check_audio,
    convert_channels,
    load_audio,
    load_audio_segment,
    load_provenance,
    loudness_lufs,
    loudness_normalize,
    peak_dbfs,
    peak_normalize,
    resample,
    save_audio,
)
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

SR = 16000


def sine(freq: float = 440.0, seconds: float = 0.5, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


@pytest.mark.parametrize(
    ("suffix", "tol"), [(".wav", 1e-7), (".flac", 1e-5), (".ogg", None), (".mp3", None)]
)
def test_round_trip_every_format(tmp_path: Path, suffix: str, tol: float | None) -> None:
    x = np.stack([sine(440.0), sine(660.0)])
    out = save_audio(tmp_path / f"a{suffix}", x, SR)
    y, sr = load_audio(out)
    assert sr == SR and y.dtype == np.float32 and y.shape[0] == 2
    if tol is not None:
        np.testing.assert_allclose(y, x, atol=tol)
    else:  # lossy codecs: same pitch per channel, roughly the same length
        assert abs(y.shape[1] - x.shape[1]) < 0.2 * SR
        assert abs(dominant_freq(y[0], sr) - 440.0) < 10
        assert abs(dominant_freq(y[1], sr) - 660.0) < 10


def test_load_resamples_and_converts_channels(tmp_path: Path) -> None:
    stereo = np.stack([sine(1000.0, 1.0, 48000), np.zeros(48000, np.float32)])
    sf.write(tmp_path / "s.wav", stereo.T, 48000, subtype="FLOAT")
    y, sr = load_audio(tmp_path / "s.wav", sample_rate=SR, channels=1)
    assert sr == SR and y.shape == (1, SR)
    assert abs(dominant_freq(y[0], SR) - 1000.0) < 5
    # mix-down is the mean, so a sine in one channel comes out at half amplitude
    assert abs(np.abs(y[0, 2000:-2000]).max() - 0.25) < 0.01


def test_convert_channels_semantics() -> None:
    mono = sine()
    st = convert_channels(mono, 2)
    assert st.shape == (2, mono.size) and np.array_equal(st[0], st[1])
    back = convert_channels(np.stack([mono, -mono]), 1)
    assert np.allclose(back, 0.0)
    with pytest.raises(ChannelCountError):
        convert_channels(np.zeros((6, 10), np.float32), 2)
    with pytest.raises(ChannelCountError):
        convert_channels(mono, MAX_CHANNELS + 1)


def test_torch_in_torch_out() -> None:
    x = torch.from_numpy(sine(440.0, 1.0))
    y = resample(x, SR, 8000)
    assert isinstance(y, torch.Tensor) and y.shape == (8000,)
    assert isinstance(convert_channels(x, 2), torch.Tensor)
    assert isinstance(peak_normalize(x), torch.Tensor)
    assert check_audio(x, SR).shape == (1, SR)


def test_resample_keeps_pitch_and_length() -> None:
    x = np.stack([sine(440.0, 1.0, 44100), sine(880.0, 1.0, 44100)])
    y = resample(x, 44100, 32000)
    assert y.shape == (2, 32000)
    assert abs(dominant_freq(y[0], 32000) - 440) < 3 and abs(dominant_freq(y[1], 32000) - 880) < 3


def test_loudness_matches_bs1770_reference() -> None:
    # BS.1770: a 0 dBFS 997 Hz sine in one channel at 48 kHz reads -3.01 LUFS.
    assert loudness_lufs(sine(997.0, 5.0, 48000, amp=1.0), 48000) == pytest.approx(-3.01, abs=0.05)
    # halving the amplitude lowers loudness by 6.02 dB
    assert loudness_lufs(sine(997.0, 5.0, 48000, amp=0.5), 48000) == pytest.approx(-9.03, abs=0.05)
    assert loudness_lufs(np.zeros(SR, np.float32), SR) == -math.inf


def test_normalisers_hit_their_targets() -> None:
    x = sine(440.0, 2.0, amp=0.05)
    assert peak_dbfs(peak_normalize(x, -3.0)) == pytest.approx(-3.0, abs=1e-4)
    y = loudness_normalize(x, SR, target_lufs=-20.0, max_peak_db=None)
    assert loudness_lufs(y, SR) == pytest.approx(-20.0, abs=0.01)
    # the peak guard wins over a target that would clip
    z = loudness_normalize(x, SR, target_lufs=0.0, max_peak_db=-1.0)
    assert peak_dbfs(z) == pytest.approx(-1.0, abs=1e-4) and loudness_lufs(z, SR) < 0.0
    silence = np.zeros(100, np.float32)
    assert np.array_equal(peak_normalize(silence), silence)
    assert np.array_equal(loudness_normalize(silence, SR), silence)


def test_save_normalises_and_writes_sidecar(tmp_path: Path) -> None:
    out = save_audio(tmp_path / "o.wav", sine(amp=0.1), SR, provenance={"seed": 3},
                     normalize="peak")
    y, _ = load_audio(out)
    assert peak_dbfs(y) == pytest.approx(audio.PEAK_TARGET_DB, abs=1e-3)
    meta = json.loads((tmp_path / "o.json").read_text())
    assert meta["provenance"] == {"seed": 3} and meta == load_provenance(out)
    assert meta["audio"]["sample_rate"] == SR and meta["audio"]["normalize"] == "peak"
    assert meta["audio"]["gain_db"] == pytest.approx(-1.0 + 20.0, abs=0.01)
    with pytest.raises(ConfigError):
        save_audio(tmp_path / "p.wav", sine(), SR, normalize="rms")
    with pytest.raises(AudioError):
        save_audio(tmp_path / "p.xyz", sine(), SR)


def test_save_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        save_audio(tmp_path / f"{name}.flac", sine(), SR, provenance={"k": 1})
    assert (tmp_path / "a.flac").read_bytes() == (tmp_path / "b.flac").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_save_clips_integer_formats(tmp_path: Path) -> None:
    y, _ = load_audio(save_audio(tmp_path / "loud.flac", sine(amp=3.0), SR))
    assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.99  # clipped, not wrapped around


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = save_audio(tmp_path / "keep.wav", sine(), SR)
    good = target.read_bytes()
    with pytest.raises(NonFiniteAudioError):  # bad input never touches the old file
        save_audio(target, np.full(100, np.nan, np.float32), SR)

    def crash(path: str, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"RIFF half")
        raise OSError("disk full")

    monkeypatch.setattr(sf, "write", crash)
    with pytest.raises(OSError):
        save_audio(target, sine(amp=0.9), SR)
    assert target.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]


def test_silence_is_valid(tmp_path: Path) -> None:
    out = save_audio(tmp_path / "quiet.wav", np.zeros((2, SR), np.float32), SR)
    y, sr = load_audio(out)
    assert y.shape == (2, SR) and not y.any()


def test_segment_reads_the_right_slice(tmp_path: Path) -> None:
    ramp = np.linspace(-1, 1, SR, dtype=np.float32)
    sf.write(tmp_path / "r.wav", np.stack([ramp, -ramp], axis=1), SR, subtype="FLOAT")
    info = audio_info(tmp_path / "r.wav")
    assert (info.sample_rate, info.frames, info.channels, info.duration) == (SR, SR, 2, 1.0)
    seg, sr = load_audio_segment(tmp_path / "r.wav", 0.25, 0.5)
    np.testing.assert_array_equal(seg, np.stack([ramp, -ramp])[:, SR // 4 : 3 * SR // 4])
    tail, _ = load_audio_segment(tmp_path / "r.wav", 0.75, 0.5, channels=1)
    assert tail.shape == (1, SR // 2) and not tail[0, SR // 4 :].any() and tail[0, 0] == 0.0
    beyond, _ = load_audio_segment(tmp_path / "r.wav", 2.0, 0.5)
    assert beyond.shape == (2, SR // 2) and not beyond.any()
    up, sr = load_audio_segment(tmp_path / "r.wav", 0.1, 0.3, sample_rate=22050)
    assert sr == 22050 and up.shape == (2, round(0.3 * 22050))
    with pytest.raises(AudioError):
        load_audio_segment(tmp_path / "r.wav", -1.0, 0.5)
    bad = sine()
    bad[100] = np.nan
    sf.write(tmp_path / "n.wav", bad, SR, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError):
        load_audio_segment(tmp_path / "n.wav", 0.0, 0.1)
    assert load_audio_segment(tmp_path / "n.wav", 0.2, 0.1)[0].shape == (1, SR // 10)


# ------------------------------------------------------------------------- bad input


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioFileNotFoundError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioFileNotFoundError, match="directory"):
        load_audio(tmp_path)
    assert issubclass(AudioFileNotFoundError, FileNotFoundError)


def test_non_audio_file(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("this is not audio\n")
    with pytest.raises(AudioDecodeError):
        load_audio(tmp_path / "notes.wav")


def test_corrupt_mp3_fails_in_one_line_without_decoder_noise(tmp_path: Path,
                                                              capfd: pytest.CaptureFixture) -> None:
    """libmpg123 prints "Note: Illegal Audio-MPEG-Header" from C; none of it may reach stderr."""
    (tmp_path / "song.mp3").write_bytes(b"hello, not an mp3\n" * 4)
    with pytest.raises(AudioDecodeError, match="unrecognised or corrupt") as err:
        load_audio(tmp_path / "song.mp3")
    assert "\n" not in str(err.value)
    out, errs = capfd.readouterr()
    assert errs == "" and out == ""
    os.write(2, b"fd 2 works again\n")  # restored after the failure
    assert "works again" in capfd.readouterr().err


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    whole = save_audio(tmp_path / f"whole{suffix}", sine(seconds=1.0), SR, subtype="PCM_16")
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioDecodeError):
        load_audio(cut)


def test_zero_samples(tmp_path: Path) -> None:
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), SR)
    with pytest.raises(EmptyAudioError):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(EmptyAudioError):
        check_audio(np.zeros(0, np.float32), SR)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(tmp_path: Path, bad: float) -> None:
    x = sine()
    x[10] = bad
    sf.write(tmp_path / "bad.wav", x, SR, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError):
        load_audio(tmp_path / "bad.wav")
    with pytest.raises(NonFiniteAudioError):
        check_audio(torch.from_numpy(x), SR)


def test_too_many_channels(tmp_path: Path) -> None:
    sf.write(tmp_path / "c16.wav", np.zeros((100, 16), np.float32), SR)
    with pytest.raises(ChannelCountError, match="16 channels"):
        load_audio(tmp_path / "c16.wav")
    with pytest.raises(ChannelCountError, match="transpose"):
        check_audio(np.zeros((SR, 2), np.float32), SR)
    with pytest.raises(ChannelCountError):
        check_audio(np.zeros((1, 2, 10), np.float32), SR)


@pytest.mark.parametrize("sr", [0, -16000, 44100.5, True, "16000", 10_000_000])
def test_invalid_sample_rate(tmp_path: Path, sr: object) -> None:
    with pytest.raises(SampleRateError):
        save_audio(tmp_path / "x.wav", sine(), sr)  # type: ignore[arg-type]
    assert not (tmp_path / "x.wav").exists()


def test_audio_loads_from_many_threads_leave_stderr_working(tmp_path: Path,
                                                            capfd: pytest.CaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """fd 2 is process-wide: concurrent loads (the demo app's handlers) must not strand it."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    class SlowOpen(sf.SoundFile):  # a slow disk: threads overlap inside the quiet block
        def __init__(self, *args: object, **kwargs: object) -> None:
            time.sleep(0.002)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(sf, "SoundFile", SlowOpen)

    good = save_audio(tmp_path / "good.wav", sine(seconds=0.5), SR)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not an mp3\n" * 8)

    def load(i: int) -> bool:
        try:
            load_audio(good if i % 2 else bad)
            return True
        except AudioDecodeError:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(load, range(64)))
    assert results == [bool(i % 2) for i in range(64)]
    capfd.readouterr()
    os.write(2, b"still here\n")  # fd 2 itself: what native code and child processes write to
    assert capfd.readouterr().err == "still here\n"
