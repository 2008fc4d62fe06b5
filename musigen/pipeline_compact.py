"""Make an exported pipeline folder small enough to ship: fp16 weights, shared codec by name.

Training exports (MusiCoT, InstructME) write float32 weights and a private copy of the codec,
which is right for continuing research but doubles the size of a demo checkpoint and stores
the same codec twice in `checkpoints/`.  This rewrites, in place and atomically per file:

- every float32 tensor of the `model.safetensors` files outside the codec folder as float16
  (loaders copy them back into float32 parameters);
- the `codec/` copy as a reference to a codec preset (e.g. ``demo``) when its encoder and
  codebooks equal that preset's, so the pipeline loads the shared one.  Codes and latents are
  then identical; only the decoder may differ, which is how a codec's decoder-only second
  stage (`recipes/codec/demo_decoder.yaml`) reaches pipelines trained on its first stage.
  A codec whose encoder or codebooks differ is kept.

    musigen export compact checkpoints/instructme_demo --codec demo
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from musigen.atomic import atomic_path, write_json
from musigen.errors import CheckpointError


def _halve(path: Path) -> int:
    """Store float32 tensors of one safetensors file as float16; returns the bytes saved."""
    tensors = load_file(str(path))
    if not any(t.dtype == torch.float32 for t in tensors.values()):
        return 0
    before = path.stat().st_size
    out = {k: (v.half() if v.dtype == torch.float32 else v).contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(out, str(tmp))
    return before - path.stat().st_size


def _same_codes(local: Path, preset: str) -> bool:
    """True when the copied codec has the preset's configuration, encoder and codebooks."""
    from musigen.codec import Codec

    a, b = Codec.from_pretrained(local), Codec.from_pretrained(preset)
    ca, cb = a.config.to_dict(), b.config.to_dict()
    ca.pop("_name_or_path", None), cb.pop("_name_or_path", None)
    if ca != cb:
        return False
    sa, sb = a.model.state_dict(), b.model.state_dict()
    keys = [k for k in sa if not k.startswith("decoder.")]
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k].half().float(), sb[k].half().float()) for k in keys)


def compact(directory: str | Path, codec: str | None = "demo") -> dict[str, int | bool]:
    """Compact one pipeline folder (see the module docstring); returns what changed."""
    root = Path(directory)
    config_path = root / "pipeline.json"
    if not config_path.is_file():
        raise CheckpointError(f"{root} is not a pipeline folder (no pipeline.json)")
    config = json.loads(config_path.read_text())
    saved = 0
    local_codec = root / str(config.get("codec", ""))
    for weights in sorted(root.rglob("model.safetensors")):
        if local_codec.is_dir() and local_codec in weights.parents:
            continue
        saved += _halve(weights)
    shared = False
    if codec and local_codec.is_dir() and local_codec != root and _same_codes(local_codec, codec):
        config["codec"] = codec
        write_json(config_path, config)
        shutil.rmtree(local_codec)
        shared = True
    return {"bytes_saved": saved, "codec_shared": shared}
