"""The neural audio codec shared by MusiCoT (discrete codes) and InstructME (latents).

A thin wrapper around `transformers.EncodecModel`, so that the real MusicGen codec
(facebook/encodec_32khz) and the small codec trained in this repo load through one call,
`Codec.from_pretrained(preset_or_folder_or_hub_id)`, and present the same interface:

- `encode(wav) -> codes [B, K, T]` / `decode(codes) -> wav [B, C, N]` for the language model;
- `encode_latents(wav) -> z [B, D, T]` / `decode_latents(z) -> wav` for latent diffusion.

Latents are the encoder output *before* the quantiser by default
(`encode_latents(..., quantized=True)` gives the fully dequantised sum of code vectors).
Why pre-quantiser: measured on the shipped demo codec with
`musigen eval codec-corpus --model checkpoints/codec_demo --corpus data/corpus_codec_eval_final --chord-codebooks 4`
(16 held-out pieces, 10 s), the pre-quantiser latent decodes markedly better than the
dequantised one (the sum of all 8 code vectors): log-mel distance 1.57 vs 1.70, SI-SDR 3.5
vs 2.9 dB, and the chord recogniser keeps 89.0 % majmin on its reconstructions vs 82.5 %
(92.2 % on the originals; 74.9 % from the first 4 codebooks, the demo LM's bandwidth).
It is also continuous (the dequantised latent lives on a finite lattice of code sums), which
is what a diffusion model wants; the demo recipe trains the decoder on it
(`latent_bypass_prob`).

Sample rates: `sample_rate=None` means "already at the codec's rate" (a bare tensor carries
no rate, so it cannot be checked).  A given rate that differs is resampled with soxr, or
refused with :class:`SampleRateError` when `resample=False`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from musigen.checkpoints import default_checkpoint
from musigen.hub import Pretrained, hub_allowed, place, require_hub
from musigen.errors import (
    ChannelCountError,
    CheckpointError,
    DataError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
)

#: Hub id of MusicGen's codec; its config is reproduced exactly by `preset_config("encodec_32khz")`.
ENCODEC_32KHZ_HUB_ID = "facebook/encodec_32khz"
#: The in-repo demo codec (preset "demo"): a folder of checkpoints/, found through
#: musigen.checkpoints ($MUSIGEN_CHECKPOINTS, then the source checkout).
DEMO_CODEC_NAME = "codec_demo"
#: Where a source checkout holds it.
DEMO_CODEC_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / DEMO_CODEC_NAME
PRESETS: tuple[str, ...] = ("encodec_32khz", "demo")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-call progress bars (loading a 4 MB codec needs none)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def bandwidths_for(frame_rate: int, codebook_size: int, num_codebooks: int) -> list[float]:
    """Target bandwidths (kbps) that select 1..K codebooks in transformers' EnCodec."""
    per_codebook = frame_rate * math.log2(codebook_size) / 1000.0
    return [round(per_codebook * k, 6) for k in range(1, num_codebooks + 1)]


def encodec_config(
    sample_rate: int,
    upsampling_ratios: list[int],
    num_filters: int,
    hidden_size: int,
    codebook_size: int,
    num_codebooks: int,
    channels: int = 1,
    num_lstm_layers: int = 2,
    num_residual_layers: int = 1,
    use_causal_conv: bool = False,
    use_conv_shortcut: bool = False,
    compress: int = 2,
) -> "EncodecConfig":  # noqa: F821 - transformers is imported lazily
    """Build an `EncodecConfig` whose bandwidth list exposes every prefix of the code stack."""
    from transformers import EncodecConfig

    hop = int(np.prod(upsampling_ratios))
    if sample_rate % hop:
        raise CheckpointError(f"sample rate {sample_rate} is not a multiple of the hop {hop}")
    config = EncodecConfig(
        sampling_rate=sample_rate, audio_channels=channels, upsampling_ratios=list(upsampling_ratios),
        target_bandwidths=bandwidths_for(sample_rate // hop, codebook_size, num_codebooks),
        num_filters=num_filters, hidden_size=hidden_size, codebook_size=codebook_size,
        num_lstm_layers=num_lstm_layers, num_residual_layers=num_residual_layers,
        use_causal_conv=use_causal_conv, use_conv_shortcut=use_conv_shortcut, compress=compress,
        normalize=False,
    )
    if config.num_quantizers != num_codebooks:
        raise CheckpointError(f"bandwidths {config.target_bandwidths} give {config.num_quantizers} codebooks, "
                              f"not {num_codebooks}")
    return config


def preset_config(name: str) -> "EncodecConfig":  # noqa: F821
    """The architecture of a preset (random weights are built from it in tests and benchmarks)."""
    from transformers import EncodecConfig

    if name == "encodec_32khz":
        return EncodecConfig(sampling_rate=32000, upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2],
                             num_filters=64, codebook_size=2048, use_causal_conv=False, normalize=False,
                             use_conv_shortcut=False)
    if name == "demo":
        return encodec_config(sample_rate=16000, upsampling_ratios=[8, 5, 4, 2], num_filters=16, hidden_size=64,
                              codebook_size=1024, num_codebooks=8)
    raise CheckpointError(f"unknown codec preset {name!r}; presets are {', '.join(PRESETS)}")


@torch.no_grad()
def fill_codebooks(model: nn.Module, latents: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> None:
    """Give a random-init EnCodec usable codebooks (transformers initialises them to zeros).

    With `latents` (`[B, D, T]` encoder outputs), each level's vectors are drawn from a
    Gaussian fitted to that level's residual, the way a trained RVQ covers its input; codes
    are then spread over the codebook like a real codec's.  Without, unit Gaussians shrinking
    by half per level are used.  For tests and benchmarks of untrained models only.
    """
    dim = model.quantizer.layers[0].codebook.embed.shape[1]
    residual = None if latents is None else latents.detach().float().transpose(1, 2).reshape(-1, dim)
    for level, layer in enumerate(model.quantizer.layers):
        book = layer.codebook
        noise = torch.randn(book.embed.shape, generator=generator)
        if residual is None:
            vectors = noise / (2.0**level)
        else:
            vectors = residual.mean(0) + residual.std(0).clamp_min(1e-6) * noise
            residual = residual - vectors[torch.cdist(residual, vectors).argmin(-1)]
        book.embed.copy_(vectors)
        book.embed_avg.copy_(vectors)
        book.cluster_size.fill_(1.0)


def _check_supported(config: object, source: str) -> None:
    if getattr(config, "model_type", None) != "encodec":
        raise CheckpointError(f"{source} is not an EnCodec checkpoint (model_type={getattr(config, 'model_type', None)!r})")
    if config.normalize or config.chunk_length_s is not None:
        raise CheckpointError(f"{source}: chunked/normalised EnCodec models (e.g. 48 kHz) are not supported")


def _resolve(name_or_path: str | os.PathLike[str]) -> tuple[str, bool]:
    """Map a preset, folder or hub id to what transformers loads, and whether it is local."""
    text = str(name_or_path)
    if text == "demo":
        folder = default_checkpoint(DEMO_CODEC_NAME)
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"the demo codec at {folder} has no config.json (train and "
                                  "export it: see recipes/codec/demo.yaml)")
        text = str(folder)
    if text == "encodec_32khz":
        text = ENCODEC_32KHZ_HUB_ID
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"codec checkpoint must be a folder, got a file: {path}")
        if not (path / "config.json").is_file():
            raise CheckpointError(f"missing config.json in codec checkpoint folder {path}")
        if not any(path.glob("*.safetensors")):
            raise CheckpointError(f"no .safetensors weights in codec checkpoint folder {path}")
        return str(path), True
    if looks_like_hub_id(text):
        return require_hub(text, "codec"), False
    raise CheckpointError(f"codec checkpoint folder not found: {path}")


def looks_like_hub_id(text: str) -> bool:
    """True for an `owner/name` string that is not a relative path (no leading '.')."""
    return bool(_HUB_ID.match(text)) and not text.startswith(".")


class Codec(Pretrained, nn.Module):
    """EnCodec behind the interface MusiCoT and InstructME share (see the module docstring)."""

    def __init__(self, model: nn.Module, latent_quantized: bool = False) -> None:
        super().__init__()
        _check_supported(model.config, "model")
        self.model = model.eval()
        self.latent_quantized = latent_quantized

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: "EncodecConfig") -> "Codec":  # noqa: F821
        """A random-init codec (codebooks are zero until trained or filled)."""
        from transformers import EncodecModel

        return cls(EncodecModel(config))

    # -- hub: from_pretrained(preset | folder | hub id, *, device, dtype) / save_pretrained
    hub_kind = "codec"

    @classmethod
    def _resolve(cls, name_or_dir: str | os.PathLike[str]) -> tuple[str, bool]:
        return _resolve(name_or_dir)

    @classmethod
    def _from_folder(cls, resolved: tuple[str, bool], *, device: str | torch.device | None,
                     dtype: torch.dtype | None) -> "Codec":
        """Load a preset (`demo`, `encodec_32khz`), a local folder, or a hub id (cache/offline aware).

        Weights must match the config exactly; anything missing, unexpected or of the wrong
        shape is a :class:`CheckpointError` (transformers would only warn and random-init it).
        """
        from transformers import EncodecConfig, EncodecModel

        source, local = resolved
        try:
            config = EncodecConfig.from_pretrained(source, local_files_only=not hub_allowed())
        except (OSError, ValueError, TypeError) as exc:
            hint = "" if local else " (not a local folder; the hub is offline or has no such model)"
            raise CheckpointError(f"cannot read codec config from {source}{hint}: {str(exc).splitlines()[0]}") from None
        _check_supported(config, source)
        try:
            with _quiet_transformers():
                model, info = EncodecModel.from_pretrained(
                    source, config=config, dtype=torch.float32, output_loading_info=True,
                    ignore_mismatched_sizes=True, use_safetensors=True,
                    local_files_only=not hub_allowed())
        except (OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"cannot load codec weights from {source}: {str(exc).splitlines()[0]}") from None
        problems = [f"{len(info[k])} {k.replace('_', ' ')} (e.g. {list(info[k])[:2]})"
                    for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(k)]
        if problems:
            raise CheckpointError(f"codec weights in {source} do not match its config: {'; '.join(problems)}")
        return place(cls(model), device, dtype)

    def _save_files(self, target: Path, dtype: torch.dtype | None) -> None:
        """The Hugging Face `EncodecModel` layout: `config.json` + `model.safetensors`
        (optionally cast, e.g. fp16 for shipping), moved in file by file."""
        import copy
        import shutil
        import tempfile

        model = self.model if dtype is None else copy.deepcopy(self.model).to(dtype)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            with _quiet_transformers():
                model.save_pretrained(tmp)
            target.mkdir(parents=True, exist_ok=True)
            for item in tmp.iterdir():
                item.chmod(0o644)
                os.replace(item, target / item.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- properties ---------------------------------------------------------------------
    @property
    def config(self) -> "EncodecConfig":  # noqa: F821
        return self.model.config

    @property
    def sample_rate(self) -> int:
        return int(self.config.sampling_rate)

    @property
    def channels(self) -> int:
        return int(self.config.audio_channels)

    @property
    def hop_length(self) -> int:
        return int(np.prod(self.config.upsampling_ratios))

    @property
    def frame_rate(self) -> float:
        """Frames per second (50 for both presets); not rounded, unlike transformers' config."""
        return self.sample_rate / self.hop_length

    @property
    def num_codebooks(self) -> int:
        return int(self.config.num_quantizers)

    @property
    def cardinality(self) -> int:
        return int(self.config.codebook_size)

    @property
    def latent_dim(self) -> int:
        return int(self.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- input handling -----------------------------------------------------------------
    def prepare(self, wav: torch.Tensor | np.ndarray, sample_rate: int | None = None,
                resample: bool = True) -> torch.Tensor:
        """Validate audio and convert it to `[B, C, N]` float32 at the codec's rate and channels.

        Accepts `[N]`, `[C, N]` or `[B, C, N]`; mono is repeated for a stereo codec and
        multichannel audio is averaged for a mono one.
        """
        x = torch.as_tensor(wav) if isinstance(wav, np.ndarray) else wav
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise DataError("audio must be a float tensor or array")
        if x.ndim == 1:
            x = x[None, None]
        elif x.ndim == 2:
            x = x[None]
        elif x.ndim != 3:
            raise ChannelCountError(f"audio must be [N], [C, N] or [B, C, N], got shape {tuple(x.shape)}")
        if x.shape[-1] == 0 or x.shape[0] == 0 or x.shape[1] == 0:
            raise EmptyAudioError(f"audio is empty (shape {tuple(x.shape)})")
        if not torch.isfinite(x).all():
            raise NonFiniteAudioError("audio contains NaN or Inf samples")
        x = x.float()
        if sample_rate is not None and sample_rate != self.sample_rate:
            if sample_rate <= 0:
                raise SampleRateError(f"invalid sample rate {sample_rate}")
            if not resample:
                raise SampleRateError(f"audio is at {sample_rate} Hz but the codec expects {self.sample_rate} Hz "
                                      "(resampling disabled)")
            x = _resample(x, sample_rate, self.sample_rate)
        if x.shape[1] != self.channels:
            x = x.mean(dim=1, keepdim=True) if self.channels == 1 else x.mean(dim=1, keepdim=True).expand(
                -1, self.channels, -1)
        return x.to(self.device).contiguous()

    def _check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.is_complex():
            raise DataError("codes must be an integer tensor [B, K, T]")
        if codes.ndim == 2:
            codes = codes[None]
        if codes.ndim != 3 or codes.shape[-1] == 0:
            raise DataError(f"codes must be [B, K, T] with T > 0, got shape {tuple(codes.shape)}")
        if not 1 <= codes.shape[1] <= self.num_codebooks:
            raise DataError(f"codes have {codes.shape[1]} codebooks; this codec has {self.num_codebooks}")
        if int(codes.min()) < 0 or int(codes.max()) >= self.cardinality:
            raise DataError(f"codes must lie in [0, {self.cardinality}), got [{int(codes.min())}, {int(codes.max())}]")
        return codes.long().to(self.device)

    # -- codes --------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, wav: torch.Tensor | np.ndarray, sample_rate: int | None = None, resample: bool = True,
               num_codebooks: int | None = None) -> torch.Tensor:
        """Audio -> codes `LongTensor [B, K, T]`, `T = ceil(N / hop)`; fewer codebooks = lower bandwidth."""
        k = self.num_codebooks if num_codebooks is None else num_codebooks
        if not 1 <= k <= self.num_codebooks:
            raise DataError(f"num_codebooks must be in 1..{self.num_codebooks}, got {k}")
        x = self.prepare(wav, sample_rate, resample)
        z = self.model.encoder(x)
        bandwidth = k * self.frame_rate * math.log2(self.cardinality) / 1000.0
        codes = self.model.quantizer.encode(z, bandwidth + 1e-6)  # [K, B, T]
        return codes[:k].transpose(0, 1).contiguous()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Codes `[B, K, T]` (any K <= num_codebooks) -> audio `[B, C, T * hop]`, or trimmed to `length`."""
        codes = self._check_codes(codes)
        z = self.model.quantizer.decode(codes.transpose(0, 1))
        return self._decode_z(z, length)

    # -- latents ------------------------------------------------------------------------
    @torch.no_grad()
    def encode_latents(self, wav: torch.Tensor | np.ndarray, sample_rate: int | None = None, resample: bool = True,
                       quantized: bool | None = None) -> torch.Tensor:
        """Audio -> continuous latents `[B, D, T]` (pre-quantiser unless `quantized`)."""
        x = self.prepare(wav, sample_rate, resample)
        z = self.model.encoder(x)
        if self.latent_quantized if quantized is None else quantized:
            z = self.model.quantizer.decode(self.model.quantizer.encode(z, None))
        return z

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Latents `[B, D, T]` -> audio `[B, C, T * hop]`, or trimmed to `length`."""
        if not isinstance(z, torch.Tensor) or z.ndim not in (2, 3) or z.shape[-2] != self.latent_dim:
            raise DataError(f"latents must be [B, {self.latent_dim}, T], got {getattr(z, 'shape', type(z))}")
        if z.shape[-1] == 0:
            raise EmptyAudioError("latents have zero frames")
        if not torch.isfinite(z).all():
            raise NonFiniteAudioError("latents contain NaN or Inf")
        z = z[None] if z.ndim == 2 else z
        return self._decode_z(z.float().to(self.device), length)

    def _decode_z(self, z: torch.Tensor, length: int | None) -> torch.Tensor:
        wav = self.model.decoder(z)
        if length is not None:
            if length <= 0:
                raise DataError(f"length must be positive, got {length}")
            wav = wav[..., :length]
        return wav


def _resample(x: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    """Resample `[B, C, N]` with soxr (high quality, CPU)."""
    import soxr

    arr = x.detach().cpu().numpy()
    out = [soxr.resample(item.T, src, dst).T for item in arr]
    return torch.from_numpy(np.ascontiguousarray(np.stack(out))).to(x.dtype)


@torch.no_grad()
def latent_channel_stats(latents: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over every frame of every `[B, D, T]` batch (for normalising latents).

    Accumulated in float64 so long corpora do not lose precision; the model that consumes
    the latents saves these beside itself.
    """
    total, total_sq, count = None, None, 0
    for z in latents:
        z = z.detach().double()
        flat = z.transpose(0, 1).reshape(z.shape[1], -1) if z.ndim == 3 else z.reshape(z.shape[0], -1)
        total = flat.sum(1) if total is None else total + flat.sum(1)
        total_sq = (flat**2).sum(1) if total_sq is None else total_sq + (flat**2).sum(1)
        count += flat.shape[1]
    if total is None or count < 2:
        raise DataError("need at least two latent frames to compute statistics")
    mean = total / count
    var = (total_sq / count - mean**2).clamp_min(0.0) * count / (count - 1)
    return mean.float(), var.sqrt().clamp_min(1e-5).float()
