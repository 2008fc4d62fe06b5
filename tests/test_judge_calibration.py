"""Per-instrument judge thresholds: fitting, storage, use in instruction accuracy, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from musigen.cli import main
from musigen.errors import CheckpointError
from musigen.eval.metrics.instruction_accuracy import Op, check_instruction
from musigen.judge.model import InstrumentJudge, JudgeAnalysis, JudgeConfig
from musigen.judge.calibration import (
    LOW,
    Observations,
    accuracy_table,
    best_threshold,
    fit_thresholds,
)


def test_best_threshold_separates_the_classes_and_prefers_the_side_of_half() -> None:
    rng = np.random.default_rng(0)
    pos, neg = rng.uniform(0.75, 0.95, 40), rng.uniform(0.05, 0.7, 60)
    p, y = np.concatenate([pos, neg]), np.concatenate([np.ones(40, bool), np.zeros(60, bool)])
    t = best_threshold(p, y)
    assert neg.max() < t <= pos.min()
    assert np.mean((p >= t) == y) == 1.0
    # Already separable at 0.5: 0.5 stays (ties go to the default).
    assert best_threshold(np.array([0.2, 0.3, 0.8, 0.9]), np.array([0, 0, 1, 1], bool)) == 0.5
    # A class that is always on cannot push the threshold below LOW.
    assert best_threshold(np.array([0.01, 0.02, 0.03]), np.ones(3, bool)) >= LOW


def test_fit_thresholds_skips_thin_or_ambiguous_classes_and_never_lowers_accuracy() -> None:
    rng = np.random.default_rng(1)
    n = 60
    truth = np.zeros((n, 3))
    truth[:30, 0] = 1                     # balanced class, scored
    truth[:2, 1] = 1                      # two positives only: stays at 0.5
    truth[:, 2] = np.nan                  # all ambiguous: stays at 0.5
    presence = np.clip(rng.normal(0.55 + 0.3 * np.nan_to_num(truth), 0.1), 0, 1)
    obs = Observations(presence, truth, ["organ", "pad", "lead"])
    th = fit_thresholds(obs)
    assert set(th) == {"organ"} and th["organ"] > 0.6
    rows = {r["instrument"]: r for r in accuracy_table(obs, th)}
    assert rows["organ"]["acc_at_threshold"] > rows["organ"]["acc_at_0.5"]
    assert rows["lead"]["clips"] == 0 and rows["lead"]["acc_at_threshold"] is None


def test_thresholds_decide_presence_and_instruction_checks() -> None:
    names = ["drums", "organ"]
    a = JudgeAnalysis(window_starts=np.zeros(2), instrument_probs=np.array([[0.9, 0.3], [0.8, 0.7]]),
                      genre_probs=np.ones((2, 1)), embeddings=np.zeros((2, 1)), logits=np.zeros((2, 3)),
                      instruments=names, genres=["pop"], thresholds={"organ": 0.75})
    assert a.present == {"drums": True, "organ": False}
    remove_organ = [Op("remove", instrument="organ")]
    truth_src, truth_tgt = {"drums": True, "organ": True}, {"drums": True, "organ": False}
    assert not check_instruction(truth_src, truth_tgt, a.presence, remove_organ).success
    assert check_instruction(truth_src, truth_tgt, a.presence, remove_organ, threshold=a.thresholds).success


def test_config_rejects_unknown_instruments_and_out_of_range_thresholds() -> None:
    with pytest.raises(CheckpointError, match="unknown"):
        JudgeConfig(thresholds={"kazoo": 0.5})
    for bad in (1.2, 0.0, "0.5", None, True):
        with pytest.raises(CheckpointError, match="out of range"):
            JudgeConfig(thresholds={"organ": bad})  # type: ignore[dict-item]


def test_calibrate_judge_cli_writes_thresholds_the_judge_then_uses(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.eval.harness.sets import DEV_FIRST, _Synth, build_edit_set

    synth = _Synth("builtin", 16000, 3.0)
    dev = build_edit_set(tmp_path / "dev", 2, synth, tasks=("add", "remove", "extract"), first=DEV_FIRST["edit"])
    test = build_edit_set(tmp_path / "test", 1, synth, tasks=("remove",))
    judge_dir = tmp_path / "judge"
    torch_judge = InstrumentJudge(JudgeConfig(channels=[4, 8, 8, 8], embedding_dim=8))
    for p in torch_judge.instrument_head.parameters():  # spread the clip probabilities
        p.data.normal_(0.0, 2.0)
    torch_judge.save_pretrained(judge_dir)

    report = tmp_path / "cal.json"
    assert main(["eval", "calibrate-judge", "--set", str(dev), "--judge", str(judge_dir), "--write",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| instrument | clips |" in out and "wrote the thresholds" in out
    saved = json.loads((judge_dir / "config.json").read_text())["thresholds"]
    result = json.loads(report.read_text())
    assert saved == result["thresholds"] and result["clips"] == 12
    for row in result["per_instrument"]:
        if row["clips"]:
            assert row["acc_at_threshold"] >= row["acc_at_0.5"]
    reloaded = InstrumentJudge.from_pretrained(judge_dir)
    assert reloaded.config.thresholds == saved
    wav = np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32) * 0.1
    assert reloaded.analyze(wav, 16000).thresholds == saved

    # The held-out test items are refused, with one line and exit 2.
    assert main(["eval", "calibrate-judge", "--set", str(test), "--judge", str(judge_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "held-out test items" in err and len(err.splitlines()) == 1
