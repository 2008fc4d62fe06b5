"""Song sections from self-similarity: the analysis, its labels, and section edits that use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from demo_tiny import EDIT_SR, tiny_edit_pipeline
from musigen.edits import SECTIONS
from musigen.errors import ConfigError
from musigen.structure.evaluate import label_accuracy, score_pieces
from musigen.structure.sections import find_sections, label_segments

SR = EDIT_SR


@pytest.fixture(scope="module")
def piece() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """A 30 s corpus piece (intro, verse, chorus, verse, outro) with exact sections."""
    from musigen.data.synth.corpus import render_seed

    p = render_seed(10400002, 30.0, "pop", SR, "builtin")
    return np.asarray(p.mix, dtype=np.float32).reshape(-1), list(p.sections)


def test_labels_follow_the_heuristic() -> None:
    groups = [0, 1, 2, 1, 2, 3, 2, 4]
    loud = [-1.0, 0.0, 1.0, 0.1, 1.1, 0.2, 1.0, -1.2]
    assert label_segments(groups, loud) == ["intro", "verse", "chorus", "verse", "chorus",
                                            "bridge", "chorus", "outro"]
    assert label_segments([0], [0.0]) == ["verse"]


def test_sections_cover_the_piece_and_hit_its_boundaries(piece: tuple) -> None:
    wav, ref = piece
    found = find_sections(wav, SR)
    assert found[0].start == 0.0 and abs(found[-1].end - wav.size / SR) < 1e-3
    assert all(a.end == b.start for a, b in zip(found, found[1:]))
    assert {s.label for s in found} <= set(SECTIONS) and "chorus" in {s.label for s in found}
    scores = score_pieces([(wav, SR, ref)])
    assert scores.f_measure >= 0.5, scores.line()
    assert 0.0 <= label_accuracy(ref, [s.as_tuple() for s in found]) <= 1.0


def test_section_edit_without_given_sections_uses_the_analysis(piece: tuple) -> None:
    torch.set_num_threads(1)
    pipe = tiny_edit_pipeline()
    wav, _ = piece
    found = [s.as_tuple() for s in find_sections(wav, SR)]
    r = pipe(wav, SR, "remove drums", ranges=_range("chorus"), seed=0)
    assert r.parameters["sections"] == [[s, e, lab] for s, e, lab in found]
    out = r.audio[0]
    inside = np.zeros(wav.size, bool)
    for s, e, lab in found:
        if lab == "chorus":
            inside[int(round(s * SR)):int(round(e * SR))] = True
    assert inside.any()
    np.testing.assert_array_equal(out[~inside], wav[~inside])
    assert np.abs(out[inside] - wav[inside]).mean() > 1e-3
    missing = next(n for n in SECTIONS if n not in {lab for _, _, lab in found})
    with pytest.raises(ConfigError, match=f"no {missing}"):
        pipe(wav, SR, f"remove drums in the {missing}", seed=0)


def test_cli_section_the_piece_lacks_is_one_line(tmp_path: Path, piece: tuple,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.audio import save_audio
    from musigen.cli import main

    wav, _ = piece
    found = {s.label for s in find_sections(wav, SR)}
    missing = next(n for n in SECTIONS if n not in found)
    model = tiny_edit_pipeline().save_pretrained(tmp_path / "model")
    src = save_audio(tmp_path / "in.wav", wav, SR)
    capsys.readouterr()  # the save's progress bar
    rc = main(["edit", str(src), "-i", "remove drums", "--section", missing, "--model",
               str(model), "--out", str(tmp_path / "o.wav")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and f"no {missing}" in err


def _range(section: str):  # -> EditRange
    from musigen.instructme.edit_range import EditRange

    return EditRange(section=section)
