"""The training entry point: Lightning's CLI over any musigen LightningModule and DataModule.

Recipes name the model and the data by `class_path`, so one entry serves the codec, CLAP,
the MusiCoT LM and the InstructME U-Net alike:

    musigen train fit --config recipes/codec/demo.yaml
    musigen train fit --config recipes/codec/demo.yaml --ckpt_path last   # resume

(`musigen train fit|validate` hands its arguments to :func:`main` unchanged; `python -m
musigen.training` is the same entry for contributors and for launchers that need a module.)

Multi-GPU and multi-node runs only change `trainer.strategy/devices/num_nodes` (DDP/FSDP
under torchrun or SLURM, see recipes/launch/); there is no distribution layer of our own.

Resuming checks the checkpoint first (`checkpoint_io.py`): a missing or truncated file is a
one-line CheckpointError, and a bad argument or recipe is a one-line ConfigError (not
jsonargparse's usage text).  From the command line either prints one line and exits with
status 2; `main(args)` called from Python raises it instead.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from argparse import ArgumentError
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningCLI

from musigen.errors import ConfigError, MusigenError


class LogPrinter(L.Callback):
    """Prints one line of logged training metrics every `every_n_steps` (for nohup logs)."""

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every = max(1, every_n_steps)
        self._t0: float | None = None
        self._step0 = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0, self._step0 = time.time(), trainer.global_step
        print(f"[train] start at step {trainer.global_step}", flush=True)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: object,
                           batch: object, batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every or self._t0 is None:
            return
        rate = (step - self._step0) / max(1e-9, time.time() - self._t0)
        metrics = " ".join(f"{k.split('/')[-1]}={float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items())
                           if k.startswith("train/"))
        print(f"[train] step={step} epoch={trainer.current_epoch} {rate:.2f} steps/s {metrics}", flush=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        vals = " ".join(f"{k}={float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items())
                        if k.startswith("val/"))
        if vals:
            print(f"[val] step={trainer.global_step} {vals}", flush=True)


class MusigenCLI(LightningCLI):
    """LightningCLI with musigen's conventions (thread count, float32 matmul precision)."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 - jsonargparse parser
        parser.add_argument("--num_threads", type=int, default=0,
                            help="torch intra-op threads (0 = torch's default); 1 when sharing a small CPU")

    def before_instantiate_classes(self) -> None:
        import torch

        cfg = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        threads = int(cfg.get("num_threads", 0) or 0)
        if threads > 0:
            torch.set_num_threads(threads)
        torch.set_float32_matmul_precision("high")

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """Lightning's trainer, reading checkpoints through SafeCheckpointIO unless a recipe
        chose its own CheckpointIO."""
        from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

        from musigen.training.checkpoint_io import SafeCheckpointIO

        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = SafeCheckpointIO()
        return trainer

    def _parse_ckpt_path(self) -> None:
        """Check an explicit `--ckpt_path` file first and report a bad one in one line.

        LightningCLI would also re-apply the hyper-parameters stored in the checkpoint to the
        parsed config here.  We skip that: the recipe plus its overrides is the run's config
        (that is what lets a run resume with a changed loss weight or data path), and the
        modules store plain dicts that LightningCLI cannot parse back into their dataclass
        arguments.  Weights, optimiser, loops and data position still come from the file.
        """
        from musigen.training.checkpoint_io import SPECIAL_PATHS, check_checkpoint_file

        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if ckpt_path and str(ckpt_path) not in SPECIAL_PATHS:
            check_checkpoint_file(ckpt_path)

    def before_fit(self) -> None:
        """Check the checkpoint to resume from before any model or process group is set up."""
        from lightning.pytorch.trainer.states import TrainerFn

        from musigen.training.checkpoint_io import SPECIAL_PATHS, check_checkpoint_file

        ckpt_path = self.config.get(self.subcommand, {}).get("ckpt_path")
        if ckpt_path is None:
            return
        if str(ckpt_path) in SPECIAL_PATHS:
            # Lightning's own resolution of "last"/"hpc" (the file it is about to load).
            connector = getattr(self.trainer, "_checkpoint_connector", None)
            resolve = getattr(connector, "_parse_ckpt_path", None)
            if resolve is None:
                return
            ckpt_path = resolve(TrainerFn.FITTING, ckpt_path, model_provided=True, model_connected=False)
            if ckpt_path is None:
                return
        check_checkpoint_file(ckpt_path)


def _one_line(exc: ArgumentError) -> ConfigError:
    """jsonargparse's message (possibly several indented lines) as one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return ConfigError("; ".join(lines) or "bad arguments")


def main(args: Sequence[str] | None = None, prog: str | None = None) -> MusigenCLI:
    """Run the CLI (`args` defaults to the command line, where errors print one line);
    `prog` names the command in usage and help (`musigen train`)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # `musigen train fit ...` passes its own arguments; sys.argv holds the console script's
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    # parse errors raise (ArgumentError) instead of printing the whole usage and exiting
    raising = {"exit_on_error": False}
    parser_kwargs: dict[str, Any] = {**raising,
                                     **{name: raising for name in LightningCLI.subcommands()}}
    if prog is not None:
        parser_kwargs["prog"] = prog
    try:
        try:
            return MusigenCLI(
                L.LightningModule,
                L.LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
                parser_kwargs=parser_kwargs,
                args=list(args) if args is not None else None,
            )
        except ArgumentError as exc:
            raise _one_line(exc) from None
    except MusigenError as exc:
        if args is not None:
            raise
        print(f"musigen.training: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
