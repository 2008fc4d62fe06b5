"""Trivial systems every model is reported next to: floors and ceilings.

- `identity` (edit floor): returns the source unchanged.
- `random-stem` (edit floor): ignores the instruction and, per round, either drops or
  isolates one randomly chosen stem of the source.  It is a clean stem operation, so it
  separates "did the right thing" from "did something tidy".
- `target` (edit ceiling): returns the exact target, so its instruction accuracy is the
  judge's own ceiling.
- `target-codec` / `identity-codec` (a latent model's ceiling and floor): the exact target,
  or the source, encoded to the model's codec latents and decoded back.  A latent-diffusion
  editor can output nothing better than its codec can reconstruct, so its SI-SDR and
  log-mel are bounded by `target-codec`; `identity-codec` is the do-nothing edit with the
  same codec loss, a fairer floor for it than `identity`.
- `target-codec-delta` (the ceiling of an editor that outputs the source plus what changed,
  InstructME's `source_delta` mode): source + codec(target) - codec(source).
- `random-clip` (generation floor): a random clip of held-out corpus audio, whatever the
  prompt.
- `reference` (generation ceiling): the held-out audio the prompt was written for.

Baselines that need stems or targets look the source up by a fingerprint of its samples,
so they still implement the plain protocols.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from musigen.errors import DataError
from musigen.eval.harness.protocols import EditSystem, output_rate


def fingerprint(wav: np.ndarray) -> str:
    """A content hash of float32 samples: how baselines recognise a set's source clip."""
    return hashlib.sha1(np.ascontiguousarray(wav, dtype=np.float32).tobytes()).hexdigest()


def fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad a mono clip to exactly n samples."""
    x = np.asarray(wav, dtype=np.float32)
    return x[:n] if x.shape[0] >= n else np.pad(x, (0, n - x.shape[0]))


class IdentityEdit:
    """Returns the source: the floor that scores "change nothing"."""

    name = "identity"

    def edit(self, wav: np.ndarray, sample_rate: int, instructions: list[str], seed: int) -> np.ndarray:
        return np.array(wav, dtype=np.float32, copy=True)


class RandomStemEdit:
    """Per round, drop or isolate a random stem of the source, ignoring the instruction."""

    name = "random-stem"

    def __init__(self, stems: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """`stems`: source fingerprint -> {instrument: stem audio}, stems summing to the source."""
        self._stems = stems

    def edit(self, wav: np.ndarray, sample_rate: int, instructions: list[str], seed: int) -> np.ndarray:
        key = fingerprint(wav)
        if key not in self._stems:
            raise DataError("random-stem baseline: this clip is not a source of the evaluation set")
        current = dict(self._stems[key])
        rng = np.random.default_rng([seed, int(key[:8], 16)])
        for _ in instructions:
            names = sorted(current)
            if len(names) > 1:
                pick = names[int(rng.integers(len(names)))]
                if rng.random() < 0.5:
                    current.pop(pick)
                else:
                    current = {pick: current[pick]}
        return np.sum(list(current.values()), axis=0).astype(np.float32)


class TargetEdit:
    """Returns the exact target: the ceiling that the judge's own errors allow."""

    name = "target"

    def __init__(self, targets: Mapping[tuple[str, tuple[str, ...]], np.ndarray]) -> None:
        """`targets`: (source fingerprint, instructions) -> target audio."""
        self._targets = targets

    def edit(self, wav: np.ndarray, sample_rate: int, instructions: list[str], seed: int) -> np.ndarray:
        key = (fingerprint(wav), tuple(instructions))
        if key not in self._targets:
            raise DataError("target baseline: this (clip, instructions) pair is not in the evaluation set")
        return np.array(self._targets[key], dtype=np.float32, copy=True)


class CodecRoundTrip:
    """Another edit system's output passed through a codec's latent path (encode, decode).

    `codec` needs `sample_rate`, `encode_latents(wav [B, C, N], sample_rate)` and
    `decode_latents(z, length)`, like :class:`musigen.codec.Codec`; `stats` (optional, with
    `normalize` / `denormalize`) repeats the pipeline's normalisation of the latents, so the
    round trip is exactly the one a latent-diffusion output goes through.
    """

    def __init__(self, inner: EditSystem, codec: Any, name: str, stats: Any | None = None,
                 delta: bool = False, masked: bool = False) -> None:
        for method in ("encode_latents", "decode_latents"):
            if not callable(getattr(codec, method, None)):
                raise DataError(f"{name} baseline: the codec has no {method}()")
        self.inner, self.codec, self.name, self.stats = inner, codec, name, stats
        self.sample_rate = int(codec.sample_rate)
        #: output source + round_trip(inner) - round_trip(source) instead of round_trip(inner)
        self.delta = delta
        #: with delta: InstructME's masked_delta (the source's codec error kept only where
        #: the round trip of inner keeps the round trip of the source's energy)
        self.masked = masked
        if masked and not delta:
            raise DataError(f"{name} baseline: masked needs delta")

    def _round_trip(self, wav: np.ndarray, rate: int) -> np.ndarray:
        import torch

        length = int(np.ceil(wav.shape[-1] * self.sample_rate / rate))
        with torch.no_grad():
            z = self.codec.encode_latents(torch.from_numpy(np.ascontiguousarray(wav))[None, None], rate)
            if self.stats is not None:
                z = self.stats.denormalize(self.stats.normalize(z))
            y = self.codec.decode_latents(z, length=length)
        return y[0].mean(dim=0).float().cpu().numpy()

    def edit(self, wav: np.ndarray, sample_rate: int, instructions: list[str], seed: int) -> np.ndarray:
        out = np.asarray(self.inner.edit(wav, sample_rate, instructions, seed), dtype=np.float32)
        if out.ndim == 2:
            out = out.mean(axis=0)
        y = self._round_trip(out, output_rate(self.inner, sample_rate))
        if not self.delta:
            return y
        from musigen.audio import resample

        src = np.asarray(wav, dtype=np.float32)
        src = src.mean(axis=0) if src.ndim == 2 else src
        same = self._round_trip(src, sample_rate)
        if sample_rate != self.sample_rate:
            src = np.asarray(resample(src[None], sample_rate, self.sample_rate))[0]
        n = min(y.size, same.size, src.size)
        from musigen.instructme.output_modes import combine

        return combine("masked_delta" if self.masked else "source_delta", src[:n], y[:n], same[:n])


class RandomClipGenerator:
    """A random held-out corpus clip per prompt, whatever the prompt says."""

    name = "random-clip"

    def __init__(self, pool: Sequence[np.ndarray], sample_rate: int) -> None:
        if not pool:
            raise DataError("random-clip baseline needs a non-empty pool of clips")
        self._pool = list(pool)
        self.sample_rate = sample_rate

    def generate(self, prompts: list[str], refs: list[np.ndarray | None], duration: float,
                 seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        n = int(round(duration * self.sample_rate))
        return [fit_length(self._pool[int(rng.integers(len(self._pool)))], n) for _ in prompts]


class ReferenceGenerator:
    """The held-out audio each prompt describes: a ceiling (FAD and KL are 0 by construction)."""

    name = "reference"

    def __init__(self, audio_by_prompt: Mapping[str, np.ndarray], sample_rate: int) -> None:
        self._audio = audio_by_prompt
        self.sample_rate = sample_rate

    def generate(self, prompts: list[str], refs: list[np.ndarray | None], duration: float,
                 seed: int) -> list[np.ndarray]:
        n = int(round(duration * self.sample_rate))
        missing = [p for p in prompts if p not in self._audio]
        if missing:
            raise DataError(f"reference baseline: prompt not in the evaluation set: {missing[0][:60]!r}")
        return [fit_length(self._audio[p], n) for p in prompts]
