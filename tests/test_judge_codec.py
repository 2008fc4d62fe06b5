"""A judge for codec outputs: codec round trips, codec views for training and measurement,
the `--codec` options of `musigen eval judge` and `calibrate-judge`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from musigen.cli import main
from musigen.codec_round_trip import ThroughCodec
from musigen.errors import ConfigError
from musigen.judge.data import build_views, measure_judge
from musigen.judge.model import InstrumentJudge, JudgeConfig
from tests.musicot_tiny import SR as CODEC_SR
from tests.musicot_tiny import tiny_codec
from tests.test_metrics import _stem_corpus

JUDGE_SR = 16000


def _tiny_judge() -> InstrumentJudge:
    torch.manual_seed(0)
    return InstrumentJudge(JudgeConfig(channels=[4, 8, 8, 8], embedding_dim=8, window_s=1.0, hop_s=0.5)).eval()


def test_round_trip_keeps_length_and_rate_and_changes_the_audio() -> None:
    codec = tiny_codec()  # 8 kHz, 2 codebooks: a 16 kHz clip is resampled there and back
    wav = (0.3 * np.sin(2 * np.pi * 220 * np.arange(12345) / JUDGE_SR)).astype(np.float32)
    latents = ThroughCodec(codec, (0,))(wav, JUDGE_SR)
    codes = ThroughCodec(codec, (2,))(wav, JUDGE_SR)
    for out in (latents, codes):
        assert out.shape == wav.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert not np.allclose(out, wav, atol=1e-3)
    assert not np.allclose(latents, codes)
    # the path is drawn per call from the list, and the draw follows the generator
    both = ThroughCodec(codec, (0, 2))
    draws = [both(wav, JUDGE_SR, np.random.default_rng(s)) for s in range(6)]
    assert any(np.allclose(d, latents) for d in draws) and any(np.allclose(d, codes) for d in draws)
    for bad in ((), (3,), (-1,)):
        with pytest.raises(ConfigError, match="codebooks"):
            ThroughCodec(codec, bad)


def test_views_gain_codec_copies_with_the_clean_labels(tmp_path: Path) -> None:
    manifest = _stem_corpus(tmp_path / "c", 3, 0)
    judge = _tiny_judge()
    rt = ThroughCodec(tiny_codec(), (0, 2))
    clean = build_views(manifest, judge.frontend, JUDGE_SR, 1, seed=5)
    again = build_views(manifest, judge.frontend, JUDGE_SR, 1, seed=5, round_trip=rt, round_trip_fraction=0.0)
    assert [v.activity for v in again] == [v.activity for v in clean]  # fraction 0: the same views
    doubled = build_views(manifest, judge.frontend, JUDGE_SR, 1, seed=5, round_trip=rt, round_trip_fraction=1.0)
    assert len(doubled) == 2 * len(clean) == 12
    for a, b in zip(doubled[::2], doubled[1::2], strict=True):  # each clean view, then its codec copy
        assert a.piece == b.piece and a.activity == b.activity and a.genre == b.genre
        assert a.features.shape == b.features.shape and not torch.equal(a.features, b.features)
    only = build_views(manifest, judge.frontend, JUDGE_SR, 1, seed=5, round_trip=rt, round_trip_only=True)
    assert len(only) == len(clean)
    assert all(not torch.equal(o.features, c.features) for o, c in zip(only, clean, strict=True))
    with pytest.raises(ConfigError, match="need a codec"):
        build_views(manifest, judge.frontend, JUDGE_SR, 1, seed=5, round_trip_fraction=0.5)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        build_views(manifest, judge.frontend, JUDGE_SR, 1, seed=5, round_trip=rt, round_trip_fraction=1.5)

    on_codec = measure_judge(judge, manifest, subsets=1, hop_s=0.5, round_trip=rt)
    on_clean = measure_judge(judge, manifest, subsets=1, hop_s=0.5)
    assert on_codec["n_windows"] == on_clean["n_windows"] and on_codec["n_pieces"] == 3
    assert on_codec["per_class"]["bass"]["ap"] is not None  # the one-stem sub-mixes give negatives
    assert on_codec["per_class"]["bass"]["ap"] != on_clean["per_class"]["bass"]["ap"]


def test_judge_data_module_trains_on_codec_views(tmp_path: Path) -> None:
    import lightning as L

    from musigen.training.judge_module import JudgeDataModule, JudgeModule

    manifest = _stem_corpus(tmp_path / "c", 2, 1)
    codec_dir = tmp_path / "codec"
    tiny_codec().save_pretrained(codec_dir)
    module = JudgeModule(judge=JudgeConfig(channels=[4, 8, 8, 8], embedding_dim=8, window_s=1.0, hop_s=0.5),
                         warmup_steps=1)
    data = JudgeDataModule(str(manifest), val_manifest=str(manifest), batch_size=4, subsets_per_piece=1,
                           windows_per_epoch=8, codec=str(codec_dir), codec_fraction=1.0, codec_codebooks=[0, 2],
                           val_codec_fraction=0.0)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)
    assert len(data.train_set.views) == 8  # 2 pieces x (full mix + 1 sub-mix) x (clean + codec)
    val_views = data.val_set.inner.views
    assert len({v.piece for v in val_views}) == 2 and len(val_views) == 4  # no codec copies
    assert trainer.global_step == 2
    with pytest.raises(ConfigError, match="needs a codec"):
        JudgeDataModule(str(manifest), codec_fraction=0.5)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        JudgeDataModule(str(manifest), codec=str(codec_dir), codec_fraction=2.0)


def test_eval_judge_and_calibration_take_a_codec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.eval.harness.sets import DEV_FIRST, _Synth, build_edit_set

    manifest = _stem_corpus(tmp_path / "c", 2, 2)
    codec_dir, judge_dir = tmp_path / "codec", tmp_path / "judge"
    tiny_codec().save_pretrained(codec_dir)
    _tiny_judge().save_pretrained(judge_dir)
    out_json = tmp_path / "m.json"
    assert main(["eval", "judge", "--manifest", str(manifest), "--judge", str(judge_dir), "--hop", "0.5",
                 "--codec", str(codec_dir), "--codec-codebooks", "2", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert f"through {codec_dir} (2 codebooks)" in out and json.loads(out_json.read_text())["n_pieces"] == 2
    # a path the codec does not have: one line, exit 2
    assert main(["eval", "judge", "--manifest", str(manifest), "--judge", str(judge_dir),
                 "--codec", str(codec_dir), "--codec-codebooks", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "codebooks" in err and len(err.splitlines()) == 1

    dev = build_edit_set(tmp_path / "dev", 2, _Synth("builtin", 16000, 3.0), tasks=("remove", "extract"),
                         first=DEV_FIRST["edit"])
    report = tmp_path / "cal.json"
    assert main(["eval", "calibrate-judge", "--set", str(dev), "--judge", str(judge_dir), "--codec", str(codec_dir),
                 "--json", str(report)]) == 0
    assert "each also through" in capsys.readouterr().out
    result = json.loads(report.read_text())
    from musigen.eval.harness.set_items import load_set

    items = len(load_set(dev).items)
    assert items == 4  # 2 per task
    assert result["clips"] == items * 2 * 2 and result["codec"] == str(codec_dir)  # (source, target) x (clean, codec)
    assert CODEC_SR != JUDGE_SR  # the resampling path above was exercised


def test_the_default_judge_is_the_codec_judge_and_hears_a_stem_go_through_the_demo_codec() -> None:
    """On a fresh render sent through the shipped demo codec, the default judge finds the guitar
    in the mix and not without it (the clean-only judge's guitar AP falls from 0.94 to 0.87
    through the codec's latents)."""
    from musigen.data.synth.composition import compose
    from musigen.data.synth.orchestration import orchestrate
    from musigen.data.synth.render import render
    from musigen.judge.model import default_judge_dir, load_judge

    codec_dir = Path(__file__).resolve().parent.parent / "checkpoints" / "codec_demo"
    if not (default_judge_dir() / "model.safetensors").is_file() or not codec_dir.is_dir():
        pytest.skip("no shipped judge_codec / codec_demo in checkpoints/")
    assert default_judge_dir().name == "judge_codec"
    judge, rt = load_judge(), ThroughCodec.from_pretrained(codec_dir, (0,))
    for seed in range(12_345_678, 12_345_700):
        comp = compose(seed, 6.0, genre="rock")
        piece = render(comp, orchestrate(comp, "rock", seed=seed), sample_rate=JUDGE_SR)
        if "guitar" in piece.stems:
            break
    with_it = judge.analyze(rt(piece.mix, JUDGE_SR), JUDGE_SR)
    without = judge.analyze(rt(piece.mix - piece.stems["guitar"], JUDGE_SR), JUDGE_SR)
    assert with_it.present["guitar"] and not without.present["guitar"]
