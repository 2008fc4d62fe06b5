"""Manifests: validation with line numbers, atomic writing, and the crop dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from musigen.data.manifest import ManifestDataset, collate_crops, read_manifest, write_manifest
from musigen.errors import DataError
from musigen.vocab import INSTRUMENTS

SR = 8000


def _write(path: Path, x: np.ndarray, sr: int = SR) -> str:
    sf.write(path, x, sr, subtype="FLOAT")
    return path.name


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """Two pieces: a 3 s ramp (with stems, activity, chords) and a 0.5 s short one."""
    n = 3 * SR
    ramp = np.linspace(-0.9, 0.9, n, dtype=np.float32)
    drums = np.zeros(n, np.float32)
    drums[: SR : 800] = 0.5
    g1 = np.full(n, 0.1, np.float32)
    g2 = np.full(n, 0.2, np.float32)
    rec0 = {
        "path": _write(tmp_path / "ramp.wav", ramp), "duration": 3.0, "sample_rate": SR,
        "caption": "a ramp", "genre": "rock",
        "stems": {"drums": _write(tmp_path / "d.wav", drums),
                  "guitar": [_write(tmp_path / "g1.wav", g1), _write(tmp_path / "g2.wav", g2)]},
        "stem_activity": {"drums": [[0.0, 1.0]], "guitar": [[1.5, 3.0]]},
        "instruments": ["drums", "guitar"],
        "chords": [[0.0, 1.5, "C:maj"], [1.5, 3.0, "A:min"]],
        "sections": [[0.0, 3.0, "verse"]],
    }
    rec1 = {
        "path": _write(tmp_path / "short.wav", np.full(SR // 2, 0.5, np.float32)),
        "duration": 0.5, "sample_rate": SR, "caption": "short", "instruments": ["piano"],
    }
    write_manifest(tmp_path / "manifest.jsonl", [rec0, rec1])
    return tmp_path / "manifest.jsonl"


def _lines(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_read_names_the_bad_line(tmp_path: Path) -> None:
    good = {"path": "a.wav", "duration": 1.0, "sample_rate": SR, "caption": "x"}
    bad = {k: v for k, v in good.items() if k != "caption"}
    with pytest.raises(DataError, match=r"line 2: missing required key\(s\) caption"):
        read_manifest(_lines(tmp_path / "m.jsonl", [good, bad]))
    (tmp_path / "j.jsonl").write_text(json.dumps(good) + "\n\n{not json\n")
    with pytest.raises(DataError, match="line 3: not valid JSON"):
        read_manifest(tmp_path / "j.jsonl")
    with pytest.raises(DataError, match="unknown instrument 'kazoo'"):
        read_manifest(_lines(tmp_path / "k.jsonl", [{**good, "stems": {"kazoo": "k.wav"}}]))
    with pytest.raises(DataError, match="chords entries"):
        read_manifest(_lines(tmp_path / "c.jsonl", [{**good, "chords": [[2.0, 1.0, "C"]]}]))
    with pytest.raises(DataError, match="duration"):
        read_manifest(_lines(tmp_path / "d.jsonl", [{**good, "duration": -1}]))
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "absent.jsonl")


def test_write_validates_and_is_atomic(tmp_path: Path) -> None:
    good = {"path": "a.wav", "duration": 1.0, "sample_rate": SR, "caption": "café"}
    out = write_manifest(tmp_path / "m.jsonl", [good, {**good, "extra_stems": {"vocals": "v.wav"}}])
    assert read_manifest(out)[1]["extra_stems"] == {"vocals": "v.wav"}
    assert read_manifest(out)[0]["caption"] == "café"
    before = out.read_bytes()
    with pytest.raises(DataError, match="record 1"):
        write_manifest(out, [good, {"path": "b.wav"}])
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]


def test_crop_is_the_right_slice(corpus: Path) -> None:
    ds = ManifestDataset(corpus, segment_s=1.0, sample_rate=SR, seed=3)
    ramp, _ = sf.read(corpus.parent / "ramp.wav", dtype="float32")
    for epoch in range(4):
        ds.set_epoch(epoch)
        item = ds[0]
        start = int(round(item["start_s"] * SR))
        assert item["wav"].shape == (1, SR) and item["wav"].dtype == torch.float32
        np.testing.assert_array_equal(item["wav"][0].numpy(), ramp[start : start + SR])


def test_crops_are_deterministic_and_epoch_aware(corpus: Path) -> None:
    def starts(seed: int, epoch: int) -> list[float]:
        ds = ManifestDataset(corpus, segment_s=0.5, sample_rate=SR, seed=seed)
        ds.set_epoch(epoch)
        return [ds.crop_start(0) for _ in range(3)]

    assert starts(0, 0) == starts(0, 0)
    assert len(set(starts(0, 0))) == 1  # same item asked again: same crop
    by_epoch = {starts(0, e)[0] for e in range(10)}
    by_seed = {starts(s, 0)[0] for s in range(10)}
    assert len(by_epoch) > 5 and len(by_seed) > 5
    assert all(0.0 <= s <= 2.5 for s in by_epoch | by_seed)
    fixed = ManifestDataset(corpus, segment_s=0.5, sample_rate=SR, random_crop=False)
    assert fixed[0]["start_s"] == 0.0


def test_short_piece_is_zero_padded(corpus: Path) -> None:
    item = ManifestDataset(corpus, segment_s=1.0, sample_rate=SR)[1]
    wav = item["wav"][0]
    assert wav.shape == (SR,) and item["start_s"] == 0.0
    assert torch.allclose(wav[: SR // 2], torch.tensor(0.5)) and not wav[SR // 2 :].any()


def test_activity_and_chords_follow_the_crop(corpus: Path) -> None:
    ds = ManifestDataset(corpus, segment_s=1.0, sample_rate=SR, random_crop=False)
    first = ds[0]
    on = {INSTRUMENTS[i] for i in torch.nonzero(first["instruments_active"]).flatten().tolist()}
    assert on == {"drums"}  # guitar only enters at 1.5 s
    assert first["chords"] == [[0.0, 1.0, "C:maj"]]
    ds = ManifestDataset(corpus, segment_s=2.0, sample_rate=SR, seed=1)
    for epoch in range(5):
        ds.set_epoch(epoch)
        item = ds[0]
        s = item["start_s"]
        chords = item["chords"]
        assert chords[0][0] == 0.0 and chords[-1][1] == pytest.approx(2.0)
        assert chords[0][1] == pytest.approx(1.5 - s)  # C:maj ends at 1.5 s in piece time
        active = item["instruments_active"][INSTRUMENTS.index("drums")].item()
        assert active == (1.0 if s < 1.0 else 0.0)
    # no stem_activity: falls back to the instruments list
    fallback = ManifestDataset(corpus, 1.0, SR)[1]["instruments_active"]
    assert fallback[INSTRUMENTS.index("piano")] == 1


def test_stems_lists_are_summed_and_rates_converted(corpus: Path) -> None:
    ds = ManifestDataset(corpus, segment_s=1.0, sample_rate=2 * SR, channels=2, with_stems=True,
                         random_crop=False)
    item = ds[0]
    assert item["wav"].shape == (2, 2 * SR)
    assert set(item["stems"]) == {"drums", "guitar"} and item["extra_stems"] == {}
    guitar = item["stems"]["guitar"]
    assert guitar.shape == (2, 2 * SR)
    assert torch.allclose(guitar[:, 1000:-1000], torch.tensor(0.3), atol=1e-3)
    assert "stems" not in ManifestDataset(corpus, 1.0, SR)[0]


def test_dataloader_batches(corpus: Path) -> None:
    ds = ManifestDataset(corpus, segment_s=0.25, sample_rate=SR, with_stems=True)
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate_crops)))
    assert batch["wav"].shape == (2, 1, SR // 4)
    assert batch["instruments_active"].shape == (2, len(INSTRUMENTS))
    assert batch["caption"] == ["a ramp", "short"] and batch["genre"] == ["rock", None]


def test_bad_arguments(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError):
        ManifestDataset(corpus, segment_s=0, sample_rate=SR)
    with pytest.raises(DataError):
        ManifestDataset(corpus, segment_s=1.0, sample_rate=SR, channels=0)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="no records"):
        ManifestDataset(tmp_path / "empty.jsonl", segment_s=1.0, sample_rate=SR)
