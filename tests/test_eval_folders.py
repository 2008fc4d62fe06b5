"""`musigen eval fad` and `musigen eval clap-score` on folders of a user's own audio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from musigen.audio import save_audio
from musigen.cli import main

TINY_CLAP = {"channels": [8, 16, 32], "n_mels": 32, "embed_dim": 32, "text_hidden": 64, "window_s": 1.0}


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random musigen CLAP, saved where the `clap` default looks (`$MUSIGEN_CHECKPOINTS/clap_demo`)."""
    import torch

    from musigen.embedders.musigen_clap import MusigenClap, MusigenClapConfig

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("checkpoints")
    MusigenClap(MusigenClapConfig(**TINY_CLAP)).eval().save_pretrained(root / "clap_demo")
    return root / "clap_demo"


def _tones(folder: Path, rates: list[int], channels: list[int], seed: int) -> Path:
    """Harmonic tones at assorted rates and channel counts, plus a JSON sidecar that must be ignored."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i, (sr, ch) in enumerate(zip(rates, channels)):
        t = np.arange(int(2.5 * sr)) / sr
        f0 = rng.uniform(110, 440)
        wav = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)).astype(np.float32) * 0.3
        save_audio(folder / f"clip{i}.wav", np.stack([wav] * ch), sr)
    (folder / "clip0.json").write_text("{}")
    return folder


def _noise(folder: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        save_audio(folder / f"noise{i}.flac", (rng.standard_normal(40000) * 0.3).astype(np.float32), 16000)
    return folder


def _fad(args: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> float:
    out = tmp_path / "fad.json"
    # one report path for every call: --overwrite replaces the previous one
    assert main(["eval", "fad", *args, "--json", str(out), "--overwrite"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("FAD ")
    return float(json.loads(out.read_text())["value"])


def test_fad_of_a_folder_against_itself_is_zero_and_grows_for_another(
        tmp_path: Path, clap_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MUSIGEN_CHECKPOINTS", str(clap_dir.parent))
    tones = _tones(tmp_path / "tones", [16000, 44100, 22050], [1, 2, 1], seed=0)
    noise = _noise(tmp_path / "noise", 3, seed=1)
    same = _fad([str(tones), str(tones)], capsys, tmp_path)  # default embedder: the demo CLAP location
    other = _fad([str(tones), str(noise)], capsys, tmp_path)
    saved = json.loads((tmp_path / "fad.json").read_text())
    assert saved["n_reference"] == 9 and saved["n_test"] == 9  # 3 files x 3 one-second windows, sidecar ignored
    assert abs(same) < 1e-6 * max(other, 1e-12) + 1e-9
    assert other > 1e-6
    # an explicit folder gives the same embedder, so the same number
    again = _fad([str(tones), str(noise), "--embedder", str(clap_dir)], capsys, tmp_path)
    assert again == pytest.approx(other, rel=1e-6)


def test_fad_with_the_judge_as_embedder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.judge.model import InstrumentJudge, JudgeConfig

    judge_dir = tmp_path / "judge"
    InstrumentJudge(JudgeConfig(channels=[4, 8, 8, 8], embedding_dim=8)).save_pretrained(judge_dir)
    tones = _tones(tmp_path / "tones", [16000, 32000, 16000], [1, 1, 2], seed=2)
    noise = _noise(tmp_path / "noise", 3, seed=3)
    same = _fad([str(tones), str(tones), "--embedder", str(judge_dir)], capsys, tmp_path)
    other = _fad([str(tones), str(noise), "--embedder", str(judge_dir)], capsys, tmp_path)
    assert abs(same) < 1e-6 * other + 1e-9 and other > 0


def test_clap_score_with_text_and_jsonl_prompts(
        tmp_path: Path, clap_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MUSIGEN_CHECKPOINTS", str(clap_dir.parent))
    tones = _tones(tmp_path / "tones", [16000, 44100, 8000], [2, 1, 1], seed=4)
    prompts = ["calm piano", "loud drums and bass", "a guitar solo"]
    text = tmp_path / "prompts.txt"
    text.write_text("\n".join(prompts) + "\n\n")
    out = tmp_path / "score.json"
    assert main(["eval", "clap-score", str(tones), "--prompts", str(text), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert -1.0 <= result["value"] <= 1.0 and result["n"] == 3
    assert set(result["per_file"]) == {"clip0.wav", "clip1.wav", "clip2.wav"}
    assert all(-1.0 <= v <= 1.0 for v in result["per_file"].values())
    # the same pairs as JSONL, listed out of order, give the same scores
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text("\n".join(json.dumps({"file": f"clip{i}.wav", "prompt": prompts[i]}) for i in (2, 0, 1)))
    out2 = tmp_path / "score2.json"
    assert main(["eval", "clap-score", str(tones), "--prompts", str(jsonl), "--json", str(out2),
                 "--embedder", str(clap_dir)]) == 0
    assert json.loads(out2.read_text())["per_file"] == pytest.approx(result["per_file"])
    capsys.readouterr()


def _one_line_error(args: list[str], capsys: pytest.CaptureFixture[str], needle: str) -> None:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("musigen: error:") and "\n" not in err and needle in err, err


def test_folder_metrics_bad_input_is_one_line_and_exit_2(
        tmp_path: Path, clap_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MUSIGEN_CHECKPOINTS", str(clap_dir.parent))
    tones = _tones(tmp_path / "tones", [16000, 16000], [1, 1], seed=5)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here")
    broken = _tones(tmp_path / "broken", [16000], [1], seed=6)
    (broken / "bad.wav").write_bytes(b"RIFF-not-really-a-wav" * 10)
    _one_line_error(["eval", "fad", str(tones), str(tmp_path / "missing")], capsys, "missing")
    _one_line_error(["eval", "fad", str(empty), str(tones)], capsys, "no audio files")
    _one_line_error(["eval", "fad", str(tones), str(broken)], capsys, "bad.wav")
    _one_line_error(["eval", "fad", str(tones), str(tones), "--embedder", str(tmp_path / "nope")], capsys, "nope")
    prompts = tmp_path / "three.txt"
    prompts.write_text("a\nb\nc\n")
    _one_line_error(["eval", "clap-score", str(tones), "--prompts", str(prompts)], capsys, "3 prompts for 2")
    _one_line_error(["eval", "clap-score", str(tones), "--prompts", str(tmp_path / "none.txt")], capsys, "none.txt")
    _one_line_error(["eval", "clap-score", str(empty), "--prompts", str(prompts)], capsys, "no audio files")
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"file": "clip0.wav", "prompt": "x"}) + "\n")
    _one_line_error(["eval", "clap-score", str(tones), "--prompts", str(jsonl)], capsys, "clip1.wav")
    jsonl.write_text("{not json\n")
    _one_line_error(["eval", "clap-score", str(tones), "--prompts", str(jsonl)], capsys, "not JSON")
    # no default CLAP anywhere: neither under $MUSIGEN_CHECKPOINTS nor beside the package
    import musigen.checkpoints

    monkeypatch.setenv("MUSIGEN_CHECKPOINTS", str(tmp_path / "no_checkpoints"))
    monkeypatch.setattr(musigen.checkpoints, "source_checkpoints", lambda: None)
    _one_line_error(["eval", "fad", str(tones), str(tones)], capsys, "clap_demo")
