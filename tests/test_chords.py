"""Chord recognition, chord matrix, .lab I/O, the learned recogniser and the `chords` CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from musigen.chords import (
    CHORD_VOCAB,
    FRAME_RATE,
    MAJMIN_VOCAB,
    QUALITY_INTERVALS,
    ROOTS,
    chord_features,
    chord_matrix,
    default_checkpoint,
    majmin_label,
    normalize_label,
    read_lab,
    recognize_chords,
    write_lab,
)
from musigen.errors import (
    ChannelCountError,
    CheckpointError,
    ConfigError,
    DataError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
    VocabularyError,
)

SR = 16000


def _tone(midi: int, n: int, sr: int, amp: float) -> np.ndarray:
    """A harmonic tone (4 partials, decaying) so chroma sees overtones as in real music."""
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k, a in enumerate((1.0, 0.5, 0.3, 0.2), start=1):
        if f0 * k < sr / 2:
            out += a * np.sin(2 * np.pi * f0 * k * t)
    return amp * out * np.exp(-1.5 * t)


def render_progression(
    chords: list[str], seconds: float = 1.5, sr: int = SR, shift: int = 0
) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Additive-synth block chords with a bass note on the root; returns audio and exact labels."""
    n = int(seconds * sr)
    audio, ref = [], []
    for i, label in enumerate(chords):
        root_name, quality = label.split(":")
        root = (ROOTS.index(root_name) + shift) % 12
        seg = _tone(36 + root, n, sr, 0.5)
        for iv in QUALITY_INTERVALS[quality]:
            seg += _tone(60 + root + iv, n, sr, 0.25)
        audio.append(seg)
        ref.append((i * seconds, (i + 1) * seconds, f"{ROOTS[root]}:{quality}"))
    wav = np.concatenate(audio).astype(np.float32)
    return wav / np.abs(wav).max() * 0.8, ref


def majmin_score(ref: list[tuple[float, float, str]], est: list[tuple[float, float, str]]) -> float:
    from musigen.eval.studies.chord_eval import score_piece

    correct, counted = score_piece(ref, est)
    return correct["majmin"] / counted["majmin"]


PROGRESSION = ["C:maj", "A:min", "F:maj", "G:7", "E:min", "D:min7", "F:maj7", "C:maj"]


# ----------------------------------------------------------------------------- labels and vocab


def test_vocab_is_harte_unique_and_has_no_chord() -> None:
    import mir_eval.chord as mc

    assert CHORD_VOCAB[0] == "N" and len(set(CHORD_VOCAB)) == len(CHORD_VOCAB) == 1 + 12 * len(
        QUALITY_INTERVALS
    )
    for label in CHORD_VOCAB:
        mc.encode(label)  # every label parses as Harte


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("C:maj/3", "C:maj"),  # inversion dropped
        ("Db:min", "C#:min"),  # enharmonic respelling
        ("Bb:7", "A#:7"),
        ("C:9", "C:7"),  # extensions above the octave are dropped
        ("C:maj6", "C:maj"),  # quality outside the vocab -> majmin reduction by its third
        ("A:hdim7", "A:min"),
        ("C:5", "N"),  # no third: nothing to reduce to
        ("X", "N"),
        ("N", "N"),
    ],
)
def test_normalize_label(label: str, expected: str) -> None:
    assert normalize_label(label) == expected


def test_normalize_label_custom_vocab_and_errors() -> None:
    majmin = ("N", "C:maj", "C:min")
    assert normalize_label("C:7", majmin) == "C:maj"
    assert normalize_label("C:min7", majmin) == "C:min"
    assert normalize_label("C:sus4", majmin) == "N"
    assert majmin_label("Eb:maj7") == "D#:maj"
    assert len(MAJMIN_VOCAB) == 25 and all(majmin_label(v) == v for v in MAJMIN_VOCAB)
    with pytest.raises(VocabularyError):
        normalize_label("H:mug")
    with pytest.raises(VocabularyError):
        normalize_label("C:maj", ("C:maj",))  # a vocabulary without N


# ----------------------------------------------------------------------------- chord matrix


def test_chord_matrix_frames_follow_the_labels_at_any_rate() -> None:
    chords = [(0.0, 1.0, "C:maj"), (1.0, 2.5, "A:min"), (2.5, 3.0, "G:7")]
    for rate in (4.0, 10.0, 50.0):  # chord boundaries fall on frame boundaries
        n = int(3.5 * rate)
        m = chord_matrix(chords, rate, n)
        assert m.shape == (n, len(CHORD_VOCAB)) and m.dtype == np.float32
        assert np.all(m.sum(axis=1) == 1.0)
        labels = [CHORD_VOCAB[i] for i in m.argmax(axis=1)]
        centers = (np.arange(n) + 0.5) / rate
        for t, lab in zip(centers, labels):
            want = "C:maj" if t < 1.0 else "A:min" if t < 2.5 else "G:7" if t < 3.0 else "N"
            assert lab == want, (rate, t)


def test_chord_matrix_majority_overlap_reduction_and_errors() -> None:
    # one frame of 1 s: 0.3 s C:maj then 0.7 s A:min -> A:min wins
    m = chord_matrix([(0.0, 0.3, "C:maj"), (0.3, 1.0, "A:min")], 1.0, 1)
    assert CHORD_VOCAB[int(m.argmax())] == "A:min"
    # a frame mostly uncovered is N
    m = chord_matrix([(0.0, 0.2, "C:maj")], 1.0, 1)
    assert CHORD_VOCAB[int(m.argmax())] == "N"
    vocab = ("N", "C:maj", "C:min")
    m = chord_matrix(
        [(0, 1, "C:7"), (1, 2, "C:min7"), (2, 3, "C:sus4"), (3, 4, "Db:maj")], 1.0, 4, vocab
    )
    assert [vocab[i] for i in m.argmax(axis=1)] == ["C:maj", "C:min", "N", "N"]
    assert chord_matrix([], 10.0, 0).shape == (0, len(CHORD_VOCAB))
    with pytest.raises(ConfigError):
        chord_matrix([(0, 1, "C:maj")], 0.0, 4)
    with pytest.raises(ConfigError):
        chord_matrix([(0, 1, "C:maj")], 10.0, -1)
    with pytest.raises(ConfigError):
        chord_matrix([(2, 1, "C:maj")], 10.0, 4)
    with pytest.raises(VocabularyError):
        chord_matrix([(0, 1, "Q:zz")], 10.0, 4)


# ----------------------------------------------------------------------------- .lab files


def test_lab_round_trip_and_bad_files(tmp_path: Path) -> None:
    chords = [(0.0, 1.25, "C:maj"), (1.25, 2.0, "A:min7"), (2.0, 2.5, "N")]
    path = write_lab(tmp_path / "x.lab", chords)
    assert read_lab(path) == chords
    import mir_eval

    intervals, labels = mir_eval.io.load_labeled_intervals(str(path))  # the standard reader agrees
    assert labels == ["C:maj", "A:min7", "N"] and np.allclose(intervals[:, 1], [1.25, 2.0, 2.5])
    assert [p.name for p in tmp_path.iterdir()] == ["x.lab"]  # no temporary left behind
    with pytest.raises(DataError):
        read_lab(tmp_path / "missing.lab")
    (tmp_path / "bad.lab").write_text("0.0 1.0\n")
    with pytest.raises(DataError):
        read_lab(tmp_path / "bad.lab")
    (tmp_path / "bad2.lab").write_text("0.0 x C:maj\n")
    with pytest.raises(DataError):
        read_lab(tmp_path / "bad2.lab")
    with pytest.raises(VocabularyError):
        write_lab(tmp_path / "y.lab", [(0.0, 1.0, "C maj")])


# ----------------------------------------------------------------------------- recognition


def test_templates_recognise_a_synthetic_progression() -> None:
    wav, ref = render_progression(PROGRESSION)
    est = recognize_chords(wav, SR, method="templates")
    assert majmin_score(ref, est) >= 0.85
    # segments are contiguous and cover the whole signal
    assert est[0][0] == 0.0 and abs(est[-1][1] - len(wav) / SR) < 1e-6
    assert all(a[1] == b[0] for a, b in itertools.pairwise(est))


def test_transposed_audio_gives_transposed_chords() -> None:
    wav, ref = render_progression(PROGRESSION[:4], shift=5)
    est = recognize_chords(wav, SR, method="templates")
    assert majmin_score(ref, est) >= 0.85


def test_resampled_stereo_input_gives_the_same_chords() -> None:
    import soxr

    wav, ref = render_progression(PROGRESSION[:4])
    wav44 = soxr.resample(wav, SR, 44100).astype(np.float32)
    est = recognize_chords(np.stack([wav44, wav44]), 44100, method="templates")
    assert majmin_score(ref, est) >= 0.85


def test_silence_is_one_no_chord_segment_and_bad_audio_is_refused() -> None:
    assert recognize_chords(np.zeros(SR * 2, np.float32), SR, method="templates") == [
        (0.0, 2.0, "N")
    ]
    assert recognize_chords(np.zeros(10, np.float32), SR)[0][2] == "N"  # shorter than one frame
    with pytest.raises(EmptyAudioError):
        recognize_chords(np.zeros(0, np.float32), SR)
    bad = np.zeros(SR, np.float32)
    bad[5] = np.nan
    with pytest.raises(NonFiniteAudioError):
        recognize_chords(bad, SR)
    with pytest.raises(SampleRateError):
        recognize_chords(np.zeros(SR, np.float32), 0)
    with pytest.raises(ChannelCountError):
        recognize_chords(
            np.zeros((SR, 2), np.float32), SR
        )  # [samples, channels] is the wrong layout
    with pytest.raises(ChannelCountError):
        recognize_chords(np.zeros((1, 2, SR), np.float32), SR)
    with pytest.raises(ConfigError):
        recognize_chords(np.zeros(SR, np.float32), SR, method="magic")


def test_short_clips_are_analysed_without_librosa_warnings() -> None:
    """A clip under 2 s used to make the CQT warn 'n_fft=1024 is too large' once per octave."""
    import warnings

    t = np.arange(int(0.7 * SR)) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        segments = recognize_chords(0.2 * chord, SR, method="templates")
    assert [str(w.message) for w in caught] == []
    assert segments[-1][1] == pytest.approx(0.7, abs=0.05) and segments[0][2].startswith("C:maj")


# ----------------------------------------------------------------------------- learned model


def _tiny_config():
    from musigen.chords import ChordModelConfig

    return ChordModelConfig(hidden=16, dilations=(1, 2))


def test_chord_net_is_pitch_equivariant() -> None:
    """Rolling each octave's chroma by k semitones rolls the predicted root by k, even untrained."""
    from musigen.chords import ChordNet

    cfg = _tiny_config()
    net = ChordNet(cfg).eval()
    x = torch.rand(2, 40, cfg.n_octaves * 12)
    k = 5
    x_rot = x.reshape(2, 40, cfg.n_octaves, 12).roll(k, dims=-1).reshape(2, 40, -1)
    with torch.no_grad():
        y, y_rot = net(x), net(x_rot)
    q = len(cfg.qualities)
    assert torch.allclose(y[..., 0], y_rot[..., 0], atol=1e-5)  # N does not depend on the key
    roots = y[..., 1:].reshape(2, 40, 12, q)
    roots_rot = y_rot[..., 1:].reshape(2, 40, 12, q)
    assert torch.allclose(roots.roll(k, dims=2), roots_rot, atol=1e-5)


def test_training_beats_untrained_and_round_trips(tmp_path: Path) -> None:
    from musigen.chords import ChordRecognizer, load_chord_model, model_input
    from musigen.training.chord_trainer import (
        ChordTrainConfig,
        frame_targets,
        train_chord_model,
    )

    cfg = _tiny_config()
    examples = []
    for shift in (0, 3, 7):
        wav, ref = render_progression(PROGRESSION, seconds=1.0, shift=shift)
        x = model_input(chord_features(wav, SR))
        examples.append((x, frame_targets(ref, len(x), FRAME_RATE, cfg.vocab)))
    train = ChordTrainConfig(steps=120, batch_size=4, crop_frames=128, lr=5e-3, log_every=1000)
    trained = train_chord_model(examples, cfg, train, log=False)
    untrained = ChordRecognizer(cfg)

    wav, ref = render_progression(PROGRESSION, seconds=1.0, shift=10)  # a key not trained on
    feats = chord_features(wav, SR)
    y = frame_targets(ref, len(feats.logcqt), FRAME_RATE, cfg.vocab)
    acc = {
        name: float(np.mean(m.frame_probabilities(feats).argmax(axis=1) == y))
        for name, m in (("trained", trained), ("untrained", untrained))
    }
    assert acc["trained"] > 0.8 and acc["trained"] > acc["untrained"] + 0.3, acc

    folder = trained.save_pretrained(tmp_path / "ck")
    loaded = load_chord_model(folder)
    assert np.allclose(
        loaded.frame_probabilities(feats), trained.frame_probabilities(feats), atol=2e-2
    )
    est = recognize_chords(wav, SR, method="model", checkpoint=folder)
    assert majmin_score(ref, est) >= 0.8

    cfg_path = folder / "config.json"
    data = json.loads(cfg_path.read_text())
    data["hidden"] = 32
    cfg_path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError):
        load_chord_model(folder)  # config no longer fits the weights
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        load_chord_model(folder)
    with pytest.raises(CheckpointError):
        recognize_chords(wav, SR, method="model", checkpoint=tmp_path / "nowhere")


def test_shipped_checkpoint_is_small_and_works() -> None:
    folder = default_checkpoint()
    if not (folder / "model.safetensors").is_file():
        pytest.skip("no shipped chord checkpoint")
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 5 * 1024 * 1024
    wav, ref = render_progression(PROGRESSION, shift=2)
    assert majmin_score(ref, recognize_chords(wav, SR, method="model")) >= 0.8


def test_corpus_piece_is_recognised() -> None:
    """One short procedural piece end to end (labels are exact)."""
    pytest.importorskip("musigen.data.synth.corpus")
    from musigen.data.synth.corpus import render_seed

    piece = render_seed(424242, 12.0, "pop", 16000, "builtin")
    est = recognize_chords(piece.mix, piece.sample_rate)
    ref = [(float(a), float(b), str(c)) for a, b, c in piece.chords]
    assert majmin_score(ref, est) >= 0.8


# ----------------------------------------------------------------------------- CLI


def test_cli_prints_timeline_writes_lab_and_rejects_bad_input(tmp_path: Path, capsys) -> None:
    import soundfile as sf

    from musigen.cli import main

    wav, ref = render_progression(PROGRESSION[:4])
    sf.write(tmp_path / "song.wav", wav, SR)
    lab = tmp_path / "out.lab"
    assert (
        main(["chords", str(tmp_path / "song.wav"), "--lab", str(lab), "--method", "templates"])
        == 0
    )
    out = capsys.readouterr().out
    assert "C:maj" in out and "A:min" in out
    chords = read_lab(lab)
    assert majmin_score(ref, chords) >= 0.85
    assert main(["chords", str(tmp_path / "missing.wav")]) == 2
    (tmp_path / "notaudio.wav").write_text("hello")
    assert main(["chords", str(tmp_path / "notaudio.wav")]) == 2
    assert "error" in capsys.readouterr().err


def test_cli_finds_the_recogniser_or_says_where_it_comes_from(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import soundfile as sf

    from musigen.cli import main

    wav, _ = render_progression(PROGRESSION[:2])
    sf.write(tmp_path / "song.wav", wav, SR)
    song = str(tmp_path / "song.wav")
    shipped = default_checkpoint()
    if (shipped / "model.safetensors").is_file():  # the default and --model DIR agree
        assert main(["chords", song]) == 0
        default_out = capsys.readouterr().out
        assert main(["chords", song, "--model", str(shipped)]) == 0
        assert capsys.readouterr().out == default_out and "C:maj" in default_out
    monkeypatch.setenv("MUSIGEN_CHORDS_CHECKPOINT", str(tmp_path / "not_shipped"))
    assert main(["chords", song]) == 2  # no silent fallback to the templates
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoints/" in err[0] and "repository" in err[0]
    assert main(["chords", song, "--method", "auto"]) == 0  # auto says that it fell back
    out = capsys.readouterr()
    assert "C:maj" in out.out and "using the template recogniser" in out.err
    with pytest.warns(UserWarning, match="using the template recogniser"):
        recognize_chords(wav, SR)
    with pytest.raises(CheckpointError, match="checkpoints/"):
        recognize_chords(wav, SR, method="model")
    assert main(["chords", song, "--model", str(tmp_path / "nowhere")]) == 2


def test_train_cli_trains_a_loadable_recogniser_and_rejects_bad_settings(
    tmp_path: Path, capsys
) -> None:
    from musigen.chords import ChordRecognizer
    from musigen.cli import main

    out = tmp_path / "ck"
    args = ["train", "chords", "--out", str(out), "--seeds", "7:8", "--renderers", "builtin",
            "--duration", "4", "--steps", "3", "--batch-size", "2", "--crop-frames", "32",
            "--hidden", "8", "--cache", str(tmp_path / "cache"), "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    model = ChordRecognizer.from_pretrained(out)
    assert model.config.hidden == 8 and (tmp_path / "cache" / "builtin_7_4s.npz").is_file()
    wav, _ = render_progression(PROGRESSION[:2], seconds=1.0)
    assert recognize_chords(wav, SR, model=model)[-1][1] == pytest.approx(2.0)
    capsys.readouterr()
    for bad, needle in ((["--renderers", "kazoo"], "renderers"), (["--steps", "0"], "steps"),
                        (["--self-transition", "1.5"], "self_transition")):
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("musigen: error:") and needle in err[0]


def test_the_chords_package_is_a_low_layer_without_import_cycles() -> None:
    """chords imports no model, eval, training or CLI code, and its modules form no loop."""
    import ast
    import importlib.util
    from graphlib import CycleError, TopologicalSorter

    root = Path(importlib.util.find_spec("musigen.chords").origin).parent
    upper = ("instructme", "musicot", "judge", "eval", "training", "encode", "commands",
             "demo_app")
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        upward = [n for n in names if any(n == f"musigen.{u}" or n.startswith(f"musigen.{u}.")
                                          for u in upper)]
        assert not upward, f"{path.name} imports {upward}"
        graph[path.stem] = {n.split(".")[2] for n in names
                            if n.startswith("musigen.chords.") and path.stem != "__init__"}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"import cycle in musigen.chords: {exc.args[1]}")


def test_default_checkpoint_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MUSIGEN_CHORDS_CHECKPOINT", raising=False)
    monkeypatch.delenv("MUSIGEN_CHECKPOINTS", raising=False)
    assert default_checkpoint().parts[-2:] == ("checkpoints", "chords")
    monkeypatch.setenv("MUSIGEN_CHECKPOINTS", str(tmp_path / "ckpts"))
    assert default_checkpoint().parts[-2:] == ("checkpoints", "chords")  # not there: the checkout's
    (tmp_path / "ckpts" / "chords").mkdir(parents=True)
    assert default_checkpoint() == tmp_path / "ckpts" / "chords"
    monkeypatch.setenv("MUSIGEN_CHORDS_CHECKPOINT", str(tmp_path / "mine"))
    assert default_checkpoint() == tmp_path / "mine"  # the specific one wins
