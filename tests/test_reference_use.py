"""`musigen eval reference-use`: six paired conditions on held-out excerpts, and its errors."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from musigen import hub
from musigen.cli import main as cli_main
from musigen.errors import ConfigError
from musigen.eval.studies.reference_use import measure_reference_use
from musigen.musicot.pipeline import MusiCoTPipelineConfig


def main(argv: list[str]) -> int:
    """`musigen eval reference-use ARGS`."""
    return cli_main(["eval", "reference-use", *argv])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musicot_tiny import preencoded_corpus

    return preencoded_corpus(tmp_path_factory.mktemp("refuse_data"), n=4, out="val")


def _set_config(folder: Path, **changes: object) -> None:
    config = hub.load_config(folder, MusiCoTPipelineConfig, "pipeline.json")
    hub.save_config(folder, dataclasses.replace(config, **changes), "pipeline.json")


@pytest.fixture(scope="module")
def model_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained LM exported as a full pipeline that fits the data (sizes from index.json)."""
    from musigen.training.musicot_module import MusiCoTModule

    module = MusiCoTModule(str(data_dir), preset="debug", window_s=2.5, context_s=0.5, max_seq_len=512)
    folder = module.export(str(tmp_path_factory.mktemp("refuse_model") / "pipe"))
    _set_config(folder, max_ref_segments=2)  # what a run with ref_segments=2 records on export
    return folder


def test_six_conditions_are_paired_and_the_reference_is_read(model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["--model", str(model_dir), "--data", str(data_dir), "--out", str(out),
                 "--batches", "3", "--batch-size", "3"]) == 0
    result = json.loads((out / "reference_use.json").read_text())
    assert (result["ref_segments"], result["ref_levels"], result["crop_s"]) == (2, 1, 2.5)  # from pipeline.json
    rows = {(r["caption"], r["reference"]): r for r in result["rows"]}
    refs = ("own", "none", "other", "own, plan dropped")
    assert set(rows) == {(c, r) for c in ("kept", "dropped") for r in refs}
    for (_, ref), r in rows.items():
        assert math.isfinite(r["audio_loss"]) and len(r["audio_loss_per_batch"]) == 3
        if ref == "own, plan dropped":  # no plan, so no thought loss
            assert r["thought_loss"] is None and r["thought_loss_per_batch"] == []
        else:
            assert math.isfinite(r["thought_loss"]) and len(r["thought_loss_per_batch"]) == 3
    # the reference sits in the LM's context: replacing it by NULL tokens changes the losses
    for cap in ("kept", "dropped"):
        assert rows[(cap, "own")]["thought_loss_per_batch"] != rows[(cap, "none")]["thought_loss_per_batch"]
    assert rows[("kept", "own")]["audio_loss"] != rows[("dropped", "own")]["audio_loss"]
    # differences are paired per batch: their mean is the difference of the means
    diff = next(d for d in result["differences"] if d["caption"] == "kept" and d["comparison"] == "none-minus-own")
    expect = rows[("kept", "none")]["thought_loss"] - rows[("kept", "own")]["thought_loss"]
    assert math.isclose(diff["thought_loss"], expect, abs_tol=1e-9) and diff["thought_loss_se"] >= 0
    md = (out / "reference_use.md").read_text()
    assert "none-minus-own" in md and "other-minus-own" in md and "--batch-size 3" in result["command"]
    # the audio sees its plan: NULL tokens in its place change the audio loss, paired per batch
    plan = next(d for d in result["differences"] if d["caption"] == "dropped"
                and d["comparison"] == "plan-dropped-minus-own")
    expect = rows[("dropped", "own, plan dropped")]["audio_loss"] - rows[("dropped", "own")]["audio_loss"]
    assert math.isclose(plan["audio_loss"], expect, abs_tol=1e-9) and plan["audio_loss"] != 0
    assert plan["thought_loss"] is None and "plan-dropped-minus-own" in md and "n/a" in md
    # same seed, same numbers (rerunnable)
    again = measure_reference_use(model_dir, data_dir, batches=3, batch_size=3)
    assert again["rows"] == result["rows"]


def test_overrides_no_cot_and_bad_input_are_clear_errors(model_dir: Path, data_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    r = measure_reference_use(model_dir, data_dir, batches=1, batch_size=2, ref_segments=1, ref_levels=2)
    assert (r["ref_segments"], r["ref_levels"]) == (1, 2)
    no_cot = tmp_path / "no_cot"
    no_cot.mkdir()
    (no_cot / "pipeline.json").write_text((model_dir / "pipeline.json").read_text())
    _set_config(no_cot, use_thoughts=False)
    with pytest.raises(ConfigError, match="no-CoT"):
        measure_reference_use(no_cot, data_dir, batches=1)
    base = ["eval", "reference-use", "--data", str(data_dir), "--out", str(tmp_path / "o")]
    assert cli_main(base + ["--model", str(no_cot)]) == 2
    assert cli_main(base + ["--model", str(tmp_path / "nowhere")]) == 2
    assert cli_main(base + ["--model", str(model_dir), "--batch-size", "1"]) == 2
    assert cli_main(["eval", "reference-use", "--model", str(model_dir), "--data", str(tmp_path),
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("musigen: error:") == 4 and "no-CoT" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_plan_aligned_lm_is_measured_too(data_dir: Path, tmp_path: Path) -> None:
    """The plan-use row needs each excerpt's place in its plan; an aligned LM gets it."""
    from musigen.training.musicot_module import MusiCoTModule

    module = MusiCoTModule(str(data_dir), preset="debug", window_s=2.5, context_s=0.5, max_seq_len=512,
                           plan_aligned=True)
    with torch.no_grad():
        module.lm.plan_proj.weight.normal_(0, 0.5)
    folder = module.export(str(tmp_path / "aligned"))
    result = measure_reference_use(folder, data_dir, batches=2, batch_size=3, ref_segments=2)
    plan = next(d for d in result["differences"] if d["comparison"] == "plan-dropped-minus-own")
    assert math.isfinite(plan["audio_loss"]) and plan["audio_loss"] != 0
