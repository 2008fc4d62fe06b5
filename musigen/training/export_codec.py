"""Export a codec training checkpoint to the hub format that `Codec.from_pretrained` loads.

    musigen export codec runs/codec_demo/checkpoints/last.ckpt checkpoints/codec_demo

Lightning checkpoints carry optimiser state and are pickles; the shipped codec is only
`config.json` + fp16 `model.safetensors`.  The checkpoint is read with
`torch.load(weights_only=True)` (the module stores its hyper-parameters as plain dicts).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from musigen.errors import CheckpointError


def load_codec_from_training_checkpoint(ckpt_path: str | os.PathLike[str]) -> "Codec":  # noqa: F821
    """Rebuild the trained `Codec` (float32) from a `CodecModule` Lightning checkpoint."""
    from transformers import EncodecModel

    from musigen.codec import Codec, encodec_config
    from musigen.hub import load_state_into, read_training_checkpoint

    path = Path(ckpt_path)
    ckpt = read_training_checkpoint(path)
    arch = (ckpt.get("hyper_parameters") or {}).get("arch")
    if not isinstance(arch, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a musigen CodecModule checkpoint (no arch hyper-parameters)")
    keys = ("sample_rate", "upsampling_ratios", "num_filters", "hidden_size", "codebook_size",
            "num_codebooks", "num_lstm_layers", "num_residual_layers", "use_causal_conv",
            "use_conv_shortcut", "compress", "channels")
    missing = [k for k in keys if k not in arch]
    if missing:  # e.g. a CLAP or judge checkpoint, whose arch has other fields
        raise CheckpointError(f"{path} is not a musigen CodecModule checkpoint "
                              f"(its arch lacks {', '.join(missing)})")
    config = encodec_config(**{k: arch[k] for k in keys[:-1]}, channels=arch["channels"])
    model = EncodecModel(config)
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    load_state_into(model, state, str(path))
    return Codec(model)


def export(ckpt_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], dtype: str = "float16") -> Path:
    """Write `config.json` + `model.safetensors` (fp16 by default) for a training checkpoint."""
    if dtype not in ("float16", "bfloat16", "float32"):
        raise CheckpointError(f"unsupported export dtype {dtype!r}")
    codec = load_codec_from_training_checkpoint(ckpt_path)
    return codec.save_pretrained(out_dir, dtype=getattr(torch, dtype))
