"""`musigen eval` end to end on a tiny held-out set: make-sets, edit, generate, codec."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from musigen.cli import main
from musigen.eval.harness.set_items import load_set
from musigen.judge.model import InstrumentJudge, JudgeConfig


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sets")
    rc = main(["eval", "make-sets", "--out", str(root), "--n-gen", "2", "--n-edit", "1", "--duration", "3",
               "--fluidsynth", "no", "--no-progress"])
    assert rc == 0
    return root


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("judge")
    InstrumentJudge(JudgeConfig(channels=[4, 8, 8, 8], embedding_dim=8)).save_pretrained(path)
    return path


def _html_refs_exist(report: Path) -> list[str]:
    page = (report / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs, "the page references no files"
    for ref in refs:
        assert not ref.startswith(("/", "http:", "https:", "file:")), f"not a relative path: {ref}"
        assert (report / ref).is_file(), f"index.html points to a missing file {ref}"
    return refs


def test_make_sets_builds_exact_triplets_for_every_task(sets: Path) -> None:
    edit = load_set(sets / "edit")
    assert sorted({it.task for it in edit.items}) == ["add", "extract", "remix", "remove", "replace", "two_round"]
    for it in edit.items:
        source, target = edit.audio(it.source), edit.audio(it.target)
        stems = {k: edit.audio(p) for k, p in it.stems.items()}
        assert np.allclose(sum(stems.values()), source, atol=1e-3)  # 16-bit files: stems sum to the source
        op = it.ops[0]
        if it.task == "remove":
            assert np.allclose(source - stems[op["instrument"]], target, atol=1e-3)
            assert it.source_truth[op["instrument"]] and not it.target_truth[op["instrument"]]
        if it.task == "extract":
            assert np.allclose(stems[op["instrument"]], target, atol=1e-3)
        if it.task == "add":
            assert not it.source_truth[op["instrument"]] and it.target_truth[op["instrument"]]
        if it.task == "two_round":
            assert len(it.instructions) == 2 and len(it.intermediate) == 1
        if it.task == "remix":
            assert it.target_genre != it.genre and it.instructions == [f"remix to {it.target_genre} genre"]
    gen = load_set(sets / "gen")
    assert len(gen.items) == 2 and all(it.prompt and it.ref for it in gen.items)
    assert len(gen.info["pool"]) == 2
    assert gen.items[0].seed >= 10_000_000  # seeds that training never uses


def test_eval_edit_reports_the_baselines_next_to_the_model(sets: Path, judge_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "edit_report"
    rc = main(["eval", "edit", "--model", "musigen.eval.harness.baselines:IdentityEdit", "--set", str(sets),
               "--out", str(out), "--judge", str(judge_dir), "--clap", "none", "--no-chords", "--listen", "1"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    systems = metrics["systems"]
    assert metrics["system_order"] == ["musigen.eval.harness.baselines:IdentityEdit", "identity", "random-stem",
                                       "target"]
    tasks = systems["target"]["tasks"]
    assert set(tasks) == {"add", "remove", "extract", "replace", "remix", "two_round", "all"}
    # the exact target is a perfect signal match; the identity edit is not (it ignores the instruction)
    assert tasks["all"]["si_sdr"] > 60 and tasks["all"]["log_mel"] == pytest.approx(0.0, abs=1e-6)
    assert systems["identity"]["tasks"]["extract"]["si_sdr"] < 20
    assert tasks["all"]["kl_judge"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert systems["identity"]["tasks"] == systems["musigen.eval.harness.baselines:IdentityEdit"]["tasks"]
    assert metrics["fad_embedder"].startswith("musigen-judge")
    table = (out / "report.md").read_text()
    assert "| remove | random-stem |" in table and "FAD (judge)" in table
    # both instruction accuracies are reported: per instruction (named + at most one flip) and all instruments
    assert "instr. acc (per instruction)" in table
    for system in systems.values():
        for m in system["tasks"].values():
            assert 0.0 <= m["instruction_accuracy_per_instruction"] <= 1.0 and 0.0 <= m["instruction_accuracy"] <= 1.0
        assert all({"per_instruction_success", "named_ok", "other_flips"} <= set(r) for r in system["items"])
    refs = _html_refs_exist(out)
    assert sum(r.endswith(".wav") for r in refs) == 6 * 6  # 6 tasks x (source, target, model + 3 baselines)


def test_eval_edit_with_a_baseline_as_model_scores_only_the_baselines_and_chord_preservation(
        sets: Path, judge_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # templates instead of the shipped learned recogniser keep the test fast and independent of checkpoints/
    monkeypatch.setenv("MUSIGEN_CHORDS_CHECKPOINT", str(tmp_path / "no_chord_model"))
    out = tmp_path / "baselines_report"
    rc = main(["eval", "edit", "--model", "identity", "--set", str(sets), "--out", str(out),
               "--judge", str(judge_dir), "--clap", "none", "--listen", "1"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["system_order"] == ["identity", "random-stem", "target"]  # the floors and ceiling, nothing else
    assert "templates" in metrics["chords"]
    identity = metrics["systems"]["identity"]
    harmonic = [r for r in identity["items"] if "chord_kept_majmin" in r]
    assert harmonic, "no item was scored for chord preservation"
    # the identity edit returns the source, so its recognised chords are the source's, exactly
    assert all(r["chord_kept_majmin"] == pytest.approx(1.0) for r in harmonic)
    assert identity["tasks"]["all"]["chord_kept_majmin"] == pytest.approx(1.0)
    assert "chords kept" in (out / "report.md").read_text()
    _html_refs_exist(out)


def test_eval_generate_scores_random_clips_against_the_reference_ceiling(sets: Path, judge_dir: Path,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "gen_report"
    rc = main(["eval", "generate", "--model", "random-clip", "--set", str(sets), "--out", str(out),
               "--judge", str(judge_dir), "--clap", "none"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    systems = metrics["systems"]
    assert metrics["system_order"] == ["random-clip", "reference"]
    ref = systems["reference"]["metrics"]
    assert ref["fad_judge"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert ref["kl_judge"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert systems["random-clip"]["metrics"]["kl_judge"]["value"] > 0
    assert ref["fad_judge"]["warning"]  # 2 clips are far too few for FAD, and the report says so
    page = (out / "index.html").read_text()
    assert "no thought plan from this system" in page  # the MusiCoT slot is there, empty for baselines
    _html_refs_exist(out)


def test_eval_codec_round_trips_a_tiny_codec(sets: Path, judge_dir: Path, tmp_path: Path) -> None:
    codec_mod = pytest.importorskip("musigen.codec")
    import torch

    torch.manual_seed(0)
    try:
        config = codec_mod.encodec_config(sample_rate=16000, upsampling_ratios=[8, 5, 4, 2], num_filters=4,
                                          hidden_size=16, codebook_size=16, num_codebooks=2)
    except TypeError as exc:  # the codec helper changed its signature
        pytest.skip(f"encodec_config signature differs: {exc}")
    codec = codec_mod.Codec.from_config(config)
    codec_mod.fill_codebooks(codec.model)
    codec.save_pretrained(tmp_path / "codec")
    out = tmp_path / "codec_report"
    rc = main(["eval", "codec", "--model", str(tmp_path / "codec"), "--set", str(sets), "--out", str(out),
               "--judge", str(judge_dir), "--no-chords", "--limit", "1", "--listen", "1"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    systems = metrics["systems"]
    assert metrics["system_order"] == ["identity", "codec (codes)", "codec (latents)"]
    assert systems["identity"]["metrics"]["si_sdr"] > 60 > systems["codec (codes)"]["metrics"]["si_sdr"]
    _html_refs_exist(out)


def test_bad_inputs_give_one_line_errors(sets: Path, judge_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["eval", "edit", "--model", "identity", "--set", str(tmp_path / "nope"), "--out", str(tmp_path / "r")],
         "no 'edit' evaluation set"),
        (["eval", "edit", "--model", "no-such-model", "--set", str(sets), "--out", str(tmp_path / "r"),
          "--judge", str(judge_dir)], "neither a baseline"),
        (["eval", "generate", "--model", "random-clip", "--set", str(sets / "edit"), "--out", str(tmp_path / "r"),
          "--judge", str(judge_dir)], "needs a generation set"),
        (["eval", "edit", "--model", "identity", "--set", str(sets), "--out", str(tmp_path / "r"),
          "--judge", str(tmp_path / "no_judge")], "no instrument judge"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_dev_split_uses_other_pieces_than_the_test_split(tmp_path: Path) -> None:
    """Settings tuned on `--split dev` never see a test piece: disjoint seeds, same tasks."""
    from musigen.errors import ConfigError
    from musigen.eval.harness.sets import DEV_FIRST, _Synth, build_edit_set, make_sets

    synth = _Synth("builtin", 16000, 3.0)
    test = load_set(build_edit_set(tmp_path / "test", 1, synth, tasks=("remove",)))
    dev = load_set(build_edit_set(tmp_path / "dev", 1, synth, tasks=("remove",), first=DEV_FIRST["edit"]))
    assert dev.info["first_item"] == DEV_FIRST["edit"] and test.info["first_item"] == 0
    assert dev.items[0].seed != test.items[0].seed and dev.items[0].task == "remove"
    assert not np.allclose(dev.audio(dev.items[0].source)[:1000], test.audio(test.items[0].source)[:1000])
    with pytest.raises(ConfigError, match="at most"):
        make_sets(tmp_path / "too_many", n_gen=1, n_edit=DEV_FIRST["edit"] + 1, fluidsynth="no")
    with pytest.raises(ConfigError, match="split"):
        make_sets(tmp_path / "bad", n_gen=1, n_edit=1, fluidsynth="no", split="train")
