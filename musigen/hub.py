"""The hub format: `config.json` plus `model.safetensors` in a folder, never pickle.

Every musigen model and pipeline derives from :class:`Pretrained` and saves through these
helpers, so a missing folder, a
truncated weights file or a config that does not fit the weights all give the same clear
:class:`CheckpointError` instead of a deep torch traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from musigen.atomic import atomic_path, write_json
from musigen.config_types import check_config_data
from musigen.errors import CheckpointError, ConfigError, shorten

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Set to 1 to let a name that is not a local folder be fetched from the Hugging Face hub.
ALLOW_HUB_ENV = "MUSIGEN_ALLOW_HUB"

C = TypeVar("C")


def resolve_dir(path_or_id: str | os.PathLike[str], kind: str = "model") -> Path:
    """Return an existing local folder, or raise a CheckpointError naming what is missing."""
    path = Path(path_or_id).expanduser()
    if not path.exists():
        raise CheckpointError(f"{kind} checkpoint folder not found: {path}")
    if not path.is_dir():
        raise CheckpointError(f"{kind} checkpoint must be a folder, got a file: {path}")
    return path


def hub_allowed() -> bool:
    """True when the user opted in to downloads (``MUSIGEN_ALLOW_HUB=1``); off by default,
    so a typo or a config naming a hub id never waits on network retries."""
    return os.environ.get(ALLOW_HUB_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def require_hub(source: str, what: str = "model") -> str:
    """`source` (a hub id) if downloads are allowed; else a one-line CheckpointError, at once,
    with no network attempt."""
    if not hub_allowed():
        raise CheckpointError(
            f"{what} {shorten(source)} is not a local folder and downloads are off: pass a "
            f"folder, or set {ALLOW_HUB_ENV}=1 to fetch it from the Hugging Face hub")
    return source


def inside(folder: str | os.PathLike[str], name: str | os.PathLike[str],
           what: str = "component") -> Path:
    """`folder / name`, refused unless it stays inside `folder`.

    Every path a config file names goes through here: absolute paths, `..` parts and
    symlinks that lead out of the folder are one-line CheckpointErrors, so a downloaded or
    hand-edited `pipeline.json` can only load files that ship inside its own folder.
    """
    root = Path(folder)
    text = os.fspath(name)
    rel = Path(text)
    if not text or rel.is_absolute() or text.startswith("~") or ".." in rel.parts:
        raise CheckpointError(f"{what} {shorten(text)} in {root} must be a relative path "
                              "inside that folder (no absolute paths, '~' or '..')")
    target = root / rel
    try:
        real_root = root.resolve()
        real = target.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise CheckpointError(f"{what} {shorten(text)} in {root} cannot be resolved "
                              "(a symlink loop)") from None
    if real != real_root and real_root not in real.parents:
        raise CheckpointError(f"{what} {shorten(text)} in {root} leads outside that "
                              "folder (a symlink); copy the files into it instead")
    return target


def save_config(directory: str | os.PathLike[str], config: Any, name: str = CONFIG_NAME) -> Path:
    """Write a dataclass (or plain dict) config as JSON, atomically."""
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return write_json(Path(directory) / name, data)


def load_config(directory: str | os.PathLike[str], cls: type[C], name: str = CONFIG_NAME) -> C:
    """Read a JSON config into dataclass `cls`; unknown or missing keys and values of the
    wrong type are errors (one line), not defaults, in nested sections too.

    `cls` (and a nested dataclass) may name keys that older checkpoints lack in
    ``OPTIONAL_KEYS``, and `cls` may convert an older layout in a classmethod
    ``upgrade_saved(data) -> data``.
    """
    path = inside(directory, name, "config file")
    if not path.is_file():
        raise CheckpointError(f"missing {name} in checkpoint folder {Path(directory)}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"corrupt {path}: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"corrupt {path}: expected a JSON object")
    upgrade = getattr(cls, "upgrade_saved", None)
    if upgrade is not None:  # an older on-disk layout of the same config, read as the new one
        data = upgrade(data)
    # Unknown keys, absent keys (but OPTIONAL_KEYS: added after a checkpoint shipped) and
    # values of the wrong type are errors at every level, not silent defaults.
    check_config_data(cls, data, str(path))
    try:
        return cls(**data)
    except TypeError as exc:
        raise CheckpointError(f"{path} does not fit {cls.__name__}: {exc}") from None
    except ConfigError as exc:  # the config's own checks (__post_init__)
        raise CheckpointError(f"{path}: {exc}") from None


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
    path = inside(directory, name, "weights file")
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


def place(obj: Any, device: str | torch.device | None, dtype: torch.dtype | None) -> Any:
    """`obj.to(device=..., dtype=...)` with only the arguments that were given."""
    kwargs: dict[str, Any] = {}
    if device is not None:
        kwargs["device"] = device
    if dtype is not None:
        kwargs["dtype"] = dtype
    return obj.to(**kwargs) if kwargs else obj


class Pretrained:
    """The one save/load API of every musigen model and pipeline (diffusers' ModelMixin, small).

    ``save_pretrained(dir) -> Path`` writes ``config.json`` (the dataclass ``self.config``)
    and ``model.safetensors`` (``self.state_dict()``); ``from_pretrained(name_or_dir, *,
    device=None, dtype=None)`` reads them back strictly, then moves/casts the result.
    Subclasses set :attr:`config_class` and :attr:`hub_kind`; parts whose folder is not
    this plain layout (Hugging Face folders, pipelines) override the hooks
    :meth:`_save_files`, :meth:`_resolve` and :meth:`_from_folder` instead of the API, so
    every caller sees the same names, keyword-only `device`/`dtype` and return values.
    """

    #: The dataclass written to / read from ``config.json``.
    config_class: ClassVar[type | None] = None
    #: What a missing-folder error calls this (e.g. "MusiCoT LM").
    hub_kind: ClassVar[str] = "model"
    #: Floating weights are cast to this on save unless `dtype` is given (fp16 for shipped parts).
    save_dtype: ClassVar[torch.dtype | None] = None

    # -- saving -------------------------------------------------------------------------
    def save_pretrained(
        self, directory: str | os.PathLike[str], *, dtype: torch.dtype | None = None
    ) -> Path:
        """Write this part into `directory` (created if needed) and return that folder."""
        path = Path(directory).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        self._save_files(path, dtype if dtype is not None else self.save_dtype)
        return path

    def _save_files(self, path: Path, dtype: torch.dtype | None) -> None:
        save_weights(path, self.hub_state_dict(), dtype=dtype)
        save_config(path, self.config)  # type: ignore[attr-defined]

    def hub_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors saved as weights (the module's state dict unless overridden)."""
        return self.state_dict()  # type: ignore[attr-defined]

    # -- loading ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls: type[P],
        name_or_dir: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> P:
        """Load what :meth:`save_pretrained` wrote; anything missing or mismatched is a
        one-line :class:`CheckpointError`.  `device`/`dtype` move and cast the result."""
        return cls._from_folder(cls._resolve(name_or_dir), device=device, dtype=dtype, **kwargs)

    @classmethod
    def _resolve(cls, name_or_dir: str | os.PathLike[str]) -> Any:
        return resolve_dir(name_or_dir, cls.hub_kind)

    @classmethod
    def _from_folder(
        cls: type[P],
        path: Path,
        *,
        device: str | torch.device | None,
        dtype: torch.dtype | None,
        **kwargs: Any,
    ) -> P:
        if cls.config_class is None:
            raise TypeError(f"{cls.__name__} sets no config_class")
        model = cls(load_config(path, cls.config_class), **kwargs)  # type: ignore[call-arg]
        load_state_into(model, load_weights(path), str(path))  # type: ignore[arg-type]
        return place(model, device, dtype).eval()


P = TypeVar("P", bound=Pretrained)
