"""Bad input through the CLI: exit code 2, one line on stderr, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musigen.cli import main

SR = 16000


def _tone(seconds: float = 0.5) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(SR * seconds)) / SR)).astype(np.float32)


def _missing(d: Path) -> Path:
    return d / "missing.wav"


def _directory(d: Path) -> Path:
    (d / "folder.wav").mkdir()
    return d / "folder.wav"


def _text(d: Path) -> Path:
    (d / "readme.wav").write_text("not audio at all\n")
    return d / "readme.wav"


def _truncated(d: Path) -> Path:
    sf.write(d / "whole.wav", _tone(1.0), SR, subtype="PCM_16")
    data = (d / "whole.wav").read_bytes()
    (d / "cut.wav").write_bytes(data[: len(data) // 3])
    return d / "cut.wav"


def _zero_length(d: Path) -> Path:
    sf.write(d / "zero.wav", np.zeros((0, 1), np.float32), SR)
    return d / "zero.wav"


def _nan(d: Path) -> Path:
    x = _tone()
    x[100:110] = np.nan
    sf.write(d / "nan.wav", x, SR, subtype="FLOAT")
    return d / "nan.wav"


def _sixteen_channels(d: Path) -> Path:
    sf.write(d / "c16.wav", np.tile(_tone()[:, None], (1, 16)), SR)
    return d / "c16.wav"


BAD: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (_missing, "not found"),
    "directory": (_directory, "directory"),
    "text file": (_text, "cannot decode"),
    "truncated": (_truncated, "truncated"),
    "zero length": (_zero_length, "zero samples"),
    "nan": (_nan, "NaN"),
    "16 channels": (_sixteen_channels, "16 channels"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, expected = BAD[case]
    path = make(tmp_path)
    assert main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("musigen: error:") and expected in lines[0]
    assert str(path.name) in lines[0]
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_subprocess(tmp_path: Path, case: str) -> None:
    path = BAD[case][0](tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "musigen.cli", "info", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_silence_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sf.write(tmp_path / "silence.wav", np.zeros(SR, np.float32), SR)
    assert main(["info", str(tmp_path / "silence.wav")]) == 0
    out = capsys.readouterr().out
    assert "1.000 s" in out and "-inf" in out


def test_info_reports_levels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sf.write(tmp_path / "tone.flac", np.stack([_tone(), _tone()], axis=1), SR)
    assert main(["info", str(tmp_path / "tone.flac")]) == 0
    out = capsys.readouterr().out
    assert "channels:    2" in out and f"{SR} Hz" in out
    assert "-10.46 dBFS" in out  # 20*log10(0.3), the tone's peak


@pytest.mark.parametrize("argv", [
    ["edit", "in.wav", "--instruction", "remove kazoo"],
    ["edit", "missing.wav", "--instruction", "remove drums"],
    ["generate"],
    ["generate", "--prompt", "funk", "--ref", "missing.wav"],
], ids=["edit-unknown-instrument", "edit-missing-audio", "generate-no-prompt", "generate-missing-ref"])
def test_cheap_input_errors_come_before_torch_is_imported(argv: list[str], tmp_path: Path) -> None:
    """Bad arguments, instructions and audio fail without paying for torch / diffusers."""
    sf.write(tmp_path / "in.wav", _tone(), SR)
    code = ("import sys\nfrom musigen.cli import main\nrc = main(sys.argv[1:])\n"
            "print(rc, 'torch' in sys.modules, 'diffusers' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split() == ["2", "False", "False"], (proc.stdout, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def _options_without_help() -> list[str]:
    """Every option and positional of every (sub)command whose help is empty (-h excepted)."""
    import argparse

    from musigen.cli import build_parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif isinstance(action, argparse._HelpAction):
                continue
            elif not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "musigen")
    return missing


def test_every_option_of_every_command_has_help() -> None:
    assert _options_without_help() == []


def test_strength_help_matches_the_start_option() -> None:
    """--strength 1 is not 'pure noise' when the start is the inverted input."""
    import argparse

    from musigen.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    edit = sub.choices["edit"]
    text = next(a.help for a in edit._actions if "--strength" in a.option_strings)
    assert "--start" in text and "inversion" in text and "1 samples from pure noise" not in text


@pytest.mark.parametrize("command", ["generate", "edit", "codec encode", "codec decode", "analyze",
                                     "chords", "embed", "eval fad", "eval clap-score", "eval judge",
                                     "data import"])
def test_every_file_writer_has_overwrite(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    assert "--overwrite" in capsys.readouterr().out
