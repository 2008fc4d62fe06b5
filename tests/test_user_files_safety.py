"""The CLI never replaces the user's files and stays bounded in resources.

- an existing output or its sidecar needs --overwrite; an input is never written over
  (not through a symlink or a hard link either); without --out a free name is picked;
- a read-only folder or a full disk is found before the work, and a failed write leaves
  neither the file, its sidecar, nor a temporary;
- thread counts, codes-file headers and durations are checked before anything is allocated;
- `info` reads a long file in blocks, never whole.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).parent))

from musigen.cli import main  # noqa: E402

SR = 16000


def _wav(path: Path, seconds: float = 1.0, sr: int = SR) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("musigen: error:"), err
    for word in words:
        assert word in err[0], err
    return err[0]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def musicot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musicot_tiny import save_tiny_pipeline

    torch.set_num_threads(1)
    return save_tiny_pipeline(tmp_path_factory.mktemp("musicot") / "pipe")


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musicot_tiny import tiny_codec

    return tiny_codec().save_pretrained(tmp_path_factory.mktemp("codec") / "codec")


# ------------------------------------------------------------------ inputs are never outputs


def test_edit_refuses_to_write_onto_its_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = _wav(tmp_path / "s.wav")
    before = song.read_bytes()
    for extra in ([], ["--overwrite"]):
        rc = main(["edit", str(song), "-i", "remove drums", "--out", str(song), *extra])
        assert rc == 2
        _one_error_line(capsys, "input")
    assert song.read_bytes() == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_edit_sees_through_links(
        tmp_path: Path, link: str, capsys: pytest.CaptureFixture[str]) -> None:
    song = _wav(tmp_path / "s.wav")
    alias = tmp_path / "alias.wav"
    (os.symlink if link == "symlink" else os.link)(song, alias)
    before = song.read_bytes()
    assert main(["edit", str(song), "-i", "remove drums", "--out", str(alias), "--overwrite"]) == 2
    _one_error_line(capsys, "input")
    assert song.read_bytes() == before


def test_generate_refuses_its_reference_and_its_prompts_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = _wav(tmp_path / "s.wav")
    before = ref.read_bytes()
    assert main(["generate", "-p", "jazz", "--ref", str(ref), "--out", str(ref), "--overwrite",
                 "--model", str(tmp_path / "no-model")]) == 2
    _one_error_line(capsys, "input")
    assert ref.read_bytes() == before
    # the sidecar of --out would land on the prompts file
    jobs = tmp_path / "jobs.json"
    line = f'{{"prompt": "jazz", "out": "{tmp_path / "jobs.wav"}"}}\n'
    jobs.write_text(line)
    assert main(["generate", "--prompts", str(jobs), "--overwrite",
                 "--model", str(tmp_path / "no-model")]) == 2
    _one_error_line(capsys, "sidecar", "input")
    assert jobs.read_text() == line


def test_generate_refuses_an_unrelated_sidecar(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text("my notes\n")
    assert main(["generate", "-p", "jazz", "--out", str(tmp_path / "notes.wav"),
                 "--model", str(tmp_path / "no-model")]) == 2
    _one_error_line(capsys, "notes.json", "--overwrite")
    assert notes.read_text() == "my notes\n"
    assert _listing(tmp_path) == ["notes.json"]


def test_two_jobs_may_not_share_an_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = tmp_path / "jobs.jsonl"
    out = str(tmp_path / "same.wav")
    jobs.write_text(f'{{"prompt": "a", "out": "{out}"}}\n{{"prompt": "b", "out": "{out}"}}\n')
    assert main(["generate", "--prompts", str(jobs), "--model", str(tmp_path / "no-model")]) == 2
    _one_error_line(capsys, "same.wav")


def test_generate_picks_free_names_and_needs_overwrite(
        tmp_path: Path, musicot_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    run = ["generate", "-p", "calm jazz", "--duration", "0.5", "--model", str(musicot_dir)]
    assert main(run) == 0
    assert main(run + ["--seed", "1"]) == 0
    assert _listing(tmp_path) == ["generated-2.json", "generated-2.wav", "generated.json",
                                  "generated.wav"]
    first = (tmp_path / "generated.wav").read_bytes()
    capsys.readouterr()
    assert main(run + ["--seed", "1", "--out", "generated.wav"]) == 2
    _one_error_line(capsys, "generated.wav", "--overwrite")
    assert (tmp_path / "generated.wav").read_bytes() == first
    assert main(run + ["--seed", "1", "--out", "generated.wav", "--overwrite"]) == 0
    import json

    assert json.loads((tmp_path / "generated.json").read_text())["provenance"]["seed"] == 1
    assert _listing(tmp_path) == ["generated-2.json", "generated-2.wav", "generated.json",
                                  "generated.wav"]  # no temporaries, no moved-aside files


@pytest.fixture()
def codes_file(tmp_path: Path, codec_dir: Path) -> Path:
    from musigen.codec import Codec
    from musigen.codec_files import save_codes

    codec = Codec.from_pretrained(codec_dir)
    codes = torch.randint(0, codec.cardinality, (codec.num_codebooks, 20))
    return save_codes(tmp_path / "c.safetensors", codes, codec, 20 * codec.hop_length,
                      str(codec_dir))


def _writers(tmp_path: Path, codes: Path, codec_dir: Path) -> dict[str, tuple[list[str], Path]]:
    """command line -> (argv writing to the returned path, that path) for every file writer."""
    song = _wav(tmp_path / "song.wav")
    out = tmp_path / "out"
    return {
        "codec-encode": (["codec", "encode", str(song), "--model", str(codec_dir), "--out",
                          str(out.with_suffix(".safetensors"))], out.with_suffix(".safetensors")),
        "codec-decode": (["codec", "decode", str(codes), "--model", str(codec_dir), "--out",
                          str(out.with_suffix(".wav"))], out.with_suffix(".wav")),
        "analyze-json": (["analyze", str(song), "--json", str(out.with_suffix(".json"))],
                         out.with_suffix(".json")),
        "analyze-plot": (["analyze", str(song), "--plot", str(out.with_suffix(".png"))],
                         out.with_suffix(".png")),
        "chords-lab": (["chords", str(song), "--method", "templates", "--lab",
                        str(out.with_suffix(".lab"))], out.with_suffix(".lab")),
        "embed-out": (["embed", str(song), "--out", str(out.with_suffix(".safetensors"))],
                      out.with_suffix(".safetensors")),
        "edit-out": (["edit", str(song), "-i", "remove drums", "--out",
                      str(out.with_suffix(".wav"))], out.with_suffix(".wav")),
        "fad-json": (["eval", "fad", str(tmp_path), str(tmp_path), "--json",
                      str(out.with_suffix(".json"))], out.with_suffix(".json")),
        "data-import": (["data", "import", "musdb", str(tmp_path), "--out",
                         str(out.with_suffix(".jsonl"))], out.with_suffix(".jsonl")),
    }


WRITERS = ["codec-encode", "codec-decode", "analyze-json", "analyze-plot", "chords-lab",
           "embed-out", "edit-out", "fad-json", "data-import"]


@pytest.mark.parametrize("name", WRITERS)
def test_every_writer_refuses_an_existing_output(
        name: str, tmp_path: Path, codes_file: Path, codec_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv, target = _writers(tmp_path, codes_file, codec_dir)[name]
    target.write_text("the user's file\n")
    assert main(argv) == 2
    _one_error_line(capsys, target.name, "--overwrite")
    assert target.read_text() == "the user's file\n"


@pytest.mark.parametrize("name", ["codec-encode", "codec-decode", "analyze-json", "chords-lab",
                                  "embed-out"])
def test_every_writer_refuses_its_input_even_with_overwrite(
        name: str, tmp_path: Path, codes_file: Path, codec_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv, target = _writers(tmp_path, codes_file, codec_dir)[name]
    source = codes_file if name == "codec-decode" else tmp_path / "song.wav"
    argv = [str(source) if a == str(target) else a for a in argv] + ["--overwrite"]
    before = source.read_bytes()
    assert main(argv) == 2
    _one_error_line(capsys, "input")
    assert source.read_bytes() == before


def test_codec_round_trip_still_writes_and_overwrites(
        tmp_path: Path, codec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = _wav(tmp_path / "song.wav", 0.5)
    codes, back = tmp_path / "c.safetensors", tmp_path / "back.wav"
    assert main(["codec", "encode", str(song), "--model", str(codec_dir), "--out", str(codes)]) == 0
    assert main(["codec", "decode", str(codes), "--model", str(codec_dir), "--out", str(back)]) == 0
    assert back.is_file() and back.with_suffix(".json").is_file()
    decode = ["codec", "decode", str(codes), "--model", str(codec_dir), "--out", str(back)]
    assert main(decode) == 2
    assert main([*decode, "--overwrite"]) == 0


def test_edit_picks_a_free_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from musigen.output_paths import free_name

    monkeypatch.chdir(tmp_path)
    assert free_name(Path("x_edit.wav"), sidecar=True) == Path("x_edit.wav")
    (tmp_path / "x_edit.json").write_text("{}")  # a sidecar alone takes the name too
    assert free_name(Path("x_edit.wav"), sidecar=True) == Path("x_edit-2.wav")
    (tmp_path / "x_edit-2.wav").write_text("")
    assert free_name(Path("x_edit.wav"), sidecar=True) == Path("x_edit-3.wav")
    taken = [Path("x_edit-3.wav")]
    assert free_name(Path("x_edit.wav"), sidecar=True, taken=taken) == Path("x_edit-4.wav")


# ------------------------------------------------------------------ read-only and full disks


def _almost_full(path: object) -> object:
    """shutil.disk_usage of a 1 GB disk with 1000 bytes free."""
    import shutil

    return shutil._ntuple_diskusage(10**9, 10**9, 1000)  # type: ignore[attr-defined]


def test_read_only_folder_is_found_before_the_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import tempfile

    song = _wav(tmp_path / "s.wav")
    ro = tmp_path / "ro"
    ro.mkdir()
    real = tempfile.mkstemp

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        if Path(str(kwargs.get("dir"))) == ro:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    # no model is given or needed: the refusal comes before the model would load
    assert main(["edit", str(song), "-i", "remove drums", "--out", str(ro / "e.wav"),
                 "--model", str(tmp_path / "no-such-model")]) == 2
    _one_error_line(capsys, "not writable")


def test_full_disk_is_found_before_sampling(
        tmp_path: Path, musicot_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from musigen.musicot.pipeline import MusiCoTPipeline

    monkeypatch.setattr(shutil, "disk_usage", _almost_full)
    monkeypatch.setattr(MusiCoTPipeline, "__call__", lambda *a, **k: pytest.fail("sampled"))
    out = tmp_path / "g.wav"
    assert main(["generate", "-p", "jazz", "--duration", "5", "--model", str(musicot_dir),
                 "--out", str(out)]) == 2
    _one_error_line(capsys, "free space")
    assert not out.exists()


@pytest.mark.parametrize("fail_at", ["audio-write", "sidecar-write", "second-rename"])
def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     fail_at: str) -> None:
    from musigen import atomic
    from musigen.audio import save_audio

    full = OSError(errno.ENOSPC, "No space left on device")
    if fail_at == "audio-write":
        monkeypatch.setattr(sf, "write", lambda *a, **k: (_ for _ in ()).throw(full))
    elif fail_at == "sidecar-write":
        monkeypatch.setattr(Path, "write_text", lambda *a, **k: (_ for _ in ()).throw(full))
    else:
        real, calls = os.replace, []

        def replace(src: str, dst: str) -> None:
            calls.append(dst)
            if len(calls) == 2:
                raise full
            real(src, dst)

        monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError):
        save_audio(tmp_path / "out.wav", np.zeros(SR, np.float32), SR, provenance={"seed": 0})
    assert _listing(tmp_path) == []


def test_failed_overwrite_keeps_the_old_pair(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from musigen import atomic
    from musigen.audio import save_audio

    save_audio(tmp_path / "out.wav", np.zeros(SR, np.float32), SR, provenance={"seed": 0})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real, calls = os.replace, []

    def replace(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 4:  # old wav aside, new wav in, old json aside, new json in: fails
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError):
        save_audio(tmp_path / "out.wav", np.ones(SR, np.float32) * 0.5, SR, provenance={"seed": 1})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_full_disk_through_the_cli_is_one_line_and_leaves_nothing(
        tmp_path: Path, codes_file: Path, codec_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "decoded"
    out_dir.mkdir()

    def full(*args: object, **kwargs: object) -> None:
        Path(str(args[0])).write_bytes(b"partial")  # a write that got part way
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sf, "write", full)
    assert main(["codec", "decode", str(codes_file), "--model", str(codec_dir), "--out",
                 str(out_dir / "x.wav")]) == 1
    _one_error_line(capsys, "No space left")
    assert _listing(out_dir) == []


# ------------------------------------------------------------------ bounded resources


def _too_many_threads() -> str:
    from musigen.limits import core_count

    return str(core_count() + 1)


@pytest.mark.parametrize("argv", [
    ["generate", "-p", "jazz", "--threads", "100000"],
    ["generate", "-p", "jazz", "--threads", "CORES+1"],
    ["edit", "IN", "-i", "remove drums", "--threads", "5000"],
    ["encode", "instructme", "--out", "x", "--threads", "5000"],
    ["encode", "shards", "--manifest", "m.jsonl", "--out", "x", "--workers", "5000"],
    ["train", "chords", "--out", "x", "--threads", "5000"],
    ["eval", "codec-corpus", "--out", "x", "--threads", "5000"],
], ids=["generate-100000", "generate-cores+1", "edit", "encode-instructme", "encode-shards",
        "train-chords", "eval-codec-corpus"])
def test_thread_counts_above_the_cores_are_refused(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = _wav(tmp_path / "in.wav")
    argv = [str(song) if a == "IN" else _too_many_threads() if a == "CORES+1" else a for a in argv]
    threads_before = torch.get_num_threads()
    assert main(argv) == 2
    _one_error_line(capsys, "core")
    assert torch.get_num_threads() == threads_before
    assert _listing(tmp_path) == ["in.wav"]


def _codes(path: Path, frames: int, **meta: str) -> Path:
    from safetensors.torch import save_file

    header = {"format": "musigen-codes-v1", "model": "no-such-codec", "sample_rate": "32000",
              "frame_rate": "50", "num_samples": str(frames * 640), "cardinality": "2048",
              "num_codebooks": "1"} | meta
    save_file({"codes": torch.zeros(1, frames, dtype=torch.int16)}, str(path), metadata=header)
    return path


@pytest.mark.parametrize("case,frames,meta,words", [
    ("hours of frames", 61 * 60 * 50 // 3, {}, ["min of codes", "at most 20"]),
    ("lying length", 10, {"num_samples": "960000000"}, ["960000000 samples"]),
    ("lying codebooks", 10, {"num_codebooks": "4"}, ["4 codebooks"]),
    ("bad rate", 10, {"sample_rate": "abc"}, ["not a number"]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_codes_headers_are_checked_before_anything_is_decoded(
        case: str, frames: int, meta: dict[str, str], words: list[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.codec import Codec

    if case == "hours of frames":  # 21 min at 50 frames/s; the file itself is 120 kB
        meta = {"frame_rate": str(frames / (21 * 60))}
    monkeypatch.setattr(Codec, "from_pretrained",
                        classmethod(lambda *a, **k: pytest.fail("loaded")))
    codes = _codes(tmp_path / "c.safetensors", frames, **meta)
    assert main(["codec", "decode", str(codes), "--out", str(tmp_path / "x.wav")]) == 2
    _one_error_line(capsys, *words)
    assert not (tmp_path / "x.wav").exists()


def _long_wav(path: Path, minutes: float, sr: int = 1000) -> Path:
    """A long file that is small on disk: by default 1 kHz mono 16-bit (120 kB a minute)."""
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        block = (0.25 * np.sin(2 * np.pi * 50 * np.arange(60 * sr) / sr)).astype(np.float32)
        for _ in range(int(minutes)):
            f.write(block)
    return path


def test_info_reads_a_long_file_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import tracemalloc

    from musigen import audio, audio_levels

    import scipy.signal  # noqa: F401 - imported before measuring: its import alone peaks at 45 MB

    long = _long_wav(tmp_path / "long.wav", 30, sr=4000)  # K-weighting needs 1.7 kHz < Nyquist
    monkeypatch.setattr(audio, "load_audio", lambda *a, **k: pytest.fail("read whole"))
    reads: list[int] = []
    real_read = sf.SoundFile.read

    def read(self: sf.SoundFile, frames: int = -1, *args: object, **kwargs: object) -> object:
        reads.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", read)
    tracemalloc.start()
    assert main(["info", str(long)]) == 0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = capsys.readouterr().out
    assert "1800.000 s" in out and "-12.04 dBFS" in out
    assert reads and 0 < max(reads) <= audio_levels.BLOCK_FRAMES
    assert peak < 6e6, peak  # the whole file as float32 would be 28.8 MB
    # the same numbers as measuring the whole array at once
    wav, sr = sf.read(long, dtype="float32", always_2d=True)
    assert f"{audio.loudness_lufs(wav.T, sr):.2f} LUFS" in out


@pytest.mark.parametrize("argv", [
    ["edit", "LONG", "-i", "remove drums"],
    ["codec", "encode", "LONG", "--out", "c.safetensors"],
    ["chords", "LONG", "--method", "templates"],
    ["generate", "-p", "jazz", "--ref", "LONG"],
], ids=["edit", "codec-encode", "chords", "generate-ref"])
def test_over_long_inputs_are_refused_from_the_header(
        argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from musigen import audio

    monkeypatch.chdir(tmp_path)
    long = _long_wav(tmp_path / "long.wav", 21)
    monkeypatch.setattr(audio, "load_audio", lambda *a, **k: pytest.fail("decoded"))
    assert main([str(long) if a == "LONG" else a for a in argv]) == 2
    _one_error_line(capsys, "21.0 min", "at most 20 min")
    assert _listing(tmp_path) == ["long.wav"]


@pytest.mark.parametrize("argv,words", [
    (["generate", "-p", "jazz", "--duration", "1e9"], ["duration", "600"]),
    (["data", "synth", "--n", "1", "--duration", "1e9", "--out", "corpus"], ["--duration", "3600"]),
    (["data", "synth", "--n", "0", "--out", "corpus"], ["--n"]),
])
def test_durations_are_capped(argv: list[str], words: list[str], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    _one_error_line(capsys, *words)
    assert _listing(tmp_path) == []


# ------------------------------------------------------------------ the demo app


def test_demo_refuses_a_large_upload_before_reading_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from musigen import audio
    from musigen.demo_app import handlers
    from musigen.errors import AudioError

    big = tmp_path / "holiday.wav"
    with big.open("wb") as f:  # 300 MB on paper, nothing on disk (sparse), and not audio
        f.truncate(300_000_000)
    monkeypatch.setattr(audio, "load_audio", lambda *a, **k: pytest.fail("decoded"))
    monkeypatch.setattr(audio, "audio_info", lambda *a, **k: pytest.fail("opened"))
    with pytest.raises(AudioError,
                       match=r"holiday.wav is 300 MB; this demo takes files up to 50 MB"):
        handlers.load_piece(str(big), "piece to edit", handlers.DEFAULT_LIMITS)


def test_demo_refuses_a_long_upload_from_its_header(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from musigen import audio
    from musigen.demo_app import handlers
    from musigen.errors import AudioError

    long = _long_wav(tmp_path / "long.wav", 6)
    monkeypatch.setattr(audio, "load_audio", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(AudioError, match=r"long.wav is 360 s long; this demo takes at most 300 s"):
        handlers.load_piece(str(long), "style reference", handlers.DEFAULT_LIMITS)


@pytest.mark.parametrize("flag", ["--max-upload-mb", "--max-input-duration"])
def test_demo_limits_are_checked(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", flag, "0"]) == 2
    _one_error_line(capsys, flag)


def test_demo_folders_are_private_and_removed(tmp_path: Path) -> None:
    gr = pytest.importorskip("gradio")
    from musigen.demo_app.session_files import demo_files

    before = os.environ.get("GRADIO_TEMP_DIR")
    with demo_files() as folders:
        assert os.environ["GRADIO_TEMP_DIR"] == str(folders.cache)
        assert Path(gr.Audio(type="filepath").GRADIO_CACHE) == folders.cache  # uploads land here
        (folders.cache / "upload.wav").write_bytes(b"x" * 1000)
        (folders.work / "generated.wav").write_bytes(b"x")
    assert not folders.cache.exists() and not folders.work.exists()
    assert os.environ.get("GRADIO_TEMP_DIR") == before
    # a --work-dir the user named is theirs: kept, even after an interruption
    with pytest.raises(KeyboardInterrupt), demo_files(tmp_path / "mine") as folders:
        (folders.work / "result.wav").write_bytes(b"x")
        raise KeyboardInterrupt
    assert (tmp_path / "mine" / "result.wav").is_file() and not folders.cache.exists()


def test_demo_folders_are_removed_on_sigterm(tmp_path: Path) -> None:
    import signal
    import subprocess

    code = ("import time\nfrom musigen.demo_app.session_files import demo_files\n"
            "try:\n"
            "    with demo_files() as f:\n"
            "        (f.cache / 'up.wav').write_bytes(b'x')\n"
            "        print(f.cache.parent, flush=True)\n"
            "        time.sleep(60)\n"
            "except KeyboardInterrupt:\n"
            "    pass\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    root = Path(proc.stdout.readline().strip())
    assert root.is_dir()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not root.exists()


# ------------------------------------------------------------------ edit, end to end


@pytest.fixture(scope="module")
def edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo_tiny import tiny_edit_pipeline

    torch.set_num_threads(1)
    return tiny_edit_pipeline().save_pretrained(tmp_path_factory.mktemp("instructme") / "pipe")


def test_edits_without_out_take_free_names(tmp_path: Path, edit_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from demo_tiny import EDIT_SR, chord_clip

    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "jazz.wav", chord_clip(1.0), EDIT_SR)
    for instruction in ("remove drums", "add piano"):
        assert main(["edit", "jazz.wav", "-i", instruction, "--steps", "2",
                     "--model", str(edit_dir)]) == 0
    assert _listing(tmp_path) == ["jazz.wav", "jazz_edit-2.json", "jazz_edit-2.wav",
                                  "jazz_edit.json", "jazz_edit.wav"]
    import json

    second = json.loads((tmp_path / "jazz_edit-2.json").read_text())["provenance"]
    assert second["instructions"] == ["add piano"]


def test_edit_checks_free_space_before_sampling(
        tmp_path: Path, edit_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from demo_tiny import EDIT_SR, chord_clip

    from musigen.instructme.pipeline import InstructMEPipeline

    sf.write(tmp_path / "jazz.wav", chord_clip(1.0), EDIT_SR)
    monkeypatch.setattr(shutil, "disk_usage", _almost_full)
    monkeypatch.setattr(InstructMEPipeline, "__call__", lambda *a, **k: pytest.fail("sampled"))
    assert main(["edit", str(tmp_path / "jazz.wav"), "-i", "remove drums", "--model", str(edit_dir),
                 "--out", str(tmp_path / "e.wav")]) == 2
    _one_error_line(capsys, "free space")
    assert _listing(tmp_path) == ["jazz.wav"]


def test_data_synth_refuses_a_folder_that_holds_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "manifest.jsonl").write_text("my manifest\n")
    assert main(["data", "synth", "--n", "1", "--duration", "1", "--out", str(corpus),
                 "--no-progress"]) == 2
    _one_error_line(capsys, "not empty", "--overwrite")
    assert (corpus / "manifest.jsonl").read_text() == "my manifest\n"
