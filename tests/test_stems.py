"""Stem dataset adapters on tiny fake trees in each dataset's native layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from musigen.cli import main
from musigen.data.manifest import ManifestDataset, read_manifest
from musigen.data.moisesdb import class_of
from musigen.data.stems import build_manifest, make_caption
from musigen.errors import DataError

SR = 8000
N = SR // 2  # every fake file is 0.5 s


def tone(freq: float, amp: float = 0.1, silent_first_half: bool = False) -> np.ndarray:
    x = (amp * np.sin(2 * np.pi * freq * np.arange(N) / SR)).astype(np.float32)
    if silent_first_half:
        x[: N // 2] = 0.0
    return x


def write(path: Path, x: np.ndarray, subtype: str = "PCM_24") -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, SR, subtype=subtype)
    return sf.read(path, dtype="float32")[0]  # what a reader will get back


# ------------------------------------------------------------------------------ Slakh

SLAKH_STEMS: dict[str, dict[str, Any]] = {
    "S00": {"inst_class": "Piano", "is_drum": False, "program_num": 0, "audio_rendered": True},
    "S01": {"inst_class": "Bass", "is_drum": False, "program_num": 33, "audio_rendered": True},
    "S02": {"inst_class": "Guitar", "is_drum": False, "program_num": 25, "audio_rendered": True},
    "S03": {"inst_class": "Guitar", "is_drum": False, "program_num": 29, "audio_rendered": True},
    "S04": {"inst_class": "Drums", "is_drum": True, "program_num": 0, "audio_rendered": True},
    "S05": {"inst_class": "Synth Lead", "is_drum": False, "program_num": 80,
            "audio_rendered": False},
    "S06": {"inst_class": "Chromatic Percussion", "is_drum": False, "program_num": 11,
            "audio_rendered": True},
}


def make_slakh_track(folder: Path, stems: dict[str, dict[str, Any]]) -> None:
    mix = np.zeros(N, np.float32)
    for i, (sid, info) in enumerate(stems.items()):
        if info["audio_rendered"]:
            mix += write(folder / "stems" / f"{sid}.flac",
                         tone(110.0 * (i + 1), silent_first_half=(sid == "S01")))
        (folder / "MIDI").mkdir(parents=True, exist_ok=True)
        (folder / "MIDI" / f"{sid}.mid").write_bytes(b"MThd")
    write(folder / "mix.flac", mix)
    (folder / "metadata.yaml").write_text(yaml.safe_dump(
        {"UUID": folder.name, "audio_dir": "stems", "midi_dir": "MIDI", "stems": stems}))


@pytest.fixture()
def slakh(tmp_path: Path) -> Path:
    root = tmp_path / "slakh2100_flac_redux"
    make_slakh_track(root / "train" / "Track00001", SLAKH_STEMS)
    make_slakh_track(root / "test" / "Track01900", {"S00": SLAKH_STEMS["S00"]})
    make_slakh_track(root / "omitted" / "Track00002", {"S00": SLAKH_STEMS["S00"]})
    return root


def test_slakh_maps_classes_and_splits(slakh: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "slakh.jsonl"
    assert build_manifest("slakh", slakh, out, split=None) == 2  # omitted/ is skipped
    first, second = read_manifest(out)
    assert (first["track_id"], first["split"]) == ("Track00001", "train")
    assert second["split"] == "test"
    assert set(first["stems"]) == {"piano", "bass", "guitar", "drums"}  # lead: not rendered
    assert len(first["stems"]["guitar"]) == 2 and isinstance(first["stems"]["piano"], str)
    assert list(first["extra_stems"]) == ["chromatic_percussion"]
    assert first["instruments"] == ["drums", "bass", "piano", "guitar"]
    assert first["duration"] == pytest.approx(0.5) and first["sample_rate"] == SR
    assert "piano" in first["caption"] and "guitar" in first["caption"]
    assert (out.parent / first["path"]).resolve() == (slakh / "train/Track00001/mix.flac").resolve()
    assert build_manifest("slakh", slakh, out, split="test") == 1
    assert read_manifest(out)[0]["track_id"] == "Track01900"


def test_slakh_stems_sum_to_mix_through_the_dataset(slakh: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    build_manifest("slakh", slakh, out, split="train")
    item = ManifestDataset(out, segment_s=0.5, sample_rate=SR, with_stems=True)[0]
    total = sum(item["stems"].values()) + sum(item["extra_stems"].values())
    assert torch.allclose(total, item["wav"], atol=1e-4)
    assert item["wav"].abs().max() > 0.1


def test_slakh_activity_is_measured(slakh: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    build_manifest("slakh", slakh, out, split="train", activity=True)
    act = read_manifest(out)[0]["stem_activity"]
    assert act["piano"] == [[0.0, 0.5]]
    assert act["bass"][0][0] == pytest.approx(0.25, abs=0.1) and act["bass"][0][1] == 0.5
    ds = ManifestDataset(out, segment_s=0.2, sample_rate=SR, random_crop=False)
    active = ds[0]["instruments_active"]
    from musigen.vocab import INSTRUMENTS

    assert active[INSTRUMENTS.index("piano")] == 1 and active[INSTRUMENTS.index("bass")] == 0


def test_slakh_layout_errors(slakh: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        build_manifest("slakh", tmp_path / "nowhere", tmp_path / "m.jsonl", None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Slakh2100 track"):
        build_manifest("slakh", tmp_path / "empty", tmp_path / "m.jsonl", None)
    with pytest.raises(DataError, match="unknown Slakh2100 split"):
        build_manifest("slakh", slakh, tmp_path / "m.jsonl", "dev")
    (slakh / "test" / "Track01900" / "stems" / "S00.flac").unlink()
    with pytest.raises(DataError, match="marked rendered but missing"):
        build_manifest("slakh", slakh, tmp_path / "m.jsonl", None)
    (slakh / "test" / "Track01900" / "metadata.yaml").unlink()
    with pytest.raises(DataError, match="no metadata.yaml"):
        build_manifest("slakh", slakh, tmp_path / "m.jsonl", None)
    assert not (tmp_path / "m.jsonl").exists()


# ------------------------------------------------------------------------------ MUSDB18-HQ


@pytest.fixture()
def musdb(tmp_path: Path) -> Path:
    root = tmp_path / "musdb18hq"
    for split, name in (("train", "Alpha - First Song"), ("test", "Beta - Second Song")):
        mix = np.zeros(N, np.float32)
        for i, stem in enumerate(("vocals", "drums", "bass", "other")):
            mix += write(root / split / name / f"{stem}.wav", tone(200.0 * (i + 1)), "FLOAT")
        write(root / split / name / "mixture.wav", mix, "FLOAT")
    return root


def test_musdb_records(musdb: Path, tmp_path: Path) -> None:
    out = tmp_path / "musdb.jsonl"
    assert build_manifest("musdb", musdb, out, None) == 2
    rec = read_manifest(out)[0]
    assert rec["stems"] == {"drums": rec["stems"]["drums"], "bass": rec["stems"]["bass"]}
    assert set(rec["extra_stems"]) == {"vocals", "other"}
    assert rec["artist"] == "Alpha" and rec["title"] == "First Song" and rec["split"] == "train"
    assert "vocals" in rec["caption"] and "drums" in rec["caption"]
    assert "other" not in rec["caption"]
    assert build_manifest("musdb", musdb, out, "test") == 1
    item = ManifestDataset(out, 0.5, SR, with_stems=True)[0]
    total = sum(item["stems"].values()) + sum(item["extra_stems"].values())
    assert torch.allclose(total, item["wav"], atol=1e-6)


def test_musdb_layout_errors(musdb: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown MUSDB18-HQ split"):
        build_manifest("musdb", musdb, tmp_path / "m.jsonl", "validation")
    (musdb / "train" / "Alpha - First Song" / "bass.wav").unlink()
    with pytest.raises(DataError, match="lacks bass.wav"):
        build_manifest("musdb", musdb, tmp_path / "m.jsonl", None)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="neither train/ nor test/"):
        build_manifest("musdb", tmp_path / "flat", tmp_path / "m.jsonl", None)
    (tmp_path / "mp4" / "train").mkdir(parents=True)
    (tmp_path / "mp4" / "train" / "x.stem.mp4").write_bytes(b"\0")
    with pytest.raises(DataError, match="stem.mp4"):
        build_manifest("musdb", tmp_path / "mp4", tmp_path / "m.jsonl", None)


# ------------------------------------------------------------------------------ MoisesDB

MOISES_TRACKS: list[tuple[str, str]] = [  # (stemName, trackType)
    ("guitar", "clean electric guitar"),
    ("guitar", "acoustic guitar"),
    ("vocals", "lead female singer"),
    ("other_keys", "synth pad"),
    ("wind", "reeds (saxophone, clarinets, oboe, english horn, bagpipe)"),
    ("percussion", "pitched percussion (mallets, glockenspiel, ...)"),
]


def make_moises_song(root: Path, uuid: str, genre: str) -> np.ndarray:
    stems: dict[str, list[dict[str, str]]] = {}
    mix = np.zeros((N, 2), np.float32)
    for i, (stem, kind) in enumerate(MOISES_TRACKS):
        tid = f"t{i:02d}"
        audio = np.stack([tone(150.0 * (i + 1)), tone(150.0 * (i + 1), 0.05)], axis=1)
        mix += write(root / uuid / stem / f"{tid}.wav", audio, "FLOAT")
        stems.setdefault(stem, []).append({"id": tid, "extension": "wav", "trackType": kind})
    meta = {"song": "Song " + uuid, "artist": "Band", "genre": genre,
            "stems": [{"stemName": s, "id": s + "-id", "tracks": t} for s, t in stems.items()]}
    (root / uuid / "data.json").write_text(json.dumps(meta))
    return mix


def test_moisesdb_records_and_rendered_mix(tmp_path: Path) -> None:
    root = tmp_path / "moisesdb" / "moisesdb_v0.1"
    mix_a = make_moises_song(root, "aaaa-1111", "Rock")
    make_moises_song(root, "bbbb-2222", "Singer/Songwriter")
    out = tmp_path / "out" / "moises.jsonl"
    assert build_manifest("moisesdb", tmp_path / "moisesdb", out, None) == 2
    a, b = read_manifest(out)
    assert set(a["stems"]) == {"guitar", "pad", "brass"} and len(a["stems"]["guitar"]) == 2
    assert set(a["extra_stems"]) == {"vocals", "percussion"}
    assert a["genre"] == "rock" and a["source_genre"] == "Rock" and a["artist"] == "Band"
    assert "genre" not in b and b["source_genre"] == "Singer/Songwriter"
    assert "singer/songwriter" in b["caption"].lower() and "rock" in a["caption"].lower()
    assert a["path"].startswith("moisesdb_mixes/")
    rendered, sr = sf.read(out.parent / a["path"], dtype="float32")
    assert sr == SR and np.allclose(rendered, mix_a, atol=1e-6)
    item = ManifestDataset(out, 0.5, SR, channels=2, with_stems=True)[0]
    total = sum(item["stems"].values()) + sum(item["extra_stems"].values())
    assert torch.allclose(total, item["wav"], atol=1e-5)


def test_moisesdb_taxonomy() -> None:
    assert class_of("drums", "kick drum") == "drums"
    atonal = "a-tonal percussion (claps, shakers, congas, cowbell etc)"
    assert class_of("percussion", atonal) == "drums"
    assert class_of("percussion", "pitched percussion (mallets, glockenspiel, ...)") is None
    assert class_of("other_keys", "organ, electric organ") == "organ"
    assert class_of("other_keys", "synth lead") == "lead"
    assert class_of("other_keys", "other sounds (hapischord, melotron etc)") is None
    assert class_of("bowed_strings", "cello section") == "strings"
    assert class_of("wind", "brass (trumpet, trombone, french horn, brass etc)") == "brass"
    assert class_of("wind", "flutes (piccolo, bamboo flute, panpipes, flutes etc)") == "lead"
    assert class_of("vocals", "lead male singer") is None
    assert class_of("piano", "electric piano (rhodes, wurlitzer, piano sound alike)") == "piano"


def test_moisesdb_layout_errors(tmp_path: Path) -> None:
    root = tmp_path / "moises"
    make_moises_song(root, "cccc", "Pop")
    with pytest.raises(DataError, match="no official split"):
        build_manifest("moisesdb", root, tmp_path / "m.jsonl", "train")
    (root / "cccc" / "guitar" / "t01.wav").unlink()
    with pytest.raises(DataError, match="t01.wav listed in"):
        build_manifest("moisesdb", root, tmp_path / "m.jsonl", None)
    (root / "cccc" / "data.json").write_text("{broken")
    with pytest.raises(DataError, match="cannot parse"):
        build_manifest("moisesdb", root, tmp_path / "m.jsonl", None)
    (tmp_path / "bare").mkdir()
    with pytest.raises(DataError, match="no MoisesDB songs"):
        build_manifest("moisesdb", tmp_path / "bare", tmp_path / "m.jsonl", None)


# ------------------------------------------------------------------------------ shared


def test_captions_are_stable_and_grammatical() -> None:
    one = make_caption("Track00007", ["drums", "bass"], ["vocals", "other"], "Electronic")
    assert one == make_caption("Track00007", ["drums", "bass"], ["vocals", "other"], "Electronic")
    assert "drums, bass and vocals" in one and "other" not in one
    assert "An electronic" in one or one.startswith("Electronic music")
    shapes = {make_caption(f"t{i}", ["piano"], [], None) for i in range(20)}
    assert len(shapes) > 1 and all(s.endswith("piano.") for s in shapes)


def test_import_through_the_cli(musdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                ) -> None:
    out = tmp_path / "cli.jsonl"
    assert main(["data", "import", "musdb", str(musdb), "--out", str(out)]) == 0
    assert len(read_manifest(out)) == 2
    assert main(["data", "import", "slakh", str(tmp_path / "none"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    with pytest.raises(DataError, match="unknown dataset"):
        build_manifest("medleydb", musdb, out, None)
