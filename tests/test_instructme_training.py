"""InstructME training: pre-encoded shards, the debug recipe end to end, export."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from musigen.encode.edit_shards import EditShards
from musigen.encode.index import read_index
from musigen.errors import ConfigError
from musigen.instructme.pipeline import InstructMEPipeline
from musigen.training.instructme_module import VAL_SEED, InstructMEModule

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "instructme" / "debug.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """The debug recipe, run once in a scratch folder (it builds its own data)."""
    from musigen.training.cli import main

    work = tmp_path_factory.mktemp("instructme_debug")
    before_dir, before_threads, argv = os.getcwd(), torch.get_num_threads(), sys.argv
    os.chdir(work)
    sys.argv = sys.argv[:1]  # LightningCLI warns about pytest's own arguments otherwise
    try:
        cli = main(["fit", "--config", str(RECIPE)])
    finally:
        os.chdir(before_dir)
        torch.set_num_threads(before_threads)
        sys.argv = argv
    yield work, cli


def mean_loss(module: InstructMEModule, unet: torch.nn.Module, batches: list) -> float:
    with torch.no_grad():
        return float(np.mean([module.evaluation_loss(b, unet, VAL_SEED + i).item()
                              for i, b in enumerate(batches)]))


def test_debug_recipe_trains_lowers_the_loss_and_exports(run: tuple[Path, Any]) -> None:
    work, cli = run
    module, dm = cli.model, cli.datamodule
    assert cli.trainer.global_step == 40
    batches = list(dm.train_dataloader()) + list(dm.val_dataloader())
    module.eval()
    torch.manual_seed(0)  # the recipe's seed: the same initial weights as the run
    fresh = InstructMEModule(unet=module.unet_config, diffusion=module.diffusion_config)
    trained, untrained = mean_loss(module, module.export_unet(), batches), mean_loss(
        module, fresh.unet, batches)
    # same noise, same timesteps, same items: 40 steps take the loss ~13 % down (1.05 -> 0.91)
    assert trained < 0.93 * untrained, (trained, untrained)
    # the buffers hold the training data's statistics, which the export carries
    torch.testing.assert_close(module.latent_std, dm.stats.std)
    pipe = InstructMEPipeline.from_pretrained(work / "runs/instructme_debug/export")
    torch.testing.assert_close(pipe.stats.mean, dm.stats.mean)
    for k, v in module.export_unet().state_dict().items():
        torch.testing.assert_close(pipe.unet.state_dict()[k], v)
    wav = np.sin(2 * np.pi * 220 * np.arange(16000) / 16000).astype(np.float32)
    out = pipe(wav, 16000, "remove drums", steps=2, seed=0).audio
    assert out.shape == (1, 16000) and np.isfinite(out).all()


def test_checkpoint_export_matches_the_live_export(run: tuple[Path, Any],
                                                   tmp_path: Path) -> None:
    from musigen.training.export_instructme import export_checkpoint

    work, cli = run
    ckpt = tmp_path / "debug.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    out = export_checkpoint(ckpt, tmp_path / "exported")
    a = InstructMEPipeline.from_pretrained(out)
    b = InstructMEPipeline.from_pretrained(work / "runs/instructme_debug/export")
    for k, v in b.unet.state_dict().items():
        torch.testing.assert_close(a.unet.state_dict()[k], v)
    raw = InstructMEPipeline.from_pretrained(export_checkpoint(ckpt, tmp_path / "raw", raw=True))
    assert any(not torch.equal(raw.unet.state_dict()[k], v) for k, v in b.unet.state_dict().items())


def test_shards_hold_aligned_normalised_items(run: tuple[Path, Any]) -> None:
    work, _ = run
    folder = work / "data/instructme_debug/train"
    index = read_index(folder)
    assert index["count"] == len(index["items"]) >= 10 and index["latent_dim"] == 16
    assert {item["task"] for item in index["items"]} >= {"add", "remove", "extract"}
    full = EditShards(folder, crop_frames=min(i["frames"] for i in index["items"]),
                      random_crop=False)
    z = torch.cat([torch.cat([full[i]["source"], full[i]["target"]], -1)
                   for i in range(len(full))], -1)
    # normalised with the folder's own statistics: zero mean, unit spread per channel
    assert z.mean(-1).abs().max() < 0.15 and (z.std(-1) - 1).abs().max() < 0.2
    item = full[0]
    assert item["chords"].sum(-1).eq(1).all() and item["text_mask"].any()
    crops = EditShards(folder, crop_frames=64, seed=3)
    again = EditShards(folder, crop_frames=64, seed=3)
    torch.testing.assert_close(crops[1]["target"], again[1]["target"])
    with pytest.raises(ConfigError):
        EditShards(folder, crop_frames=10_000)


def test_a_recipe_that_does_not_fit_the_data_is_refused(run: tuple[Path, Any]) -> None:
    from musigen.training.cli import main

    work, _ = run
    before, argv = os.getcwd(), sys.argv
    os.chdir(work)
    sys.argv = sys.argv[:1]
    try:
        with pytest.raises(ConfigError, match="latent"):
            main(["fit", "--config", str(RECIPE), "--model.init_args.unet.latent_channels", "8",
                  "--model.init_args.export_dir", "null"])
    finally:
        os.chdir(before)
        sys.argv = argv


def test_denoise_diagnostic_runs_on_the_exported_model(run: tuple[Path, Any], capsys: pytest.CaptureFixture) -> None:
    """`musigen eval edit-denoise` on the debug export and its own validation data."""
    import json

    from musigen.cli import main as musigen_main

    def main(argv: list[str]) -> int:
        return musigen_main(["eval", "edit-denoise", *argv])

    work, _ = run
    out = work / "denoise.json"
    code = main(["--model", str(work / "runs/instructme_debug/export"), "--data",
                 str(work / "data/instructme_debug/val"), "--items", "4", "--frames", "16",
                 "--timesteps", "500,990", "--out", str(out)])
    assert code == 0 and "copy the source (identity)" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert [r["timestep"] for r in report["rows"]] == [500, 990]
    assert all(v >= 0 for r in report["rows"] for v in r["full"].values())
    assert main(["--model", str(work / "missing"), "--data", str(work / "data/instructme_debug/val")]) == 2
    assert "error:" in capsys.readouterr().err
    # the same tool as a `musigen eval` subcommand, with the one-line error contract
    from musigen.cli import main as musigen_main

    assert musigen_main(["eval", "edit-denoise", "--model", str(work / "runs/instructme_debug/export"),
                         "--data", str(work / "data/instructme_debug/val"), "--timesteps", "5000",
                         "--frames", "16"]) == 2
    err = capsys.readouterr().err
    assert "timesteps must be integers in 0..999" in err and "Traceback" not in err


def test_init_from_starts_at_the_exported_weights_and_refuses_another_config(run: tuple[Path, Any]) -> None:
    """A fine-tune (e.g. recipes/instructme/demo_high_t.yaml) starts from the export, EMA too."""
    work, cli = run
    export = work / "runs/instructme_debug/export"
    config = cli.model.unet_config
    module = InstructMEModule(unet=config, init_from=str(export))
    shipped = InstructMEPipeline.from_pretrained(export).unet.state_dict()
    for k, v in module.unet.state_dict().items():
        torch.testing.assert_close(v, shipped[k])
        torch.testing.assert_close(module.ema.state_dict()[k], shipped[k])
    assert module.init_stats is not None
    torch.testing.assert_close(module.init_stats.mean, cli.datamodule.stats.mean)
    import dataclasses

    with pytest.raises(ConfigError, match="base_channels"):
        InstructMEModule(unet=dataclasses.replace(config, base_channels=config.base_channels * 2),
                         init_from=str(export))


def test_several_train_folders_train_together_and_refuse_a_build(run: tuple[Path, Any]) -> None:
    """Folders written by parallel pre-encoding jobs form one training set (the first's statistics)."""
    from musigen.encode.edit_build import ShardBuildConfig
    from musigen.training.instructme_datamodule import InstructMEDataModule

    work, _ = run
    folder = str(work / "data/instructme_debug/train")
    single = InstructMEDataModule(folder, crop_frames=32, batch_size=2)
    single.setup("fit")
    both = InstructMEDataModule([folder, folder], crop_frames=32, batch_size=2)
    both.prepare_data()  # nothing to build
    both.setup("fit")
    assert len(both.train_set) == 2 * len(single.train_set)
    torch.testing.assert_close(both.stats.mean, single.stats.mean)
    batch = next(iter(both.train_dataloader()))
    assert batch["source"].shape[-1] == 32
    with pytest.raises(ConfigError, match="build_train: null"):
        InstructMEDataModule([folder, folder], build_train=ShardBuildConfig(n=1)).prepare_data()
