"""The demo's handlers, history and page fragments, without a browser (tiny random models)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from demo_tiny import EDIT_SR, chord_clip, save_tiny_models

from musigen.chords import majmin_label
from musigen.cli import main
from musigen.demo_app import handlers, render
from musigen.demo_app.handlers import DemoLimits
from musigen.demo_app.history import EditHistory
from musigen.demo_app.models import DemoModels, ModelPaths
from musigen.errors import (
    AudioDecodeError,
    AudioError,
    CheckpointError,
    ConfigError,
    MusigenError,
    VocabularyError,
)
from musigen.edits import InstructionError
from musigen.vocab import GENRES, INSTRUMENTS


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> DemoModels:
    gen, edit = save_tiny_models(tmp_path_factory.mktemp("demo_models"))
    return DemoModels(ModelPaths(gen, edit))


@pytest.fixture(scope="module")
def nowhere(tmp_path_factory: pytest.TempPathFactory) -> DemoModels:
    """Models whose folders do not exist: any handler that gets this far fails to load."""
    root = tmp_path_factory.mktemp("none")
    return DemoModels(ModelPaths(root / "gen", root / "edit"))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "triad.wav"
    sf.write(path, chord_clip(), EDIT_SR)
    return path


def _gen(models: DemoModels, out: Path, **kw: object) -> handlers.GenerateOutput:
    args = {"prompt": "calm jazz with piano", "reference": None, "duration": 2.0, "seed": 3,
            "thought_temperature": 1.0, "audio_temperature": 1.0, "thought_cfg": 2.0,
            "audio_cfg": 2.0}
    args.update(kw)
    return handlers.generate(models, out, **args)  # type: ignore[arg-type]


def test_generate_writes_audio_provenance_spectrogram_and_plan(models: DemoModels,
                                                               tmp_path: Path) -> None:
    seen: list[tuple[float, str]] = []
    out = _gen(models, tmp_path, progress=lambda f, text: seen.append((f, text)))
    wav, sr = sf.read(out.audio_path, dtype="float32")
    assert sr == 8000 and wav.shape == (2 * 8000,) and np.abs(wav).max() > 0
    prov = json.loads(out.audio_path.with_suffix(".json").read_text())["provenance"]
    assert prov["prompt"] == "calm jazz with piano" and prov["seed"] == 3
    assert prov["parameters"]["sampling"]["thought_cfg"] == 2.0
    assert out.spectrogram_path.read_bytes()[:4] == b"\x89PNG"
    assert [(s.start, s.end) for s in out.segments] == [(0.0, 1.0), (1.0, 2.0)]
    assert all(s.tags["instrument"][0][0] in INSTRUMENTS for s in out.segments)
    assert out.timeline_html.count("<tr>") == 3 and "generated 2 s" in out.message
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] < 1  # progress only moves forward
    same = _gen(models, tmp_path)
    other = _gen(models, tmp_path, seed=4)
    np.testing.assert_array_equal(sf.read(same.audio_path)[0], sf.read(out.audio_path)[0])
    assert not np.array_equal(sf.read(other.audio_path)[0], wav)
    assert same.audio_path != out.audio_path  # every result is kept in its own file


def test_generate_follows_a_style_reference(models: DemoModels, source: Path,
                                            tmp_path: Path) -> None:
    plain = _gen(models, tmp_path, duration=1.0)
    styled = _gen(models, tmp_path, duration=1.0, reference=str(source))
    assert "style reference" in styled.message
    prov = json.loads(styled.audio_path.with_suffix(".json").read_text())["provenance"]
    assert prov["reference"] == str(source)
    assert not np.array_equal(sf.read(plain.audio_path)[0], sf.read(styled.audio_path)[0])


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("prompt", "   ", "prompt is empty"),
    ("duration", 0, "more than 0"),
    ("duration", -3, "duration"),
    ("duration", 100000, "maximum of 60 s"),
    ("duration", float("nan"), "duration"),
    ("duration", None, "duration is empty"),
    ("duration", "ten", "must be a number"),
    ("seed", -1, "seed"),
    ("seed", 1.5, "whole number"),
    ("thought_temperature", -0.5, "plan temperature"),
    ("audio_cfg", float("inf"), "audio CFG"),
])
def test_generate_refuses_bad_input_before_loading_a_model(
    nowhere: DemoModels, tmp_path: Path, field: str, value: object, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        _gen(nowhere, tmp_path, **{field: value})
    assert not list(tmp_path.iterdir())


def test_corrupt_missing_and_overlong_uploads(nowhere: DemoModels, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(AudioDecodeError):
        _gen(nowhere, tmp_path, reference=str(corrupt))
    with pytest.raises(AudioDecodeError, match="cannot decode corrupt.wav") as info:
        handlers.start_history(str(corrupt), "upload")
    assert str(tmp_path) not in str(info.value)  # the server's folders stay private
    with pytest.raises(AudioError, match="upload an audio file"):
        handlers.start_history(None, "upload")
    with pytest.raises(AudioError):
        handlers.analyze(nowhere, str(tmp_path / "missing.wav"), tmp_path)
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(8000 * 5, np.float32), 8000)
    with pytest.raises(AudioError, match="at most 4 s"):
        handlers.start_history(str(long), "upload", DemoLimits(max_input_s=4))


def test_missing_models_name_the_flag(nowhere: DemoModels, source: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="--model-gen"):
        _gen(nowhere, tmp_path)
    h = handlers.start_history(str(source), "upload")
    with pytest.raises(CheckpointError, match="--model-edit"):
        handlers.edit(nowhere, h, tmp_path, "remove drums", 0, 2, 3.0, 1.5)
    assert [ok for _, _, ok in nowhere.status()] == [False, False]
    default = DemoModels(ModelPaths(None, None))
    assert default.paths.gen_dir().name == "musicot_demo"
    assert default.paths.edit_dir().name == "instructme_demo"


def test_multi_round_editing_history_and_restore(models: DemoModels, source: Path,
                                                 tmp_path: Path) -> None:
    h = handlers.start_history(str(source), "upload triad.wav")
    first = handlers.edit(models, h, tmp_path, "remove drums", 0, 2, 3.0, 1.5)
    second = handlers.edit(models, first.history, tmp_path, "add piano", 0, 2, 3.0, 1.5)
    h2 = second.history
    assert len(h2.versions) == 3 and h2.current == 2
    assert [v.parent for v in h2.versions] == [None, 0, 1]
    assert [v.instruction for v in h2.versions] == [None, "remove drums", "add piano"]
    wavs = [sf.read(v.path, dtype="float32")[0] for v in h2.versions]
    assert all(w.size == 2 * EDIT_SR and np.isfinite(w).all() for w in wavs)
    assert not np.allclose(wavs[1], wavs[2])  # round two edited round one's output
    # the source's chords were read when it was edited, and the triad reads as C major
    assert any(majmin_label(lab) == "C:maj" for _, _, lab in h2.versions[0].chords or ())
    assert "source: v1" in second.comparison_html and "edit: v2" in second.comparison_html
    assert "same chord" in second.comparison_html and "v2: 'add piano'" in second.message.replace(
        "&#x27;", "'")
    # restore v1, edit again: the new version branches from v1 and nothing is lost
    back = handlers.restore(h2, 1)
    assert back.history.current == 1 and "restored v1" in back.message
    third = handlers.edit(models, back.history, tmp_path, "remix to funk genre", 0, 2, 3.0, 1.5)
    assert len(third.history.versions) == 4 and third.history.versions[3].parent == 1
    assert third.history.lineage(3) == [0, 1, 3]
    assert all(Path(v.path).is_file() for v in third.history.versions)
    prov = json.loads(Path(third.history.versions[3].path).with_suffix(".json").read_text())
    assert prov["provenance"]["source_version"] == 1
    assert prov["provenance"]["instruction"] == "remix to funk genre"


@pytest.mark.parametrize(("instruction", "error", "needle"), [
    ("", InstructionError, "empty"),
    ("   ", InstructionError, "empty"),
    ("remove the kazoo", VocabularyError, "unknown instrument 'kazoo'"),
    ("remix to polka genre", VocabularyError, "unknown genre"),
    ("hello there", InstructionError, "cannot understand"),
])
def test_bad_instructions_leave_the_history_alone(
    nowhere: DemoModels, source: Path, tmp_path: Path, instruction: str,
    error: type[MusigenError], needle: str
) -> None:
    h = handlers.start_history(str(source), "upload")
    with pytest.raises(error, match=needle):  # refused before any model would load
        handlers.edit(nowhere, h, tmp_path, instruction, 0, 2, 3.0, 1.5)
    assert len(h.versions) == 1 and not list(tmp_path.iterdir())


def test_edit_needs_a_source_and_sane_settings(nowhere: DemoModels, source: Path,
                                               tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to edit"):
        handlers.edit(nowhere, EditHistory(), tmp_path, "remove drums", 0, 2, 3.0, 1.5)
    h = handlers.start_history(str(source), "upload")
    with pytest.raises(ConfigError, match="steps"):
        handlers.edit(nowhere, h, tmp_path, "remove drums", 0, 0, 3.0, 1.5)
    with pytest.raises(ConfigError, match="source guidance"):
        handlers.edit(nowhere, h, tmp_path, "remove drums", 0, 2, 3.0, -1)
    with pytest.raises(ConfigError, match="no version v5"):
        handlers.restore(h, 5)
    with pytest.raises(ConfigError, match="empty"):
        handlers.restore(EditHistory(), 0)


def test_analyze_gives_tags_per_segment_and_chords(models: DemoModels, source: Path,
                                                   tmp_path: Path) -> None:
    out = handlers.analyze(models, str(source), tmp_path)
    assert [(s.start, s.end) for s in out.segments] == [(0.0, 1.0), (1.0, 2.0)]
    assert {"instrument", "genre", "mood", "section"} <= set(out.segments[0].tags)
    labels = [lab for _, _, lab in out.chords]
    assert any(majmin_label(lab) == "C:maj" for lab in labels)
    assert all(lab in out.chords_html for lab in labels) and "thought tokens" in out.timeline_html
    assert out.spectrogram_path.read_bytes()[:4] == b"\x89PNG"


def test_history_is_immutable_and_checks_indices(source: Path) -> None:
    h = EditHistory.start(str(source), "src")
    h1 = h.add("a.wav", "remove drums")
    assert len(h.versions) == 1 and len(h1.versions) == 2 and h1.current == 1
    assert h1.restore(0).current == 0 and h1.current == 1
    with pytest.raises(ConfigError):
        h1.restore(2)
    with pytest.raises(ConfigError):
        h1.restore(True)  # type: ignore[arg-type]
    assert h1.versions[1].title() == 'v1 · "remove drums" (from v0)'


def test_fragments_escape_and_measure() -> None:
    c = [(0.0, 1.0, "C:maj"), (1.0, 2.0, "G:maj")]
    assert render.chord_agreement(c, c) == 1.0
    assert render.chord_agreement(c, [(0.0, 2.0, "C:maj")]) == pytest.approx(0.5, abs=0.03)
    assert render.chord_agreement([], c) == 0.0
    html = render.chord_comparison(c, c, "<script>x</script>", "b")
    assert "<script>" not in html and "&lt;script&gt;" in html and "100%" in html
    assert "<b>" not in render.message("<b>bold</b>", error=True)
    vocab = render.vocabulary_markdown()
    assert all(name in vocab for name in (*INSTRUMENTS, *GENRES))
    assert "replace X with Y" in vocab and "remix to GENRE genre" in vocab


def test_errors_are_one_line_messages_never_tracebacks() -> None:
    assert handlers.describe_error(VocabularyError("unknown instrument 'kazoo'")) == (
        "unknown instrument 'kazoo'")
    text = handlers.describe_error(RuntimeError("boom"))
    assert text.startswith("internal error (RuntimeError: boom)") and "\n" not in text


def test_page_builds_with_every_component_id(models: DemoModels, tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason="the 'demo' extra (gradio) is not installed")
    from musigen.demo_app.ui import build_app

    app = build_app(models, tmp_path)
    ids = {c.get("props", {}).get("elem_id") for c in app.config["components"]}
    wanted = {"gen-prompt", "gen-reference", "gen-duration", "gen-seed", "gen-temperature-thought",
              "gen-temperature-audio", "gen-cfg-thought", "gen-cfg-audio", "gen-run", "gen-status",
              "gen-audio", "gen-spectrogram", "gen-timeline", "gen-to-edit", "edit-upload",
              "edit-use-generated", "edit-instruction", "edit-run", "edit-status", "edit-current",
              "edit-chords", "analyze-upload", "analyze-run", "analyze-status",
              "analyze-timeline", "analyze-chords", "vocabulary", "model-status"}
    assert wanted <= ids, sorted(wanted - ids)
    # the sliders start at the models' own defaults (the tiny editor asks for 3 steps)
    steps = next(c for c in app.config["components"]
                 if c.get("props", {}).get("elem_id") == "edit-steps")
    assert steps["props"]["value"] == 3


def test_cli_refuses_bad_flags_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for argv in (["demo", "--model-gen", str(tmp_path / "nope")], ["demo", "--port", "0"],
                 ["demo", "--max-duration", "1e9"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("musigen: error:") and "\n" not in err
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the extra were not installed
    assert main(["demo", "--port", "7861"]) == 2
    assert "musigen[demo]" in capsys.readouterr().err


def test_range_fields_limit_the_edit(models: DemoModels, nowhere: DemoModels, source: Path,
                                     tmp_path: Path) -> None:
    h = handlers.start_history(str(source), "upload")
    out = handlers.edit(models, h, tmp_path, "remove drums", 0, 2, 3.0, 1.5,
                        range_start="0.5", range_end="0:01.5")
    before = sf.read(h.versions[0].path, dtype="float32")[0]
    after = sf.read(out.history.current_version().path, dtype="float32")[0]
    s, e = EDIT_SR // 2, 3 * EDIT_SR // 2
    np.testing.assert_array_equal(after[:s], before[:s])
    np.testing.assert_array_equal(after[e:], before[e:])
    assert not np.array_equal(after[s:e], before[s:e])
    prov = json.loads(Path(out.history.current_version().path).with_suffix(".json").read_text())
    assert prov["provenance"]["round_ranges"][0]["spans"] == [[0.5, 1.5]]
    with pytest.raises(ConfigError, match="outside the input"):  # before any model loads
        handlers.edit(nowhere, h, tmp_path, "remove drums", 0, 2, 3.0, 1.5, range_start="5")
    with pytest.raises(ConfigError, match="before it starts"):
        handlers.edit(nowhere, h, tmp_path, "remove drums", 0, 2, 3.0, 1.5,
                      range_start="1.5", range_end="0.5")
