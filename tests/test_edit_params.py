"""EditParams: InstructME's sampling settings, checked once wherever they come from."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from musigen.errors import CheckpointError, ConfigError
from musigen.instructme.edit_params import EditParams


def test_defaults_are_valid_and_numpy_numbers_are_accepted() -> None:
    p = EditParams()
    assert (p.steps, p.sampler, p.guidance_text, p.guidance_source) == (25, "dpmsolver++", 3.0, 1.5)
    q = EditParams(steps=np.int64(4), guidance_text=np.float32(2.5), seed=np.int64(7))
    assert (q.steps, q.guidance_text, q.seed) == (4, 2.5, 7)
    assert type(q.steps) is int and type(q.guidance_text) is float and type(q.seed) is int


@pytest.mark.parametrize(("field", "value", "words"), [
    ("steps", 0, "steps"),
    ("steps", 2.5, "steps"),
    ("steps", True, "steps"),
    ("steps", 100_000, "steps"),
    ("sampler", "euler", "unknown sampler"),
    ("guidance_text", math.nan, "guidance_text"),
    ("guidance_text", math.inf, "guidance_text"),
    ("guidance_text", -1.0, "guidance_text"),
    ("guidance_source", math.nan, "guidance_source"),
    ("guidance_source", 1e6, "guidance_source"),
    ("guidance_source", "2", "guidance_source"),
    ("strength", 0.0, "strength"),
    ("strength", 1.5, "strength"),
    ("strength", math.nan, "strength"),
    ("start", "inverted", "unknown start"),
    ("output", "wav", "unknown output mode"),
    ("match_source_stats", 1, "match_source_stats"),
    ("seed", 1.5, "seed"),
    ("seed", 2**70, "seed"),
])
def test_bad_values_are_one_line_config_errors(field: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        EditParams(**{field: value})
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=words):  # replace() checks the same way
        EditParams().replace(**{field: value})


def test_replace_ignores_unset_values_and_refuses_unknown_names() -> None:
    p = EditParams(steps=10, seed=3)
    assert p.replace(steps=None, seed=None) == p
    assert p.replace(steps=5).steps == 5 and p.replace(steps=5).seed == 3
    with pytest.raises(ConfigError, match="unknown edit parameters: stepz"):
        p.replace(stepz=4)


def test_pipeline_json_holds_params_and_older_flat_files_still_load(tmp_path) -> None:
    from musigen import hub
    from musigen.instructme.pipeline import PIPELINE_NAME, InstructMEPipelineConfig

    config = InstructMEPipelineConfig(params=EditParams(steps=7, start="inversion"),
                                      chord_method="templates")
    hub.save_config(tmp_path, config, PIPELINE_NAME)
    data = json.loads((tmp_path / PIPELINE_NAME).read_text())
    assert data["params"]["steps"] == 7 and "steps" not in data
    assert hub.load_config(tmp_path, InstructMEPipelineConfig, PIPELINE_NAME) == config

    flat = {k: v for k, v in data.items() if k != "params"}
    flat.update(steps=9, guidance_text=1.25, sampler="ddim", output="masked_delta")
    (tmp_path / PIPELINE_NAME).write_text(json.dumps(flat))
    old = hub.load_config(tmp_path, InstructMEPipelineConfig, PIPELINE_NAME)
    assert old.params == EditParams(steps=9, guidance_text=1.25, sampler="ddim",
                                    output="masked_delta")

    flat["guidance_source"] = float("nan")  # a bad saved value names the file, in one line
    (tmp_path / PIPELINE_NAME).write_text(json.dumps(flat))
    with pytest.raises(CheckpointError, match="guidance_source") as info:
        hub.load_config(tmp_path, InstructMEPipelineConfig, PIPELINE_NAME)
    assert "\n" not in str(info.value) and PIPELINE_NAME in str(info.value)


def test_the_sweep_setting_is_an_edit_params_without_its_seed() -> None:
    from musigen.eval.studies.edit_sweep import SweepSetting

    setting = SweepSetting(10, 2.0, 1.0, "ddim", "auto")
    assert setting.params(5) == EditParams(steps=10, guidance_text=2.0, guidance_source=1.0,
                                           sampler="ddim", output="auto", seed=5)
    with pytest.raises(ConfigError, match="guidance_text"):
        SweepSetting(10, math.nan, 1.0)
    assert {f.name for f in dataclasses.fields(SweepSetting)} | {"seed"} == {
        f.name for f in dataclasses.fields(EditParams)}
