"""`musigen eval sweep-edit`: every setting scored, floors, the documented choice, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_instructme_pipeline import tiny_pipeline

from musigen.cli import main as cli_main
from musigen.errors import ConfigError
from musigen.eval.harness.set_items import load_set
from musigen.eval.metrics.signal_metrics import si_sdr
from musigen.eval.studies.edit_sweep import (
    RULE,
    SweepSetting,
    parse_settings,
    select_setting,
)


def main(argv: list[str]) -> int:
    """`musigen eval sweep-edit ARGS`."""
    return cli_main(["eval", "sweep-edit", *argv])

SETTINGS = "2:1:1:ddim;2:3:1.5:dpmsolver++:source_delta;4:3:1.5:ddim:decoded:0.5"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("sweep_model") / "model")


@pytest.fixture(scope="module")
def edit_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musigen.eval.harness.sets import _Synth, build_edit_set

    out = tmp_path_factory.mktemp("sweep_set") / "edit"
    return build_edit_set(out, 1, _Synth("builtin", 16000, 2.0), tasks=("remove", "add"))


def test_sweep_scores_every_setting_with_floors_and_the_rule(model_dir: Path, edit_set: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep.json"
    rc = main(["--model", str(model_dir), "--set", str(edit_set), "--out", str(out), "--settings", SETTINGS])
    assert rc == 0
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert result["complete"] and result["rule"] == RULE
    assert [r["label"] for r in result["rows"]] == ["2:1:1:ddim:decoded", "2:3:1.5:dpmsolver++:source_delta",
                                                   "4:3:1.5:ddim:decoded:0.5"]
    assert result["rows"][2]["strength"] == 0.5 and result["rows"][0]["strength"] == 1.0
    s = load_set(edit_set)
    assert result["items"] == [it.id for it in s.items]
    for row in result["rows"]:
        assert set(row["per_task"]) == {"remove", "add"}
        assert math.isclose(row["si_sdr"], np.mean(list(row["per_item"].values())), rel_tol=1e-9)
        assert 0.0 <= row["chords_kept"] <= 1.0 and row["cpu_s"] >= 0
        assert row["rms_ratio"] > 0 and f"RMS out/in {row['rms_ratio']:.2f}" in printed
        assert row["label"] in printed
        # the shipped judge scores each of the 2 items; success needs the target part
        assert row["instruction_accuracy"] in (0.0, 0.5, 1.0) and row["target_ok"] in (0.0, 0.5, 1.0)
        assert row["instruction_accuracy"] <= row["target_ok"]
        assert f"instr. acc {row['instruction_accuracy']:.3f}" in printed
        assert row["instruction_accuracy_per_instruction"] in (0.0, 0.5, 1.0)
        assert f"per instruction {row['instruction_accuracy_per_instruction']:.3f}" in printed
    # the identity floor is the source scored as the output
    ident = np.mean([si_sdr(s.audio(it.source), s.audio(it.target)) for it in s.items])
    assert math.isclose(result["floors"]["identity"]["si_sdr"], ident, rel_tol=1e-6)
    assert {"identity", "identity_codec", "target_codec", "target_codec_delta", "target_codec_masked"} <= set(
        result["floors"])
    assert "as masked_delta" in printed
    assert result["chosen"]["index"] == select_setting(result["rows"])
    assert "--settings" in result["command"] and result["args"]["seed"] == 0
    assert "chosen:" in printed

    skip = tmp_path / "no_judge.json"
    assert main(["--model", str(model_dir), "--set", str(edit_set), "--out", str(skip),
                 "--settings", "2:1:1:ddim", "--no-judge"]) == 0
    row = json.loads(skip.read_text())["rows"][0]
    assert row["instruction_accuracy"] is None and "instr. acc n/a" in capsys.readouterr().out


def test_selection_gates_on_chords_kept_then_maximises_si_sdr() -> None:
    rows = [{"si_sdr": 5.0, "chords_kept": 0.50},   # best SI-SDR but scrambles the chords
            {"si_sdr": 2.0, "chords_kept": 0.80},   # within 0.05 of the best chords kept
            {"si_sdr": 1.0, "chords_kept": 0.84}]   # best chords kept, worse SI-SDR
    assert select_setting(rows) == 1
    assert select_setting(rows, tolerance=0.0) == 2
    assert select_setting([{"si_sdr": None, "chords_kept": 0.9}]) is None


def test_settings_strings_round_trip_and_bad_ones_are_config_errors(model_dir: Path, edit_set: Path,
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    parsed = parse_settings(SETTINGS)
    assert parsed[0] == SweepSetting(2, 1.0, 1.0, "ddim", "decoded")
    assert parse_settings(";".join(p.label for p in parsed)) == parsed
    assert parsed[2].strength == 0.5 and parsed[2].label.endswith(":0.5")
    assert parsed[0].label == "2:1:1:ddim:decoded"  # strength 1 (the default) is left out
    matched = parse_settings("2:1:1:ddim:source_delta:1:match;2:1:1:ddim:decoded:0.5:raw")
    assert matched[0].match_source_stats and not matched[1].match_source_stats
    assert matched[0].label == "2:1:1:ddim:source_delta:1:match" and matched[1].label == "2:1:1:ddim:decoded:0.5"
    assert parse_settings(";".join(m.label for m in matched)) == matched
    inverted = parse_settings("25:1.5:1:ddim:source_delta:1:raw:inversion;2:1:1:ddim:decoded:0.5:match:noise")
    assert inverted[0].start == "inversion" and inverted[1].start == "noise"
    assert inverted[0].label == "25:1.5:1:ddim:source_delta:1:raw:inversion"
    assert parse_settings(";".join(m.label for m in inverted)) == inverted
    for bad in ("2:1:1", "x:1:1:ddim", "2:1:1:euler", "2:1:1:ddim:wet", "0:1:1:ddim", ";",
                "2:1:1:ddim:decoded:0", "2:1:1:ddim:decoded:x", "2:1:1:ddim:decoded:1:9",
                "2:1:1:ddim:decoded:1:match:x", "2:1:1:ddim:decoded:1:match:inverted",
                "2:1:1:ddim:decoded:1:match:inversion:x"):
        with pytest.raises(ConfigError):
            parse_settings(bad)
    args = ["eval", "sweep-edit", "--model", str(model_dir), "--set", str(edit_set), "--out", str(tmp_path / "x.json")]
    assert cli_main(args + ["--settings", "2:1:1"]) == 2
    assert cli_main(args + ["--settings", "2:1:1:ddim", "--items", "nope0000"]) == 2
    err = capsys.readouterr().err
    assert err.count("musigen: error:") == 2 and "Traceback" not in err
    assert not (tmp_path / "x.json").exists()


def test_per_task_item_selection_takes_the_first_n_of_each_task(tmp_path: Path) -> None:
    from musigen.eval.harness.sets import _Synth, build_edit_set
    from musigen.eval.studies.edit_sweep import pick_items

    eval_set = load_set(build_edit_set(tmp_path / "edit", 2, _Synth("builtin", 16000, 2.0),
                                       tasks=("remove", "add")))
    assert len(eval_set.items) == 4
    one = pick_items(eval_set, "per-task:1")
    assert len(one) == 2
    tasks = [str(it.task) for it in eval_set.items]
    assert [str(it.task) for it in one] == list(dict.fromkeys(tasks))  # each task once, set order
    assert [it.id for it in one] == [next(i.id for i in eval_set.items if str(i.task) == t)
                                     for t in dict.fromkeys(tasks)]
    assert len(pick_items(eval_set, "per-task:99")) == len(eval_set.items)
    for bad in ("per-task:0", "per-task:x", "per-task:", "per-task:-1"):
        with pytest.raises(ConfigError, match="per-task"):
            pick_items(eval_set, bad)
