"""Codes files: what `musigen codec encode` writes and `musigen codec decode` reads.

One clip's codes `[K, T]` as int16 safetensors, with the metadata decoding needs: which
codec made them, its rate and code range, and the original length in samples (the codec
pads to whole frames; decoding trims back).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from musigen.checkpoints import candidates
from musigen.codec import DEMO_CODEC_NAME, Codec
from musigen.errors import DataError, MusigenError, shorten

CODES_FORMAT = "musigen-codes-v1"
#: Most codebooks a codes file may declare (EnCodec uses at most 32).
MAX_CODEBOOKS = 64
_CODE_DTYPE_BYTES = {"I16": 2, "I32": 4, "I64": 8, "U8": 1, "I8": 1, "U16": 2}


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


def _meta_number(meta: dict[str, str], key: str, kind: type, path: Path) -> float | int | None:
    """`meta[key]` parsed as `kind` (None when absent); a malformed value is a DataError."""
    if key not in meta:
        return None
    try:
        value = kind(meta[key])
    except (TypeError, ValueError):
        raise DataError(f"{path}: header field {key}={meta[key]!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise DataError(f"{path}: header field {key}={meta[key]!r} must be positive")
    return value


def check_codes_header(path: Path, shape: tuple[int, ...], meta: dict[str, str]) -> None:
    """Refuse a codes file whose declared lengths disagree with its tensor or exceed the limits.

    Runs before the codes are read and before anything is decoded, so a small file whose
    header claims hours of audio cannot make `codec decode` allocate gigabytes.
    """
    from musigen.audio import check_sample_rate
    from musigen.limits import MAX_DECODE_S

    if len(shape) != 2 or min(shape) < 1:
        raise DataError(f"{path}: codes must be [codebooks, frames], got shape {list(shape)}")
    k, frames = shape
    if k > MAX_CODEBOOKS:
        raise DataError(f"{path}: {k} codebooks declared; at most {MAX_CODEBOOKS} are read")
    declared_k = _meta_number(meta, "num_codebooks", int, path)
    if declared_k is not None and declared_k != k:
        raise DataError(f"{path}: header says {declared_k} codebooks, the tensor has {k}")
    rate = _meta_number(meta, "sample_rate", int, path)
    frame_rate = _meta_number(meta, "frame_rate", float, path)
    if rate is None or frame_rate is None:
        raise DataError(f"{path}: header lacks sample_rate or frame_rate")
    try:
        check_sample_rate(rate)
    except MusigenError as exc:
        raise DataError(f"{path}: {exc}") from None
    if frame_rate > rate:
        raise DataError(f"{path}: frame rate {frame_rate:g} is above the sample rate {rate}")
    if frames / frame_rate > MAX_DECODE_S:
        raise DataError(f"{path} holds {frames / frame_rate / 60:.1f} min of codes; at most "
                        f"{MAX_DECODE_S / 60:g} min are decoded")
    num_samples = _meta_number(meta, "num_samples", int, path)
    most = math.ceil(frames * rate / frame_rate)
    if num_samples is not None and num_samples > most:
        raise DataError(f"{path}: header claims {num_samples} samples, but {frames} frames "
                        f"decode to at most {most}")


def read_codes_header(path: str | os.PathLike[str]) -> tuple[tuple[int, ...], dict[str, str]]:
    """(shape, metadata) of a codes file, checked, without reading the codes."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise DataError(f"codes file not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
            if meta.get("format") != CODES_FORMAT:
                raise DataError(f"{p} is not a musigen codes file (format={meta.get('format')!r})")
            if "codes" not in f.keys():
                raise DataError(f"{p} holds no 'codes' tensor")
            piece = f.get_slice("codes")
            shape, dtype = tuple(piece.get_shape()), str(piece.get_dtype())
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{p} is not a readable codes file: {str(exc).splitlines()[0]}") from None
    if dtype not in _CODE_DTYPE_BYTES:
        raise DataError(f"{p}: codes must be integers, got dtype {dtype}")
    stored = math.prod(shape) * _CODE_DTYPE_BYTES[dtype]
    if stored > p.stat().st_size:
        raise DataError(f"{p}: header declares {stored} bytes of codes, the file has "
                        f"{p.stat().st_size}")
    check_codes_header(p, shape, meta)
    return shape, meta


def load_codes(path: str | os.PathLike[str]) -> tuple[torch.Tensor, dict[str, str]]:
    """Read a file written by :func:`save_codes`: codes `LongTensor [K, T]` and its metadata.

    The header is checked (:func:`check_codes_header`) before the tensor is read.
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    _, meta = read_codes_header(p)
    try:
        with safe_open(str(p), framework="pt") as f:
            codes = f.get_tensor("codes")
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{p} is not a readable codes file: {str(exc).splitlines()[0]}") from None
    return codes.long(), meta


def encode_file(audio_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                model: str = "demo") -> tuple[Path, torch.Tensor]:
    """Audio file -> codes file (audio is resampled and down-mixed for the codec)."""
    from musigen.audio import audio_info, load_audio
    from musigen.limits import check_input_duration

    check_input_duration(audio_info(audio_path), what="the audio")  # header only, before decoding
    codec = Codec.from_pretrained(model)
    wav, sr = load_audio(audio_path, sample_rate=codec.sample_rate)
    codes = codec.encode(wav, sample_rate=sr)
    return save_codes(out_path, codes, codec, wav.shape[-1], model), codes[0]


def recorded_codec(codes_path: str | os.PathLike[str], meta: dict[str, str]) -> str:
    """The codec a codes file names, if decoding may use it without the user naming it.

    A codes file is user input: the folder or hub id in its metadata is loaded only when it
    is the shipped demo codec (``demo``, or a path to the folder inside ``checkpoints/``);
    any other codec must be confirmed with ``--model``, so a downloaded file cannot make
    ``codec decode`` load (or fetch) a codec of its choosing.
    """
    name = meta.get("model") or "demo"
    if name == "demo":
        return name
    try:
        resolved = Path(name).expanduser().resolve()
        shipped = any(resolved == place.resolve() for place in candidates(DEMO_CODEC_NAME))
    except (OSError, RuntimeError, ValueError):
        shipped = False
    if shipped:
        return "demo"
    raise DataError(f"{codes_path} was written with codec {shorten(name)}, which is not the "
                    "shipped demo codec: pass --model with that codec (or another that fits) "
                    "to decode it")


def decode_file(codes_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                model: str | None = None) -> Path:
    """Codes file -> audio file at the codec's rate, trimmed to the encoded length.

    `model` defaults to the codec recorded in the file, but only when that is the shipped
    demo codec (:func:`recorded_codec`); a codec whose codebooks do not fit the codes is
    refused.
    """
    from musigen.audio import save_audio
    from musigen.limits import MAX_DECODE_S

    codes, meta = load_codes(codes_path)
    name = model or recorded_codec(codes_path, meta)
    codec = Codec.from_pretrained(name)
    if int(meta.get("cardinality", codec.cardinality)) != codec.cardinality:
        raise DataError(f"{codes_path} was written by a codec with {meta['cardinality']} codes per codebook; "
                        f"{name} has {codec.cardinality}")
    num_samples = int(meta["num_samples"]) if "num_samples" in meta else None
    if codes.shape[1] / codec.frame_rate > MAX_DECODE_S:  # the decoder's memory grows with frames
        raise DataError(f"{codes_path}: {codes.shape[1]} frames are "
                        f"{codes.shape[1] / codec.frame_rate / 60:.1f} min at {name}'s "
                        f"{codec.frame_rate:g} frames/s; at most {MAX_DECODE_S / 60:g} min "
                        "are decoded")
    wav = codec.decode(codes, length=num_samples)[0].cpu().numpy()
    provenance = {"command": "codec decode", "codes": str(codes_path), "model": str(name),
                  "num_codebooks": int(codes.shape[0])}
    return save_audio(out_path, wav, codec.sample_rate, provenance=provenance)
