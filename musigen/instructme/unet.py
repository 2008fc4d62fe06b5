"""The InstructME denoiser: a 1-D U-Net over time on normalised codec latents.

What makes it an *editing* U-Net (arXiv 2308.14360):

- **Multi-scale aggregation.** A source encoder runs beside the down path and adds the
  source latent's features at the entry of every down-sampling level and the bottleneck,
  so coarse levels see the source at their own resolution instead of a blurred copy of an
  input concatenation.  ``multiscale_source=False`` is the ablation: the source is only
  concatenated to the noisy latent at the input.
- **Chord conditioning.** The chord matrix (one-hot chords at the latent frame rate) is
  projected, average-pooled to each level's rate, added at each level's entry and fed as a
  FiLM condition to the chunk-transformer blocks.  ``use_chords=False`` is the ablation.
- **Chunk transformers** (``chunk_transformer.py``) at the levels in ``attention_levels`` and
  the bottleneck take the instruction by cross-attention; the cost is linear in length.

Any length T works: the input is padded to a multiple of the total down-sampling factor,
the attention blocks see only the real frames, and the output is cropped back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn

from musigen import hub
from musigen.errors import ConfigError
from musigen.instructme.chunk_transformer import ChunkTransformer


@dataclass
class InstructMEUNetConfig:
    """Sizes and ablation flags.  Not public in the paper: every size here is our choice."""

    latent_channels: int = 64  # D of the codec latents
    text_dim: int = 384  # width of the instruction token states (MiniLM: 384)
    chord_dim: int = 25  # V of the chord matrix (N + 12 maj + 12 min by default)
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 4)  # one level per entry; factor 2 between levels
    res_blocks: int = 1  # ResNet blocks per level and path
    attention_levels: tuple[int, ...] = (1, 2)  # levels with chunk transformers (0 = latent rate)
    mid_attention: bool = True
    transformer_depth: int = 2  # blocks per site; odd ones use the shifted chunk grid
    heads: int = 4
    chunk_size: int = 32  # frames at that level's own rate
    ff_mult: int = 2
    chord_channels: int = 32
    dropout: float = 0.0
    multiscale_source: bool = True
    #: with multi-scale aggregation, also concatenate the source to the noisy input of the
    #: first conv (the ablation's only path), so the full-rate path sees both side by side
    #: instead of summed into one width: copying what the edit keeps gets easier
    concat_source_input: bool = False
    use_chords: bool = True
    full_attention: bool = False  # baseline for the benchmark: O(T^2) attention

    def __post_init__(self) -> None:
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.attention_levels = tuple(int(a) for a in self.attention_levels)
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ConfigError(f"channel_mults must be positive, got {self.channel_mults}")
        bad = [a for a in self.attention_levels if not 0 <= a < len(self.channel_mults)]
        if bad:
            raise ConfigError(
                f"attention_levels {bad} outside levels 0..{len(self.channel_mults) - 1}"
            )
        for name in (
            "latent_channels",
            "text_dim",
            "chord_dim",
            "base_channels",
            "res_blocks",
            "heads",
            "chord_channels",
            "ff_mult",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for mult in self.channel_mults:
            if (self.base_channels * mult) % self.heads:
                raise ConfigError(
                    f"width {self.base_channels * mult} is not divisible by {self.heads} heads"
                )

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mults) - 1)

    @classmethod
    def preset(cls, size: str, **overrides: object) -> InstructMEUNetConfig:
        """Named sizes; parameters at D=64: `debug` ~0.9 M (tests), `demo` ~11 M (CPU-trainable),
        `base` ~240 M (GPU)."""
        if size not in PRESETS:
            raise ConfigError(f"unknown U-Net size {size!r}; known sizes: {', '.join(PRESETS)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown U-Net config keys {unknown}")
        return cls(**{**PRESETS[size], **overrides})  # type: ignore[arg-type]


PRESETS: dict[str, dict[str, object]] = {
    "debug": dict(
        base_channels=32,
        channel_mults=(1, 2),
        attention_levels=(1,),
        heads=2,
        chunk_size=16,
        chord_channels=16,
    ),
    "demo": dict(
        base_channels=64,
        channel_mults=(1, 2, 4),
        attention_levels=(1, 2),
        heads=4,
        chunk_size=32,
        chord_channels=32,
    ),
    "base": dict(
        base_channels=256,
        channel_mults=(1, 2, 3, 4),
        res_blocks=2,
        attention_levels=(1, 2, 3),
        heads=8,
        chunk_size=64,
        chord_channels=128,
        dropout=0.1,
    ),
}


def _groups(channels: int) -> int:
    """The largest of 32, 16, 8, 4, 2, 1 that divides `channels` (GroupNorm needs a divisor)."""
    return next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """Conv ResNet block; the timestep enters as scale-and-shift (none for the source encoder)."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int | None, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv1d(in_ch, out_ch, 3, padding=1)
        self.temb = nn.Linear(temb_dim, 2 * out_ch) if temb_dim is not None else None
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm2(self.conv1(F.silu(self.norm1(x))))
        if self.temb is not None and temb is not None:
            scale, shift = self.temb(temb)[:, :, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return self.skip(x) + self.conv2(self.dropout(F.silu(h)))


@dataclass
class _Level:
    """Bookkeeping for one resolution: its width, input width and whether it has attention."""

    channels: int
    in_channels: int
    attention: bool


class InstructMEUNet(hub.Pretrained, nn.Module):
    """Predicts noise or velocity for the edited latent, given the source, text and chords."""

    def __init__(self, config: InstructMEUNetConfig) -> None:
        super().__init__()
        self.config = c = config
        widths = [c.base_channels * m for m in c.channel_mults]
        self.levels = [
            _Level(w, widths[i - 1] if i else widths[0], i in c.attention_levels)
            for i, w in enumerate(widths)
        ]
        temb_dim = 4 * c.base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(c.base_channels, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim)
        )
        self.null_text = nn.Parameter(torch.randn(1, 1, c.text_dim) * 0.02)
        in_ch = 2 * c.latent_channels if self._concat_input else c.latent_channels
        self.conv_in = nn.Conv1d(in_ch, widths[0], 3, padding=1)
        cond_dim = c.chord_channels if c.use_chords else None

        def transformer(width: int) -> ChunkTransformer:
            return ChunkTransformer(
                width,
                c.transformer_depth,
                c.heads,
                c.chunk_size,
                c.text_dim,
                cond_dim,
                c.ff_mult,
                c.dropout,
                c.full_attention,
            )

        if c.multiscale_source:
            self.source_in = nn.Conv1d(c.latent_channels, widths[0], 3, padding=1)
            self.source_blocks = nn.ModuleList(
                ResBlock(lv.in_channels, lv.channels, None) for lv in self.levels
            )
            self.source_down = nn.ModuleList(
                nn.Conv1d(lv.channels, lv.channels, 3, stride=2, padding=1)
                for lv in self.levels[:-1]
            )
            # Fusion points: the entry of every level, plus the bottleneck.
            self.source_fuse = nn.ModuleList(
                nn.Conv1d(w, w, 1) for w in [lv.in_channels for lv in self.levels] + [widths[-1]]
            )
        if c.use_chords:
            self.chord_in = nn.Sequential(
                nn.Conv1d(c.chord_dim, c.chord_channels, 3, padding=1),
                nn.SiLU(),
                nn.Conv1d(c.chord_channels, c.chord_channels, 3, padding=1),
            )
            self.chord_fuse = nn.ModuleList(
                nn.Conv1d(c.chord_channels, w, 1)
                for w in [lv.in_channels for lv in self.levels] + [widths[-1]]
            )

        self.down_blocks = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.down_samplers = nn.ModuleList()
        for i, lv in enumerate(self.levels):
            self.down_blocks.append(
                nn.ModuleList(
                    ResBlock(
                        lv.in_channels if r == 0 else lv.channels, lv.channels, temb_dim, c.dropout
                    )
                    for r in range(c.res_blocks)
                )
            )
            self.down_attn.append(transformer(lv.channels) if lv.attention else nn.Identity())
            if i < len(self.levels) - 1:
                self.down_samplers.append(
                    nn.Conv1d(lv.channels, lv.channels, 3, stride=2, padding=1)
                )

        self.mid1 = ResBlock(widths[-1], widths[-1], temb_dim, c.dropout)
        self.mid_attn = transformer(widths[-1]) if c.mid_attention else nn.Identity()
        self.mid2 = ResBlock(widths[-1], widths[-1], temb_dim, c.dropout)

        self.up_blocks = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.up_samplers = nn.ModuleList()
        for i in reversed(range(len(self.levels))):
            lv = self.levels[i]
            below = widths[i + 1] if i + 1 < len(widths) else widths[-1]
            self.up_blocks.append(
                nn.ModuleList(
                    ResBlock(
                        (below + lv.channels) if r == 0 else lv.channels,
                        lv.channels,
                        temb_dim,
                        c.dropout,
                    )
                    for r in range(c.res_blocks)
                )
            )
            self.up_attn.append(transformer(lv.channels) if lv.attention else nn.Identity())
            if i > 0:
                self.up_samplers.append(nn.Conv1d(lv.channels, lv.channels, 3, padding=1))
        self.norm_out = nn.GroupNorm(_groups(widths[0]), widths[0])
        self.conv_out = nn.Conv1d(widths[0], c.latent_channels, 3, padding=1)

    # ------------------------------------------------------------------ helpers
    @property
    def _concat_input(self) -> bool:
        """The source joins the noisy input at the first conv (always without multi-scale)."""
        return not self.config.multiscale_source or self.config.concat_source_input

    def set_full_attention(self, full: bool) -> None:
        """Switch all chunk transformers to full attention (same weights) for benchmarks."""
        self.config.full_attention = full
        for module in self.modules():
            if isinstance(module, ChunkTransformer):
                module.set_full_attention(full)

    def _check(
        self,
        noisy: torch.Tensor,
        source: torch.Tensor,
        text_states: torch.Tensor | None,
        text_mask: torch.Tensor | None,
        chords: torch.Tensor | None,
    ) -> None:
        c = self.config
        if noisy.dim() != 3 or noisy.shape[1] != c.latent_channels:
            raise ConfigError(
                f"latents must be [B, {c.latent_channels}, T], got {tuple(noisy.shape)}"
            )
        if noisy.shape[-1] < 1:
            raise ConfigError("latents have zero frames")
        if source.shape != noisy.shape:
            raise ConfigError(
                f"source latents {tuple(source.shape)} differ from noisy {tuple(noisy.shape)}"
            )
        if text_states is not None:
            b = noisy.shape[0]
            if (
                text_states.dim() != 3
                or text_states.shape[0] != b
                or text_states.shape[2] != c.text_dim
            ):
                raise ConfigError(
                    f"text states must be [{b}, L, {c.text_dim}], got {tuple(text_states.shape)}"
                )
            if (
                text_mask is None
                or text_mask.shape != text_states.shape[:2]
                or text_mask.dtype != torch.bool
            ):
                raise ConfigError(
                    "text_mask must be a bool tensor shaped like text_states[:, :, 0]"
                )
        if chords is not None and c.use_chords:
            want = (noisy.shape[0], noisy.shape[-1], c.chord_dim)
            if tuple(chords.shape) != want:
                raise ConfigError(
                    f"chord matrix must be [B, T, V] = {list(want)}, got {tuple(chords.shape)}"
                )

    def _text(
        self,
        b: int,
        text_states: torch.Tensor | None,
        text_mask: torch.Tensor | None,
        like: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend the learned null token: a fully masked (dropped) instruction stays defined."""
        null = self.null_text.to(like.dtype).expand(b, 1, -1)
        ones = torch.ones(b, 1, dtype=torch.bool, device=like.device)
        if text_states is None or text_mask is None:
            return null, ones
        return torch.cat([null, text_states.to(like.dtype)], dim=1), torch.cat(
            [ones, text_mask], dim=1
        )

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        noisy: torch.Tensor,
        timestep: torch.Tensor | int,
        source: torch.Tensor,
        text_states: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        chords: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """noisy, source: [B, D, T]; timestep: [B] or scalar; text_states: [B, L, text_dim] with
        text_mask [B, L] bool (None = no instruction); chords: [B, T, V] (None = no chords,
        ignored when `use_chords=False`).  Returns [B, D, T]."""
        self._check(noisy, source, text_states, text_mask, chords)
        c = self.config
        b, _, t = noisy.shape
        text, tmask = self._text(b, text_states, text_mask, noisy)
        ts = torch.as_tensor(timestep, device=noisy.device).reshape(-1).expand(b)
        temb = self.time_mlp(
            get_timestep_embedding(ts, c.base_channels, flip_sin_to_cos=True).to(noisy.dtype)
        )

        f = c.downsample_factor
        pad = (-t) % f
        x, s = F.pad(noisy, (0, pad)), F.pad(source, (0, pad))
        reals = [-(-t // 2**i) for i in range(len(self.levels))]  # real frames per level
        chord_levels: list[torch.Tensor | None] = [None] * len(self.levels)
        if c.use_chords:
            cm = (
                torch.zeros(b, t, c.chord_dim, dtype=noisy.dtype, device=noisy.device)
                if chords is None
                else chords
            )
            c0 = self.chord_in(F.pad(cm.to(noisy.dtype).transpose(1, 2), (0, pad)))
            chord_levels = [F.avg_pool1d(c0, 2**i) if i else c0 for i in range(len(self.levels))]

        h = self.conv_in(torch.cat([x, s], dim=1) if self._concat_input else x)
        src = self.source_in(s) if c.multiscale_source else None
        skips: list[torch.Tensor] = []
        for i in range(len(self.levels)):
            if src is not None:
                h = h + self.source_fuse[i](src)
                src = self.source_blocks[i](src)
            if chord_levels[i] is not None:
                h = h + self.chord_fuse[i](chord_levels[i])
            for block in self.down_blocks[i]:
                h = block(h, temb)
            h = self._attend(self.down_attn[i], h, text, tmask, chord_levels[i], reals[i])
            skips.append(h)
            if i < len(self.levels) - 1:
                h = self.down_samplers[i](h)
                if src is not None:
                    src = self.source_down[i](src)

        if src is not None:
            h = h + self.source_fuse[-1](src)
        if chord_levels[-1] is not None:
            h = h + self.chord_fuse[-1](chord_levels[-1])
        h = self.mid1(h, temb)
        h = self._attend(self.mid_attn, h, text, tmask, chord_levels[-1], reals[-1])
        h = self.mid2(h, temb)

        for j, i in enumerate(reversed(range(len(self.levels)))):
            h = torch.cat([h, skips[i]], dim=1)
            for block in self.up_blocks[j]:
                h = block(h, temb)
            h = self._attend(self.up_attn[j], h, text, tmask, chord_levels[i], reals[i])
            if i > 0:
                h = self.up_samplers[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out[:, :, :t]

    @staticmethod
    def _attend(
        module: nn.Module,
        h: torch.Tensor,
        text: torch.Tensor,
        tmask: torch.Tensor,
        cond: torch.Tensor | None,
        n_real: int,
    ) -> torch.Tensor:
        """Run a chunk transformer on the real frames only; the padded tail passes through.

        Cropping (rather than masking) keeps attention exact at any length and lets every
        full chunk use the unmasked fast kernel.
        """
        if not isinstance(module, ChunkTransformer):
            return h
        if n_real == h.shape[-1]:
            return module(h, text, tmask, cond, None)
        crop = cond[..., :n_real] if cond is not None else None
        return torch.cat(
            [module(h[..., :n_real], text, tmask, crop, None), h[..., n_real:]], dim=-1
        )

    # ------------------------------------------------------------------ hub format
    # save_pretrained / from_pretrained (config.json + model.safetensors) come from hub.Pretrained
    config_class = InstructMEUNetConfig
    hub_kind = "InstructME U-Net"

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
