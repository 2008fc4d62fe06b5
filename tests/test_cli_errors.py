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
    assert "--sampling-start" in text and "inversion" in text
    assert "1 samples from pure noise" not in text


@pytest.mark.parametrize("command", ["generate", "edit", "codec encode", "codec decode", "analyze",
                                     "chords", "embed", "eval fad", "eval clap-score", "eval judge",
                                     "data import"])
def test_every_file_writer_has_overwrite(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    assert "--overwrite" in capsys.readouterr().out


# -- strict configs and sampling values ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch
    from demo_tiny import save_tiny_models

    torch.set_num_threads(1)
    musicot, instructme = save_tiny_models(tmp_path_factory.mktemp("tiny_models"))
    return {"generate": musicot, "edit": instructme}


def _json_edit(path: Path, change: Callable[[dict], None]) -> None:
    import json

    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _run_cli(command: str, model: Path, tmp_path: Path, *extra: str) -> list[str]:
    if command == "generate":
        argv = ["generate", "--prompt", "jazz", "--duration", "0.5"]
    else:
        sf.write(tmp_path / "in.wav", _tone(0.5), SR)
        argv = ["edit", str(tmp_path / "in.wav"), "-i", "remove drums", "--steps", "1"]
    return [*argv, "--model", str(model), "--out", str(tmp_path / "out.wav"), *extra]


STRICT_CASES: dict[str, tuple[str, str, Callable[[dict], None], list[str]]] = {
    "lm lacks num_layers": ("generate", "lm/config.json",
                            lambda d: d.pop("num_layers"), ["num_layers"]),
    "pipeline lacks lm": ("generate", "pipeline.json", lambda d: d.pop("lm"), ["'lm'"]),
    "unet lacks heads": ("edit", "unet/config.json", lambda d: d.pop("heads"), ["heads"]),
    "dim is a string": ("generate", "lm/config.json", lambda d: d.update(dim="256"),
                        ["dim must be an integer", '"256"']),
    "heads is a float": ("edit", "unet/config.json", lambda d: d.update(heads=2.5),
                         ["heads must be an integer"]),
    "nested key missing": ("generate", "pipeline.json", lambda d: d["sampling"].pop("top_k"),
                           ["sampling.top_k"]),
    "nested key unknown": ("edit", "pipeline.json",
                           lambda d: d["diffusion"].update(beta_middle=0.1),
                           ["diffusion.beta_middle"]),
    "NaN temperature in the file": ("generate", "pipeline.json",
                                    lambda d: d["sampling"].update(audio_temperature=float("nan")),
                                    ["audio_temperature must be a number", "NaN"]),
    "a list of strings": ("generate", "lm/config.json", lambda d: d.update(delays=["0", "1"]),
                          ["delays must be a list of integers"]),
}


@pytest.mark.parametrize("case", sorted(STRICT_CASES))
def test_strict_configs_are_one_line(case: str, tiny_models: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    command, file, change, words = STRICT_CASES[case]
    model = Path(shutil.copytree(tiny_models[command], tmp_path / "model"))
    _json_edit(model / file, change)
    assert main(_run_cli(command, model, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and len(err[0]) < 500, err
    for word in words:
        assert word in err[0], err[0]
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("command,flags,words", [
    ("generate", ["--temperature-audio", "nan"], ["audio_temperature", "nan"]),
    ("generate", ["--temperature-thought", "-1"], ["thought_temperature"]),
    ("generate", ["--cfg-audio", "inf"], ["audio_cfg", "inf"]),
    ("generate", ["--cfg-thought", "1e9"], ["thought_cfg"]),
    ("generate", ["--top-p", "nan"], ["top_p"]),
    ("edit", ["--guidance-text", "inf"], ["guidance_text", "inf"]),
    ("edit", ["--guidance-source", "nan"], ["guidance_source", "nan"]),
    ("edit", ["--strength", "nan"], ["strength"]),
])
def test_non_finite_sampling_values_are_one_line(
        command: str, flags: list[str], words: list[str], tiny_models: dict[str, Path],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_run_cli(command, tiny_models[command], tmp_path, *flags)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for word in words:
        assert word in err[0], err[0]


def test_sampling_params_refuse_non_finite_values() -> None:
    from musigen.errors import ConfigError
    from musigen.musicot.sampling import SamplingParams

    for bad in ({"audio_temperature": float("nan")}, {"thought_cfg": float("inf")},
                {"audio_cfg": -1.0}, {"top_k": 2.5}, {"top_p": float("nan")},
                {"ref_cfg": float("inf")}, {"thought_temperature": "1"}):
        with pytest.raises(ConfigError):
            SamplingParams(**bad)
    assert SamplingParams(audio_temperature=0, top_k=0, top_p=1.0).top_p == 1.0


@pytest.mark.parametrize("instruction", ["x" * 100_000, "remove " + "y" * 100_000,
                                         "remix to " + "z" * 100_000 + " genre"])
def test_long_user_text_is_shortened_in_errors(
        instruction: str, tiny_models: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    sf.write(tmp_path / "in.wav", _tone(0.5), SR)
    argv = ["edit", str(tmp_path / "in.wav"), "-i", instruction, "--model",
            str(tiny_models["edit"]), "--out", str(tmp_path / "out.wav")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and len(err[0]) < 500 and "\u2026" in err[0], err[0][:300]
