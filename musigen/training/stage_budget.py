"""A training stage that runs for a share of wall time, survives kills, and cools down at the end.

`musigen train-demos` gives each stage a number of seconds, not steps: on a CPU and on a GPU
the same command then spends the same time and trains as far as the device allows. A stage
may be killed at any moment (``kill -9``, a session that ends) and resumed later from its
last checkpoint, so the time already spent lives in a small ledger file beside the
checkpoints, written atomically every few seconds of training.

The learning rate follows the module's own schedule (warm-up, then nearly constant when
`max_steps` is large), times a linear cool-down over the last `cooldown` fraction of the
stage's seconds, down to `min_lr_ratio`. A step-count schedule cannot do that: the number of
steps a budget buys is not known in advance.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L

from musigen.atomic import write_json
from musigen.errors import ConfigError


@dataclass
class Ledger:
    """What a stage has spent so far; `done` once its seconds are used up."""

    spent_s: float = 0.0
    steps: int = 0
    done: bool = False

    @classmethod
    def read(cls, path: str | Path) -> Ledger:
        path = Path(path)
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text())
            return cls(spent_s=float(raw["spent_s"]), steps=int(raw["steps"]), done=bool(raw["done"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a stage ledger ({exc})") from exc

    def write(self, path: str | Path) -> None:
        write_json(Path(path), asdict(self))


def cooldown_factor(fraction_spent: float, cooldown: float, min_ratio: float) -> float:
    """1 until the last `cooldown` of the stage, then linearly down to `min_ratio`."""
    if cooldown <= 0 or fraction_spent <= 1 - cooldown:
        return 1.0
    t = min(1.0, (fraction_spent - (1 - cooldown)) / cooldown)
    return 1.0 - t * (1.0 - min_ratio)


class StageBudget(L.Callback):
    """Stops training when the stage's `budget_s` (or this slice's `stop_at_s`) is spent; keeps
    the ledger; saves a checkpoint on exit."""

    def __init__(self, budget_s: float, ledger: str, checkpoint: str, cooldown: float = 0.2,
                 min_lr_ratio: float = 0.1, write_every_s: float = 15.0,
                 milestone_s: float | None = None, milestone_dir: str | None = None,
                 stop_at_s: float | None = None) -> None:
        if budget_s <= 0 or not 0 <= cooldown < 1 or not 0 <= min_lr_ratio <= 1:
            raise ConfigError("budget_s must be > 0, cooldown in [0, 1), min_lr_ratio in [0, 1]")
        self.budget_s, self.ledger_path, self.checkpoint = float(budget_s), Path(ledger), Path(checkpoint)
        self.cooldown, self.min_lr_ratio, self.write_every_s = cooldown, min_lr_ratio, write_every_s
        self._start = self._last_write = 0.0
        self._spent0 = 0.0
        # where this process stops: the budget, or earlier when stages take turns in slices
        self.stop_at_s = float(budget_s if stop_at_s is None else min(stop_at_s, budget_s))
        # a snapshot export after `milestone_s` seconds: an ablation trained for that long is
        # compared with it at the same budget
        self.milestone_s = milestone_s
        self.milestone_dir = Path(milestone_dir) if milestone_dir else None

    def spent(self) -> float:
        return self._spent0 + (time.monotonic() - self._start)

    def _write(self, trainer: L.Trainer, done: bool) -> None:
        Ledger(spent_s=self.spent(), steps=int(trainer.global_step), done=done).write(self.ledger_path)
        self._last_write = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._spent0 = Ledger.read(self.ledger_path).spent_s
        self._start = self._last_write = time.monotonic()
        if self._spent0 >= self.stop_at_s:
            trainer.should_stop = True

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        factor = cooldown_factor(self.spent() / self.budget_s, self.cooldown, self.min_lr_ratio)
        if factor < 1.0:
            for opt in trainer.optimizers:
                for group in opt.param_groups:
                    group["lr"] = group["lr"] * factor  # the scheduler resets it after the step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if (self.milestone_s is not None and self.milestone_dir is not None
                and self.spent() >= self.milestone_s and not self.milestone_dir.exists()
                and trainer.is_global_zero and hasattr(pl_module, "export")):
            pl_module.export(str(self.milestone_dir))
            print(f"[budget] milestone export after {self.spent():.0f} s, step {trainer.global_step}: "
                  f"{self.milestone_dir}", flush=True)
        # wall hours beside the losses in the logger's metrics, for loss-against-compute curves
        pl_module.log("budget/spent_h", self.spent() / 3600.0, on_step=True, on_epoch=False)
        over = self.spent() >= self.stop_at_s
        if over:
            trainer.should_stop = True
        if over or time.monotonic() - self._last_write >= self.write_every_s:
            self._write(trainer, done=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the checkpoint first, then the ledger: a kill in between only repeats a few steps
        if trainer.global_step > 0:
            trainer.save_checkpoint(str(self.checkpoint), weights_only=False)  # full: resumable
        finished = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        self._write(trainer, done=finished or self.spent() >= self.budget_s)
