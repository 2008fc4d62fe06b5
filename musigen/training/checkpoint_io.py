"""Resuming from a Lightning checkpoint with one clear error for a missing or truncated file.

A run killed while a checkpoint was being copied, or a file cut short by a full disk, would
otherwise end in a `PytorchStreamReader failed reading zip archive` traceback from deep
inside `torch.load`.  Two guards turn that into a one-line :class:`CheckpointError`:

- :func:`check_checkpoint_file`: a cheap test made before `fit` for the resolved
  `--ckpt_path` (a torch checkpoint is a zip archive whose directory sits at the very end,
  so a truncated file is caught without reading or unpickling anything);
- :class:`SafeCheckpointIO`: Lightning's own `TorchCheckpointIO` whose `load_checkpoint`
  runs that check and reports any loading failure the same way, with `weights_only=True`
  unless the caller asks otherwise (the house rule: never unpickle).

The training CLI installs both; saving is Lightning's (already write-then-rename).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from musigen.errors import CheckpointError

#: `--ckpt_path` values that Lightning resolves itself.
SPECIAL_PATHS = ("last", "best", "hpc", "registry")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def check_checkpoint_file(path: str | os.PathLike[str]) -> None:
    """Raise CheckpointError unless `path` looks like a complete local torch checkpoint.

    A folder is a sharded (FSDP / distributed) checkpoint and is left to its loader; remote
    URLs are not checked here.
    """
    text = str(path)
    if not _is_local(text):
        return
    p = Path(text.removeprefix("file://"))
    if not p.exists():
        raise CheckpointError(f"training checkpoint not found: {p}")
    if p.is_dir():
        return
    if p.stat().st_size == 0:
        raise CheckpointError(f"training checkpoint {p} is empty (0 bytes); resume from an earlier one")
    try:
        with zipfile.ZipFile(p) as archive:
            if not archive.namelist():
                raise CheckpointError(f"training checkpoint {p} is an empty archive")
    except zipfile.BadZipFile:
        raise CheckpointError(
            f"training checkpoint {p} is truncated or corrupt ({p.stat().st_size} bytes, no "
            "complete archive directory); resume from an earlier checkpoint"
        ) from None


class SafeCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose loading failures are one-line CheckpointErrors."""

    def load_checkpoint(  # type: ignore[override]
        self,
        path: Any,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        check_checkpoint_file(path)
        try:
            checkpoint = super().load_checkpoint(
                path, map_location=map_location, weights_only=True if weights_only is None else weights_only
            )
        except FileNotFoundError:
            raise CheckpointError(f"training checkpoint not found: {path}") from None
        except Exception as exc:  # noqa: BLE001 - any failure to read means an unusable file
            raise CheckpointError(f"cannot read training checkpoint {path}: {_first_line(exc)}") from None
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise CheckpointError(f"{path} is not a Lightning training checkpoint (no state_dict)")
        return checkpoint
