"""Edit triplets: exact stem arithmetic, remixes that keep the composition, chaining, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musigen.data.stem_triplets import StemTripletConfig, StemTriplets
from musigen.data.triplets import CorpusTriplets, TripletConfig
from musigen.errors import ConfigError
from musigen.edits import parse_instruction

DUR = 4.0


@pytest.fixture(scope="module")
def corpus() -> CorpusTriplets:
    return CorpusTriplets(TripletConfig(duration=DUR), seed=11)


def energy(x: np.ndarray) -> float:
    return float(np.sum(x.astype(np.float64) ** 2))


@pytest.mark.parametrize("index", [0, 1])
def test_remove_takes_exactly_that_stem_out(corpus: CorpusTriplets, index: int) -> None:
    t = corpus.triplet(index, "remove")
    x = t.op.instrument
    assert x in t.source_stems and x not in t.target_stems and x not in t.target_instruments
    assert energy(t.source_stems[x]) > 1e-3 * energy(t.source)  # the removed part is audible
    np.testing.assert_allclose(t.target, t.source - t.source_stems[x], atol=1e-5)
    for k, v in t.target_stems.items():  # everything else is untouched
        np.testing.assert_array_equal(v, t.source_stems[k])
    assert parse_instruction(t.instruction) == t.op


def test_extract_target_is_the_stem_and_add_is_remove_reversed(corpus: CorpusTriplets) -> None:
    t = corpus.triplet(2, "extract")
    x = t.op.instrument
    np.testing.assert_allclose(t.target, t.source_stems[x], atol=1e-6)
    assert len(t.source_stems) >= 2 and t.target_instruments == (x,)
    a = corpus.triplet(3, "add")
    y = a.op.instrument
    assert y not in a.source_stems and y in a.target_stems
    np.testing.assert_allclose(a.target - a.target_stems[y], a.source, atol=1e-5)
    assert parse_instruction(a.instruction) == a.op


def test_replace_puts_the_new_instrument_in_the_old_ones_place(corpus: CorpusTriplets) -> None:
    t = corpus.triplet(4, "replace")
    a, b = t.op.instrument, t.op.new_instrument
    assert a in t.source_stems and a not in t.target_stems
    assert b in t.target_stems and b in t.target_instruments and b not in t.source_stems
    for k in t.source_stems:
        if k != a:  # untouched stems are bit-identical
            np.testing.assert_array_equal(t.target_stems[k], t.source_stems[k])
    np.testing.assert_allclose(t.target, t.source - t.source_stems[a] + t.target_stems[b],
                               atol=1e-5)


def harmonic_chroma(stems: dict[str, np.ndarray], sr: int) -> np.ndarray:
    import librosa

    mix = sum(v for k, v in stems.items() if k not in ("drums", "bass"))
    return librosa.feature.chroma_stft(y=np.asarray(mix, np.float32), sr=sr, hop_length=512)


def segment_similarity(a: np.ndarray, b: np.ndarray, chords: list, sr: int) -> float:
    """Mean cosine of the per-chord-segment mean chroma of `a` and `b`."""
    sims = []
    for s, e, _ in chords:
        i, j = int(s * sr / 512), max(int(s * sr / 512) + 1, int(e * sr / 512))
        u, v = a[:, i:j].mean(1), b[:, i:j].mean(1)
        sims.append(float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-9)))
    return float(np.mean(sims))


def test_remix_to_genre_keeps_chords_length_and_sections(corpus: CorpusTriplets) -> None:
    from musigen.data.synth.composition import compose

    seq = corpus.sequence(5, tasks=["remix_genre"])
    t = seq.triplets()[0]
    assert t.op.task == "remix_genre" and t.target_genre == t.op.genre != t.source_genre
    assert t.target.shape == t.source.shape
    seed = int(seq.origin.split(":")[1])
    comp = compose(seed, DUR, t.source_genre)
    assert seq.chords == [(float(s), float(e), lab) for s, e, lab in comp.chord_times()]
    assert seq.sections == [(float(s), float(e), lab) for s, e, lab in comp.section_times()]
    # The harmony is audibly the source's: the remix's chroma follows the source's chords
    # more closely than a remix of another composition does.
    other = corpus.sequence(6, tasks=["remix_genre"]).triplets()[0]
    sr = t.sample_rate
    src = harmonic_chroma(t.source_stems, sr)
    same = segment_similarity(src, harmonic_chroma(t.target_stems, sr), seq.chords, sr)
    different = segment_similarity(src, harmonic_chroma(other.target_stems, sr), seq.chords, sr)
    assert same > different + 0.05, (same, different)


def test_remix_with_instruments_plays_exactly_the_list(corpus: CorpusTriplets) -> None:
    t = corpus.triplet(7, "remix_instruments")
    assert t.target_instruments == t.op.instruments
    assert set(t.target_stems) == set(t.op.instruments)
    assert parse_instruction(t.instruction) == t.op


def test_multi_round_sequences_chain(corpus: CorpusTriplets) -> None:
    seq = corpus.sequence(8, tasks=["remove", "add", "remix_genre"])
    rounds = seq.triplets()
    assert [t.op.task for t in rounds] == ["remove", "add", "remix_genre"]
    for k in range(len(rounds) - 1):  # each round's target is the next round's source
        np.testing.assert_array_equal(rounds[k].target, rounds[k + 1].source)
        assert rounds[k].target_instruments == rounds[k + 1].source_instruments
    removed, added = rounds[0].op.instrument, rounds[1].op.instrument
    assert removed not in rounds[0].target_instruments
    assert added in rounds[1].target_instruments
    assert len(seq.audio) == 4 and all(len(a) == len(seq.audio[0]) for a in seq.audio)
    peak = max(float(np.max(np.abs(a))) for a in seq.audio)
    assert peak <= corpus.config.headroom + 1e-6


def test_same_seed_same_triplets_other_seed_other_triplets() -> None:
    config = TripletConfig(duration=DUR, max_rounds=2)
    a = CorpusTriplets(config, seed=3).sequence(0)
    b = CorpusTriplets(config, seed=3).sequence(0)
    c = CorpusTriplets(config, seed=4).sequence(0)
    assert a.instructions == b.instructions and a.origin == b.origin
    for x, y in zip(a.audio, b.audio, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.origin != c.origin or a.instructions != c.instructions


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ConfigError):
        CorpusTriplets(TripletConfig(duration=DUR)).sequence(0, tasks=["dance"])
    with pytest.raises(ConfigError):
        TripletConfig(duration=0.1)
    with pytest.raises(ConfigError):
        StemTripletConfig(tasks=("replace",))


def test_stem_manifest_triplets_are_exact(tmp_path: Path) -> None:
    from musigen.data.synth.corpus import build_corpus

    manifest = build_corpus(tmp_path / "corpus", n=2, duration=6.0, seed=5, progress=False)
    stems = StemTriplets(manifest, StemTripletConfig(segment_s=3.0, crops_per_track=3), seed=1)
    made = list(stems.iter_triplets())
    assert made, "no editable crop"
    for t in made:
        x = t.op.instrument
        assert t.op.task in ("add", "remove", "extract") and len(t.source) == 3 * 16000
        if t.op.task == "remove":
            np.testing.assert_allclose(t.target, t.source - t.source_stems[x], atol=1e-5)
        elif t.op.task == "extract":
            np.testing.assert_allclose(t.target, t.source_stems[x], atol=1e-6)
        else:
            np.testing.assert_allclose(t.source, t.target - t.target_stems[x], atol=1e-5)
        assert t.chords is not None  # the corpus manifest carries exact chords
        assert parse_instruction(t.instruction) == t.op
    again = StemTriplets(manifest, StemTripletConfig(segment_s=3.0, crops_per_track=3), seed=1)
    np.testing.assert_array_equal(next(again.iter_triplets()).target, made[0].target)
