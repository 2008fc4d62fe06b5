"""The hub format: `config.json` plus `model.safetensors` in a folder, never pickle.

Every musigen model and pipeline saves through these helpers, so a missing folder, a
truncated weights file or a config that does not fit the weights all give the same clear
:class:`CheckpointError` instead of a deep torch traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from musigen.atomic import atomic_path, write_json
from musigen.errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

C = TypeVar("C")


def resolve_dir(path_or_id: str | os.PathLike[str], kind: str = "model") -> Path:
    """Return an existing local folder, or raise a CheckpointError naming what is missing."""
    path = Path(path_or_id).expanduser()
    if not path.exists():
        raise CheckpointError(f"{kind} checkpoint folder not found: {path}")
    if not path.is_dir():
        raise CheckpointError(f"{kind} checkpoint must be a folder, got a file: {path}")
    return path


def save_config(directory: str | os.PathLike[str], config: Any, name: str = CONFIG_NAME) -> Path:
    """Write a dataclass (or plain dict) config as JSON, atomically."""
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return write_json(Path(directory) / name, data)


def load_config(directory: str | os.PathLike[str], cls: type[C], name: str = CONFIG_NAME) -> C:
    """Read a JSON config into dataclass `cls`; unknown or missing keys are errors, not defaults."""
    path = Path(directory) / name
    if not path.is_file():
        raise CheckpointError(f"missing {name} in checkpoint folder {Path(directory)}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"corrupt {path}: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"corrupt {path}: expected a JSON object")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise CheckpointError(f"{path} has keys that {cls.__name__} does not know: {unknown}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise CheckpointError(f"{path} does not fit {cls.__name__}: {exc}") from None


def save_weights(
    directory: str | os.PathLike[str],
    state_dict: dict[str, torch.Tensor],
    name: str = WEIGHTS_NAME,
    dtype: torch.dtype | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Save a state dict as safetensors, optionally cast (e.g. fp16 for shipped demos)."""
    tensors = {}
    for key, value in state_dict.items():
        t = value.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[key] = t.contiguous()
    target = Path(directory) / name
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return target


def load_weights(directory: str | os.PathLike[str], name: str = WEIGHTS_NAME) -> dict[str, torch.Tensor]:
    """Load safetensors weights as float32 tensors, with a clear error for missing/corrupt files."""
    path = Path(directory) / name
    if not path.is_file():
        raise CheckpointError(f"missing {name} in checkpoint folder {Path(directory)}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"corrupt or truncated weights file {path}: {exc}") from None
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def load_state_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load weights strictly; a missing/unexpected key or a shape mismatch is a CheckpointError."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"weights in {source} do not match the config: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:3]})"
        )
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise CheckpointError(
                f"weights in {source} do not match the config: {key} has shape "
                f"{tuple(value.shape)}, the model expects {tuple(own[key].shape)}"
            )
    module.load_state_dict(state, strict=True)


def read_training_checkpoint(ckpt_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a Lightning `.ckpt` safely (`weights_only=True`), with one clear error for bad files.

    Every exporter goes through this so that a missing or truncated checkpoint never ends in a
    deep torch traceback and nothing is ever unpickled.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"training checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(
            f"cannot read training checkpoint {path}: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint")
    return ckpt
