"""Audio through a codec and back, as a model that writes through that codec would sound.

Why: the instrument judge learned on clean renders, and it mishears codec audio. Every
MusiCoT output is decoded from codes, and every InstructME output is decoded from
latents, so a judge that has never heard codec artefacts measures the codec, not the
edit: through the demo codec even the exact edit targets pass the judge in only 6-15 %
of clips (58 % clean). Training views and measurement views sent through the same codec
make a judge for codec outputs (`recipes/judge/demo_codec.yaml`).

A round trip is one of the codec's two paths, drawn per call:

- `0`: the continuous latents (encoder, decoder: what InstructME writes through);
- `k >= 1`: the first k RVQ codebooks (what MusiCoT writes through, at its k).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from musigen.errors import ConfigError


def through_codec(codec: Any, wav: np.ndarray, sample_rate: int, codebooks: int | None = None) -> np.ndarray:
    """Mono `wav` at `sample_rate` through `codec` and back, at the same rate and length.

    `codebooks`: 0 = the continuous latents, k = the first k codebooks, None = all of them.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, None]
    rate = int(codec.sample_rate)
    length = int(np.ceil(x.shape[-1] * rate / sample_rate))
    with torch.no_grad():
        if codebooks == 0:
            y = codec.decode_latents(codec.encode_latents(x, sample_rate), length=length)
        else:
            y = codec.decode(codec.encode(x, sample_rate, num_codebooks=codebooks), length=length)
    out = _mono_at(y, rate, sample_rate)[: wav.shape[-1]]
    return np.pad(out, (0, wav.shape[-1] - out.shape[-1])) if out.shape[-1] < wav.shape[-1] else out


def _mono_at(wav: Any, rate_in: int, rate_out: int) -> np.ndarray:
    """Decoded audio (tensor [1, C, T]) -> mono float32 [T] at `rate_out`."""
    x = wav.detach().cpu().float().numpy() if hasattr(wav, "detach") else np.asarray(wav, dtype=np.float32)
    x = x.reshape(-1, x.shape[-1]).mean(axis=0).astype(np.float32)
    if rate_in != rate_out:
        import soxr

        x = soxr.resample(x, rate_in, rate_out).astype(np.float32)
    return x


class ThroughCodec:
    """Callable `(mono audio at rate, rng) -> the same length of audio at rate, through the codec`,
    on a path drawn per call from `codebooks` (0 = latents, k = the first k codebooks)."""

    def __init__(self, codec: Any, codebooks: Sequence[int] = (0,)) -> None:
        paths = [int(k) for k in codebooks]
        if not paths or any(k < 0 or k > int(codec.num_codebooks) for k in paths):
            raise ConfigError(f"codec round-trip paths must be 0 (latents) or 1..{codec.num_codebooks} "
                              f"codebooks, got {list(codebooks)}")
        self.codec, self.paths = codec, paths

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], codebooks: Sequence[int] = (0,)
                        ) -> ThroughCodec:
        from musigen.codec import Codec

        return cls(Codec.from_pretrained(name_or_path), codebooks)

    def __call__(self, wav: np.ndarray, sample_rate: int, rng: np.random.Generator | None = None
                 ) -> np.ndarray:
        k = self.paths[0] if rng is None or len(self.paths) == 1 else int(rng.choice(self.paths))
        return through_codec(self.codec, wav, sample_rate, k)
