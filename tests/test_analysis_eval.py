"""`musigen eval analysis`: per-segment tag scores of the analyze path against exact stems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from musigen.cli import main
from musigen.eval.studies.analysis_eval import evaluate_analysis, score_view
from musigen.vocab import GENRES, INSTRUMENTS, MOODS
from tests.musicot_tiny import save_tiny_pipeline, tiny_embedder, tiny_text_encoder, tiny_tokenizer


def _texts() -> dict[str, torch.Tensor]:
    """Orthogonal tag vectors: instruments, then genres, then moods, each on its own axis."""
    n_i, n_g, n_m = len(INSTRUMENTS), len(GENRES), len(MOODS)
    eye = torch.eye(n_i + n_g + n_m)
    return {"instrument": eye[:n_i], "genre": eye[n_i:n_i + n_g], "mood": eye[n_i + n_g:]}


def _labels(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    inst = (torch.rand(n, len(INSTRUMENTS), generator=g) < 0.35).float()
    inst[:, 0] = 1.0 - inst[:, 1]  # so every segment has at least one instrument
    genres = torch.randint(len(GENRES), (n,), generator=g)
    moods = torch.randint(len(MOODS), (n,), generator=g)
    return inst, genres, moods


def test_a_view_that_holds_the_labels_scores_perfectly_and_shuffling_breaks_it() -> None:
    texts = _texts()
    inst, genres, moods = _labels(64)
    # each segment's vector: its instruments + its genre + its mood (all as tag directions)
    vec = inst @ texts["instrument"] + 2.0 * texts["genre"][genres] + 2.0 * texts["mood"][moods]
    perfect = score_view("oracle", vec, inst, genres, moods, texts, top_k=1)
    assert perfect.instrument_map == pytest.approx(1.0)
    assert perfect.top_k_precision == pytest.approx(1.0)  # the top tag is always a present one
    assert perfect.genre_accuracy == 1.0 and perfect.mood_accuracy == 1.0
    assert set(perfect.per_instrument_ap) == set(INSTRUMENTS)

    perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    shuffled = score_view("shuffled", vec[perm], inst, genres, moods, texts, top_k=3)
    assert shuffled.instrument_map < 0.8
    assert shuffled.genre_accuracy < 0.5

    # recall counts the present instruments the top-k found
    top_all = score_view("all", vec, inst, genres, moods, texts, top_k=len(INSTRUMENTS))
    assert top_all.top_k_recall == pytest.approx(1.0)


def test_unknown_single_labels_are_left_out_and_top_k_must_be_positive() -> None:
    texts = _texts()
    inst, genres, moods = _labels(16)
    vec = inst @ texts["instrument"] + texts["genre"][genres]
    genres_unknown = torch.full_like(genres, -1)
    scores = score_view("x", vec, inst, genres_unknown, moods, texts, top_k=2)
    assert scores.genre_accuracy != scores.genre_accuracy  # NaN: nothing to score
    with pytest.raises(Exception, match="top_k"):
        score_view("x", vec, inst, genres, moods, texts, top_k=0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musigen.data.synth.corpus import build_corpus

    root = tmp_path_factory.mktemp("analysis_corpus")
    build_corpus(root, n=3, duration=4.0, seed=5, progress=False)
    return root / "manifest.jsonl"


def test_evaluate_analysis_scores_every_window_and_level(corpus: Path) -> None:
    embedder = tiny_embedder(tiny_text_encoder())
    tokenizer = tiny_tokenizer(embedder)
    result = evaluate_analysis(embedder, tokenizer, corpus, top_k=2, name="tiny")
    expected = sum(len(tokenizer.window_bounds(4 * embedder.sample_rate, embedder.sample_rate))
                   for _ in range(3))
    assert result.n_pieces == 3 and result.n_segments == expected
    assert [v.view for v in result.views] == ["raw CLAP", "1 level", "2 levels"]
    assert len(result.fidelity) == tokenizer.config.levels
    assert result.fidelity == sorted(result.fidelity)  # more levels, closer to the embedding
    for v in result.views:
        assert 0.0 <= v.instrument_map <= 1.0 and 0.0 <= v.top_k_precision <= 1.0
    assert 0.0 < result.chance["instrument_map"] < 1.0
    assert "| raw CLAP | 1 |" in result.table()


def test_cli_writes_json_and_bad_input_is_one_line(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = save_tiny_pipeline(tmp_path / "pipe")
    out = tmp_path / "analysis.json"
    argv = ["eval", "analysis", "--model", str(model), "--manifest", str(corpus), "--json", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["top_k"] == 3 and len(data["views"]) == 3  # the pipeline's analysis_top_k
    assert "instrument mAP" in capsys.readouterr().out

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    (tmp_path / "plain").mkdir()
    for bad, expected in (
        (["--model", str(tmp_path / "nope"), "--manifest", str(corpus)], "not found"),
        (["--model", str(tmp_path / "plain"), "--manifest", str(corpus)], "not a MusiCoT pipeline"),
        (["--model", str(model), "--manifest", str(tmp_path / "missing.jsonl")], "not found"),
        (["--model", str(model), "--manifest", str(empty)], "no records"),
        (["--model", str(model), "--manifest", str(corpus), "--top-k", "0"], "--top-k"),
        (["--model", str(model), "--manifest", str(corpus), "--min-active", "-1"], "--min-active"),
    ):
        assert main(["eval", "analysis", *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
