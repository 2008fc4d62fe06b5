"""Training configs for `musigen train-demos`: a recipe, with the run's paths, device and budget.

The recipe keeps the model's hyperparameters; this module only points its data and outputs
into `--out`, swaps the callbacks for the budgeted ones and sets the device. The result is a
plain YAML file in `<out>/configs/`, so any stage can be rerun by hand with
`musigen train fit --config <out>/configs/<stage>.yaml`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from musigen.atomic import write_text
from musigen.errors import ConfigError


def recipes_root() -> Path:
    """The repository's recipes/ folder (train-demos needs a source checkout)."""
    root = Path(__file__).resolve().parents[3] / "recipes"
    if not root.is_dir():
        raise ConfigError("train-demos needs the recipes/ folder of a musigen source checkout "
                          f"(looked in {root}); clone the repository and install it with pip install -e .")
    return root


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Later recipes win key by key; lists are replaced whole (as Lightning's CLI does)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_recipes(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    root = recipes_root()
    merged: dict[str, Any] = {}
    for name in names:
        path = root / name
        if not path.is_file():
            raise ConfigError(f"recipe {path} not found")
        merged = deep_merge(merged, yaml.safe_load(path.read_text()) or {})
    return merged


def device_settings(device: str) -> dict[str, Any]:
    """Trainer settings per device: bf16 autocast on CUDA, one thread on a shared CPU."""
    if device == "cuda":
        return {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"}
    return {"accelerator": "cpu", "devices": 1, "precision": "32-true"}


def budgeted(recipe: dict[str, Any], stage_dir: Path, device: str, budget_s: float,
             checkpoint_every: int, milestone: tuple[float, Path] | None = None,
             stop_at_s: float | None = None, ledger_every_s: float = 15.0) -> dict[str, Any]:
    """`recipe` with its outputs in `stage_dir`, the device's settings and a StageBudget."""
    cfg = copy.deepcopy(recipe)
    trainer = cfg.setdefault("trainer", {})
    trainer.update(device_settings(device))
    trainer.pop("max_time", None)
    trainer["max_steps"] = 10_000_000  # the seconds end the stage, not a step count
    trainer["default_root_dir"] = str(stage_dir)
    trainer["enable_checkpointing"] = True
    trainer["logger"] = {"class_path": "lightning.pytorch.loggers.CSVLogger",
                         "init_args": {"save_dir": str(stage_dir), "name": "logs"}}
    ckpt_dir = stage_dir / "checkpoints"
    budget_args: dict[str, Any] = {"budget_s": float(budget_s), "ledger": str(stage_dir / "ledger.json"),
                                   "checkpoint": str(ckpt_dir / "last.ckpt"),
                                   "write_every_s": float(ledger_every_s)}
    if stop_at_s is not None:
        budget_args["stop_at_s"] = float(stop_at_s)
    if milestone is not None:
        budget_args.update(milestone_s=float(milestone[0]), milestone_dir=str(milestone[1]))
    trainer["callbacks"] = [
        {"class_path": "musigen.training.cli.LogPrinter", "init_args": {"every_n_steps": 25}},
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"dirpath": str(ckpt_dir), "filename": "step-{step:07d}",
                       "every_n_train_steps": int(checkpoint_every), "save_last": True,
                       "save_top_k": 1, "monitor": "step", "mode": "max",
                       "enable_version_counter": False}},
        {"class_path": "musigen.training.stage_budget.StageBudget", "init_args": budget_args},
    ]
    if device == "cuda":
        cfg["num_threads"] = 0
    return cfg


def set_init_args(cfg: dict[str, Any], section: str, **values: Any) -> None:
    """Set `cfg[section]['init_args'][k] = v`, failing loudly if the recipe has no such section."""
    part = cfg.get(section)
    if not isinstance(part, dict) or "init_args" not in part:
        raise ConfigError(f"recipe has no {section}.init_args to set {sorted(values)} in")
    part["init_args"].update(values)


def write_config(cfg: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, yaml.safe_dump(cfg, sort_keys=False))
