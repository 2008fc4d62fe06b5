"""Codes files: what `musigen codec encode` writes and `musigen codec decode` reads.

One clip's codes `[K, T]` as int16 safetensors, with the metadata decoding needs: which
codec made them, its rate and code range, and the original length in samples (the codec
pads to whole frames; decoding trims back).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from musigen.codec import Codec
from musigen.errors import DataError

CODES_FORMAT = "musigen-codes-v1"


def save_codes(path: str | os.PathLike[str], codes: torch.Tensor, codec: Codec, num_samples: int,
               model_name: str) -> Path:
    """Write codes `[K, T]` (int16) with what decoding needs (model, rate, length) as metadata."""
    from safetensors.torch import save_file

    from musigen.atomic import atomic_path

    if codes.ndim == 3:
        if codes.shape[0] != 1:
            raise DataError("save_codes writes one clip at a time; got a batch")
        codes = codes[0]
    dtype = torch.int16 if codec.cardinality <= 2**15 else torch.int32
    meta = {"format": CODES_FORMAT, "model": str(model_name), "sample_rate": str(codec.sample_rate),
            "frame_rate": str(codec.frame_rate), "num_samples": str(int(num_samples)),
            "cardinality": str(codec.cardinality), "num_codebooks": str(int(codes.shape[0]))}
    target = Path(path)
    with atomic_path(target) as tmp:
        save_file({"codes": codes.detach().cpu().to(dtype).contiguous()}, str(tmp), metadata=meta)
    return target


def load_codes(path: str | os.PathLike[str]) -> tuple[torch.Tensor, dict[str, str]]:
    """Read a file written by :func:`save_codes`: codes `LongTensor [K, T]` and its metadata."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise DataError(f"codes file not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
            if "codes" not in f.keys():
                raise DataError(f"{p} holds no 'codes' tensor")
            codes = f.get_tensor("codes")
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{p} is not a readable codes file: {str(exc).splitlines()[0]}") from None
    if meta.get("format") != CODES_FORMAT:
        raise DataError(f"{p} is not a musigen codes file (format={meta.get('format')!r})")
    return codes.long(), meta


def encode_file(audio_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                model: str = "demo") -> tuple[Path, torch.Tensor]:
    """Audio file -> codes file (audio is resampled and down-mixed for the codec)."""
    from musigen.audio import load_audio

    codec = Codec.from_pretrained(model)
    wav, sr = load_audio(audio_path, sample_rate=codec.sample_rate)
    codes = codec.encode(wav, sample_rate=sr)
    return save_codes(out_path, codes, codec, wav.shape[-1], model), codes[0]


def decode_file(codes_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                model: str | None = None) -> Path:
    """Codes file -> audio file at the codec's rate, trimmed to the encoded length.

    `model` defaults to the codec recorded in the file; a codec whose codebooks do not
    fit the codes is refused.
    """
    from musigen.audio import save_audio

    codes, meta = load_codes(codes_path)
    name = model or meta.get("model") or "demo"
    codec = Codec.from_pretrained(name)
    if int(meta.get("cardinality", codec.cardinality)) != codec.cardinality:
        raise DataError(f"{codes_path} was written by a codec with {meta['cardinality']} codes per codebook; "
                        f"{name} has {codec.cardinality}")
    num_samples = int(meta["num_samples"]) if "num_samples" in meta else None
    wav = codec.decode(codes, length=num_samples)[0].cpu().numpy()
    provenance = {"command": "codec decode", "codes": str(codes_path), "model": str(name),
                  "num_codebooks": int(codes.shape[0])}
    return save_audio(out_path, wav, codec.sample_rate, provenance=provenance)
