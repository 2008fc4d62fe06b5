"""Procedural corpus: exact labels, exact stem sums, reproducibility, re-orchestration."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from musigen.data.synth.composition import compose
from musigen.data.synth.corpus import build_corpus, write_piece
from musigen.data.synth.genres import style
from musigen.data.synth.instruments import note_wave
from musigen.data.synth.midi import CHORD_PREFIX, SECTION_PREFIX, markers
from musigen.data.synth.orchestration import orchestrate
from musigen.data.synth.render import render
from musigen.data.synth.theory import QUALITIES
from musigen.errors import ConfigError, MusigenError, SampleRateError, VocabularyError
from musigen.vocab import GENRES, INSTRUMENTS, MOODS

SR = 16000


def _piece(seed: int, genre: str, duration: float = 8.0, instruments=None):
    comp = compose(seed, duration, genre)
    orch = orchestrate(comp, genre, instruments, seed)
    return comp, orch, render(comp, orch, SR)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(
        out,
        n=3,
        duration=6.0,
        seed=11,
        renderer="builtin",
        sample_rate=SR,
        genres=None,
        progress=False,
    )
    return out


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_written_stems_sum_to_mix_and_schema(corpus: Path) -> None:
    for rec in _records(corpus):
        for key in (
            "path",
            "stems",
            "chords",
            "sections",
            "caption",
            "genre",
            "tempo",
            "key",
            "mood",
            "instruments",
            "stem_activity",
            "duration",
            "sample_rate",
            "seed",
            "midi",
        ):
            assert key in rec
        mix, sr = sf.read(corpus / rec["path"], dtype="float32")
        assert sr == rec["sample_rate"] == SR and len(mix) == round(rec["duration"] * SR)
        total = np.zeros_like(mix)
        for inst in rec["instruments"]:  # the manifest order is the render's summation order
            stem, _ = sf.read(corpus / rec["stems"][inst], dtype="float32")
            total += stem
        assert set(rec["stems"]) == set(rec["instruments"]) == set(rec["stem_activity"])
        np.testing.assert_allclose(total, mix, atol=1e-6)
        assert np.abs(mix).max() > 0.1  # not silence
        assert rec["mood"] in MOODS and rec["genre"] in GENRES
        assert (corpus / rec["midi"]).is_file()


def test_manifest_chords_and_sections_match_midi(corpus: Path) -> None:
    for rec in _records(corpus):
        pm = pretty_midi.PrettyMIDI(str(corpus / rec["midi"]))
        end = rec["duration"]
        got_chords = markers(pm, CHORD_PREFIX, end)
        got_sections = markers(pm, SECTION_PREFIX, end)
        assert [c[2] for c in got_chords] == [c[2] for c in rec["chords"]]
        assert [s[2] for s in got_sections] == [s[2] for s in rec["sections"]]
        np.testing.assert_allclose(
            [c[:2] for c in got_chords], [c[:2] for c in rec["chords"]], atol=2e-3
        )
        np.testing.assert_allclose(
            [s[:2] for s in got_sections], [s[:2] for s in rec["sections"]], atol=2e-3
        )
        # the chord spans tile the piece, and the sections do too
        for spans in (rec["chords"], rec["sections"]):
            assert spans[0][0] == 0 and abs(spans[-1][1] - end) < 1e-6
            assert all(abs(a[1] - b[0]) < 1e-6 for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("genre", GENRES)
def test_harmony_parts_play_the_labelled_chords(genre: str) -> None:
    """Every chord-role note sounding mid-span belongs to that span's chord; bass starts on its root."""
    for seed in range(3):
        comp = compose(seed, 16.0, genre)
        orch = orchestrate(comp, genre, list(INSTRUMENTS), seed)
        labels = comp.chord_times()
        for t0, t1, lab in labels:
            mir_eval.chord.validate([lab], [lab])  # raises on a malformed label
            root, ivs, _ = mir_eval.chord.encode(lab)
            pcs = {(root + i) % 12 for i, on in enumerate(ivs) if on} | {root}
            mid = (t0 + t1) / 2
            for inst, part in orch.parts.items():
                if part.role != "chords" or (genre == "blues" and inst == "guitar"):
                    continue  # the blues shuffle adds the sixth, as real boogie riffs do
                spb = comp.seconds_per_beat
                for n in part.notes:
                    if (
                        n.start * spb <= mid < (n.start + n.duration) * spb
                        and n.start * spb >= t0 - 0.05
                    ):
                        assert n.pitch % 12 in pcs, (genre, inst, lab, n)
        bass = orch.parts["bass"]
        for ev in comp.chords:
            first = [n for n in bass.notes if abs(n.start - ev.start) < 0.2]
            if first:
                assert first[0].pitch % 12 == ev.chord.root


def test_composition_ranges_and_grammar() -> None:
    modes, qualities = set(), set()
    for seed in range(40):
        genre = GENRES[seed % len(GENRES)]
        comp = compose(seed, 30.0, genre)
        lo, hi = style(genre).tempo
        assert 60 <= comp.tempo <= 180 and lo * 0.9 <= comp.tempo <= hi * 1.1
        assert abs(comp.n_bars * 4 * comp.seconds_per_beat - 30.0) < 1e-6  # whole bars fill it
        assert comp.chords[-1].chord.root == comp.key_root  # ends home
        names = [s.name for s in comp.sections]
        assert names[0] in ("intro", "verse") and len(names) >= 3
        modes.add(comp.key.split(":")[1])
        qualities |= {ev.chord.quality for ev in comp.chords}
    assert modes == {"maj", "min"}
    assert {"maj", "min", "7", "maj7", "min7"} <= qualities <= set(QUALITIES)


def test_compose_is_deterministic_and_seed_sensitive() -> None:
    assert compose(5, 12.0, "pop") == compose(5, 12.0, "pop")
    assert compose(5, 12.0, "pop") != compose(6, 12.0, "pop")


def test_reorchestration_keeps_chords_length_and_sections() -> None:
    comp = compose(3, 10.0, "pop")
    a = render(comp, orchestrate(comp, "pop", None, 3), SR)
    b = render(comp, orchestrate(comp, "jazz", None, 3), SR)
    c = render(comp, orchestrate(comp, "pop", ["drums", "bass", "organ"], 3), SR)
    for other in (b, c):
        assert other.chords == a.chords and other.sections == a.sections
        assert (
            len(other.mix) == len(a.mix) and other.duration == a.duration and other.tempo == a.tempo
        )
    assert b.genre == "jazz" and "jazz" in b.caption
    assert set(c.stems) == {"drums", "bass", "organ"}
    assert np.abs(a.mix - b.mix).mean() > 1e-3  # it really is a different arrangement


def test_adding_an_instrument_leaves_other_parts_unchanged() -> None:
    comp = compose(8, 12.0, "rock")
    base = orchestrate(comp, "rock", ["drums", "bass", "guitar", "lead"], 1)
    more = orchestrate(comp, "rock", ["drums", "bass", "guitar", "lead", "strings"], 1)
    assert {i: p.role for i, p in base.parts.items()} == {
        i: p.role for i, p in more.parts.items() if i != "strings"
    }
    for inst in base.instruments:
        assert base.parts[inst].notes == more.parts[inst].notes
    assert more.parts["strings"].notes  # and the new part really plays


def test_sections_change_instrumentation_and_activity_follows() -> None:
    comp = compose(2, 40.0, "disco")
    orch = orchestrate(comp, "disco", None, 2)
    piece = render(comp, orch, SR)
    dens = {name: len(insts) for name, insts in orch.active.items()}
    assert dens.get("chorus", max(dens.values())) >= dens.get("intro", 0)
    assert len(set(orch.active.values())) >= 2  # not the same line-up everywhere
    for s, e, name in piece.sections:
        for inst, spans in piece.stem_activity.items():
            covered = sum(max(0.0, min(e, b) - max(s + 1.0, a)) for a, b in spans)
            frac = covered / max(e - s - 1.0, 1e-9)
            if inst not in orch.active[name] and e - s > 3:
                assert frac < 0.15, (inst, name, frac)  # silent apart from tails
            if inst in orch.active[name] and inst != "drums":
                assert frac > 0.2, (inst, name, frac)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    for d in ("a", "b"):
        build_corpus(tmp_path / d, n=2, duration=3.0, seed=4, sample_rate=SR, progress=False)
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) > 4
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    build_corpus(tmp_path / "c", n=2, duration=3.0, seed=5, sample_rate=SR, progress=False)
    assert (tmp_path / "c/00000/mix.wav").read_bytes() != (
        tmp_path / "a/00000/mix.wav"
    ).read_bytes()


def test_piece_i_uses_seed_plus_i_and_can_be_rebuilt(corpus: Path, tmp_path: Path) -> None:
    rec = _records(corpus)[1]
    assert rec["seed"] == 12
    comp = compose(rec["seed"], rec["duration"], rec["genre"])
    piece = render(comp, orchestrate(comp, rec["genre"], None, rec["seed"]), SR)
    again = write_piece(piece, tmp_path, "x")
    assert again["caption"] == rec["caption"] and again["chords"] == rec["chords"]
    mix, _ = sf.read(corpus / rec["path"], dtype="float32")
    np.testing.assert_array_equal(mix, piece.mix)


def test_captions_name_genre_tempo_key_mood_and_instruments(corpus: Path) -> None:
    from musigen.data.synth.captions import INSTRUMENT_WORDS, MOOD_WORDS

    caps = set()
    for seed in range(12):
        genre = GENRES[seed % len(GENRES)]
        comp = compose(seed, 4.0, genre)
        orch = orchestrate(comp, genre, None, seed)
        piece = render(comp, orch, 8000)
        cap = piece.caption
        caps.add(cap.split(" ")[0])
        assert genre in cap.lower()
        assert str(int(round(comp.tempo))) in cap
        root, mode = piece.key.split(":")
        assert f"{root} " in cap and comp.mode in cap
        assert any(w in cap.lower() for w in MOOD_WORDS[piece.mood])
        for inst in piece.instruments:
            assert any(w.lower() in cap.lower() for w in INSTRUMENT_WORDS[inst]), (inst, cap)
    assert len(caps) >= 4  # varied phrasing, not one template


def test_timbres_are_distinct_per_class() -> None:
    """Nearest-centroid on MFCCs tells the classes apart on pitches it did not see."""
    import librosa

    def feat(inst: str, pitch: int) -> np.ndarray:
        w = note_wave(inst, pitch, 96, 0.6, SR)
        m = librosa.feature.mfcc(y=w, sr=SR, n_mfcc=20, n_fft=1024, hop_length=256)
        return np.concatenate([m.mean(1), m.std(1)])

    insts = [i for i in INSTRUMENTS if i != "drums"]
    train = {i: np.mean([feat(i, p) for p in (45, 52, 57, 64, 69)], axis=0) for i in insts}
    correct = total = 0
    for i in insts:
        for p in (48, 55, 60, 67):
            f = feat(i, p)
            guess = min(insts, key=lambda j: np.linalg.norm(f - train[j]))
            correct += guess == i
            total += 1
    assert correct / total >= 0.85


def test_bad_inputs_raise_specific_errors(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError):
        compose(0, 5.0, "polka")
    comp = compose(0, 5.0, "pop")
    with pytest.raises(VocabularyError):
        orchestrate(comp, "pop", ["kazoo"])
    with pytest.raises(ConfigError):
        compose(0, -1.0)
    with pytest.raises(ConfigError):
        compose(0, float("nan"))
    with pytest.raises(SampleRateError):
        render(comp, orchestrate(comp, "pop"), 0)
    with pytest.raises(ConfigError):
        render(comp, orchestrate(comp, "pop"), SR, renderer="midi")
    with pytest.raises(ConfigError):
        build_corpus(tmp_path, n=0, duration=5.0, seed=0, progress=False)
    with pytest.raises(VocabularyError):
        build_corpus(tmp_path, n=1, duration=5.0, seed=0, genres=["polka"], progress=False)


def test_fluidsynth_unavailable_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "fluidsynth":
            raise ImportError("No module named 'fluidsynth'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MusigenError) as err:
        build_corpus(tmp_path, n=1, duration=2.0, seed=0, renderer="fluidsynth", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "fluidsynth" in msg and "builtin" in msg


def test_fluidsynth_backend_when_present(tmp_path: Path) -> None:
    pytest.importorskip("fluidsynth")
    try:
        from musigen.data.synth.fluidsynth import require_fluidsynth

        require_fluidsynth()
    except MusigenError as exc:
        pytest.skip(str(exc))
    comp = compose(1, 4.0, "rock")
    orch = orchestrate(comp, "rock", None, 1)
    a = render(comp, orch, SR, renderer="fluidsynth")
    assert a.renderer == "fluidsynth" and len(a.mix) == 4 * SR
    np.testing.assert_allclose(sum(a.stems[i] for i in orch.instruments), a.mix, atol=1e-6)
    assert all(np.abs(a.stems[i]).max() > 1e-3 for i in orch.instruments)
    assert a.chords == render(comp, orch, SR).chords
