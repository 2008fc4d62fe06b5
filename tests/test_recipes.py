"""The `base` recipes stay valid: the training CLI parses each one (no fitting, no GPU).

Parsing checks every class path and every init argument against the classes' signatures,
so a renamed argument or module breaks this test rather than a cluster job.  The parts that
are cheap to build without data or a GPU (strategy, callbacks, logger, streaming data
module, U-Net config) are instantiated too, and the scale features the recipes promise are
checked: bf16, checkpoints every N steps, lr and throughput logging, FSDP for the LM and
U-Net with gradient checkpointing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
from jsonargparse import ArgumentParser, Namespace

from musigen.training.cli import MusigenCLI

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
BASE = sorted(p.parent.name for p in RECIPES.glob("*/base.yaml"))


class ParseOnlyCLI(MusigenCLI):
    """The training CLI up to a validated config; nothing is built."""

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass


def parse(recipe: Path) -> Namespace:
    cli = ParseOnlyCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True,
                       subclass_mode_data=True, args=["--config", str(recipe)], run=False)
    return cli.config


def parse_stack(*recipes: Path) -> Namespace:
    args = [arg for recipe in recipes for arg in ("--config", str(recipe))]
    cli = ParseOnlyCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True,
                       subclass_mode_data=True, args=args, run=False)
    return cli.config


#: Overlays (ablations, fine-tunes) that README commands stack on a model's demo.yaml.
OVERLAYS = sorted(str(p.relative_to(RECIPES)) for p in RECIPES.glob("*/demo_*.yaml"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_parses_on_top_of_its_demo_recipe(overlay: str) -> None:
    """The ablation and fine-tune recipes name real arguments (nothing is built or run)."""
    path = RECIPES / overlay
    cfg = parse_stack(path.parent / "demo.yaml", path)
    assert cfg.model.class_path.startswith("musigen.") and cfg.trainer.max_steps > 0


def test_plan_dropout_recipes_set_it() -> None:
    for name in ("demo_plan.yaml", "demo_plan_more.yaml"):
        cfg = parse_stack(RECIPES / "musicot" / "demo.yaml", RECIPES / "musicot" / name)
        assert cfg.model.init_args.plan_dropout == 0.2 and cfg.model.init_args.init_from


def build(value: Any, base: type) -> Any:
    """Instantiate one `class_path`/`init_args` entry through jsonargparse, as the CLI would."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--obj", type=base)
    data = value.as_dict() if isinstance(value, Namespace) else value
    return parser.instantiate(parser.parse_object({"obj": data})).obj


def test_every_model_has_a_base_recipe() -> None:
    assert {"codec", "clap", "musicot", "instructme"} <= set(BASE)


@pytest.mark.parametrize("name", BASE)
def test_base_recipe_parses_and_its_parts_build(name: str) -> None:
    from lightning.pytorch.callbacks import (
        Callback,
        LearningRateMonitor,
        ModelCheckpoint,
        ThroughputMonitor,
    )
    from lightning.pytorch.loggers import Logger

    cfg = parse(RECIPES / name / "base.yaml")
    trainer = cfg.trainer
    assert trainer.precision == "bf16-mixed"
    assert trainer.accelerator == "gpu"
    callbacks = [build(c, Callback) for c in trainer.callbacks or []]
    if trainer.logger not in (None, False, True):
        assert isinstance(build(trainer.logger, Logger), Logger)
    if name == "judge":  # not part of the scale-out set
        return
    checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    assert checkpoints and all(c._every_n_train_steps > 0 and c.save_last for c in checkpoints)
    assert any(isinstance(c, LearningRateMonitor) for c in callbacks)
    assert any(isinstance(c, ThroughputMonitor) for c in callbacks)


@pytest.mark.parametrize("name, unit", [("musicot", "MusiCoTLM"), ("instructme", "ChunkTransformer")])
def test_lm_and_unet_recipes_use_fsdp_and_gradient_checkpointing(name: str, unit: str) -> None:
    from lightning.pytorch.strategies import FSDPStrategy, Strategy

    cfg = parse(RECIPES / name / "base.yaml")
    strategy = build(cfg.trainer.strategy, Strategy)
    assert isinstance(strategy, FSDPStrategy)
    policy = strategy.kwargs["auto_wrap_policy"]
    assert unit in {cls.__name__ for cls in policy._module_classes}
    assert strategy._state_dict_type == "full"  # exporters and --ckpt_path read one file
    init = cfg.model.init_args
    assert init.gradient_checkpointing is True and init.torch_compile is False
    assert init.export_dir is None  # weights are sharded during fit: export the checkpoint
    data = cfg.data
    assert data.class_path.endswith("StreamingShardDataModule") and data.init_args.task == name
    dm = build(data, L.LightningDataModule)  # validates its arguments; reads nothing yet
    assert dm.batch_size == data.init_args.batch_size


def test_instructme_base_unet_config_is_valid() -> None:
    from musigen.instructme.unet import InstructMEUNetConfig

    cfg = parse(RECIPES / "instructme" / "base.yaml")
    unet = InstructMEUNetConfig(**cfg.model.init_args.unet.as_dict())
    assert unet.latent_channels == 128 and unet.base_channels == 256


def test_codec_base_keeps_accumulation_off() -> None:
    """The codec module steps its optimisers by hand; Lightning refuses accumulation then."""
    cfg = parse(RECIPES / "codec" / "base.yaml")
    assert cfg.trainer.accumulate_grad_batches == 1


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # LightningCLI warns about pytest's own


def _grads(module: L.LightningModule, loss_fn: Any) -> dict[str, Any]:
    import torch

    module.train()
    torch.manual_seed(1)
    module.zero_grad()
    loss_fn(module).backward()
    return {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_changes_neither_gradients_nor_keys(tmp_path: Path) -> None:
    import torch
    from test_ddp import write_fake_shards

    from musigen.instructme.unet import InstructMEUNetConfig
    from musigen.training.instructme_module import InstructMEModule
    from musigen.training.musicot_module import MusiCoTModule

    data = str(write_fake_shards(tmp_path / "data", pieces=2))
    g = torch.Generator().manual_seed(0)
    batch = {"codes": torch.randint(0, 32, (2, 2, 40), generator=g),
             "plan": torch.randint(0, 16, (2, 4), generator=g), "ref": torch.full((2, 1), -1),
             "text_states": torch.randn(2, 5, 16, generator=g),
             "text_mask": torch.ones(2, 5, dtype=torch.bool)}
    plain, ckpt = (MusiCoTModule(data, max_seq_len=128, gradient_checkpointing=flag)
                   for flag in (False, True))
    ckpt.load_state_dict(plain.state_dict())
    assert list(plain.state_dict()) == list(ckpt.state_dict())
    a, b = (_grads(m, lambda m: m._loss(batch, train=True).loss) for m in (plain, ckpt))
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)

    unet = InstructMEUNetConfig(latent_channels=8, text_dim=16, chord_dim=25, base_channels=16,
                                channel_mults=(1, 2), attention_levels=(1,), heads=2, chunk_size=8)
    edit = {"target": torch.randn(2, 8, 32, generator=g), "source": torch.randn(2, 8, 32, generator=g),
            "text_states": torch.randn(2, 5, 16, generator=g),
            "text_mask": torch.ones(2, 5, dtype=torch.bool),
            "chords": torch.zeros(2, 32, 25)}
    plain, ckpt = (InstructMEModule(unet=unet, gradient_checkpointing=flag) for flag in (False, True))
    ckpt.load_state_dict(plain.state_dict())
    assert list(plain.state_dict()) == list(ckpt.state_dict())

    def edit_loss(m: Any) -> Any:
        return m.diffusion.training_loss(m.unet, edit["target"], m.conditions(edit))

    a, b = (_grads(m, edit_loss) for m in (plain, ckpt))
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def test_slurm_overlay_parses_and_requeues() -> None:
    """recipes/launch/slurm.yaml on top of a base recipe gives SLURMEnvironment(auto_requeue)."""
    import signal

    from lightning.pytorch.plugins.environments import SLURMEnvironment

    cli = ParseOnlyCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True,
                       subclass_mode_data=True, run=False,
                       args=["--config", str(RECIPES / "musicot" / "base.yaml"),
                             "--config", str(RECIPES / "launch" / "slurm.yaml")])
    env = build(cli.config.trainer.plugins[0], SLURMEnvironment)
    assert env.auto_requeue and env.requeue_signal == signal.SIGUSR1


@pytest.mark.parametrize("script", ["torchrun_multinode.sh", "slurm.sbatch"])
def test_launch_scripts_are_valid_bash(script: str) -> None:
    import subprocess

    path = RECIPES / "launch" / script
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    assert "musigen train fit" in path.read_text()
