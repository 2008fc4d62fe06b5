"""Musical thoughts: CLAP window embeddings quantised into a few discrete tokens per window.

MusiCoT plans a piece as one audio–text embedding per window (10 s in the paper), then
quantises each embedding with a residual VQ of L levels x K codes so that the plan is a
short token sequence the LM can predict before the audio. Because the embedding lives in
the audio–text space, a decoded plan can be read back as tags (the "analysis").

Choices where the paper is silent (all configurable in :class:`ThoughtConfig`):
- L=4 levels of K=256 codes: the demo corpus has a few thousand windows, so the 12 x 1024
  of open-musiclm would leave most codes unused; 4 levels already reach high cosine.
- Flattening is level-major ("coarse_to_fine"): all windows' level 0, then all level 1, ...
  so the LM commits to the coarse plan of the whole piece first, and a prefix of the flat
  sequence is a coarser plan. "segment_major" (window by window) is the alternative.
- Thought token ids carry their level: id = level * K + code, so the LM has one shared
  vocabulary of L*K ids and can tell levels apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from musigen import hub
from musigen.errors import CheckpointError, ConfigError

ORDERS: tuple[str, ...] = ("coarse_to_fine", "segment_major")


@dataclass
class ThoughtConfig:
    """Windowing and RVQ sizes; saved as the tokenizer's config.json."""

    embed_dim: int
    levels: int = 4
    codebook_size: int = 256
    window_s: float = 10.0
    hop_s: float = 10.0
    min_last_s: float = 1.0  # a shorter trailing window is dropped (unless it is the only one)
    order: str = "coarse_to_fine"
    normalize: bool = True  # CLAP vectors are compared by cosine, so quantise unit vectors
    kmeans_iters: int = 25
    refine_passes: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or self.levels < 1 or self.codebook_size < 2:
            raise ConfigError(
                f"thought RVQ needs embed_dim >= 1, levels >= 1, codebook_size >= 2; got "
                f"{self.embed_dim}, {self.levels}, {self.codebook_size}"
            )
        if not (self.window_s > 0 and 0 < self.hop_s <= self.window_s):
            raise ConfigError(
                f"need window_s > 0 and 0 < hop_s <= window_s, got {self.window_s}, {self.hop_s}"
            )
        if self.order not in ORDERS:
            raise ConfigError(f"unknown thought order {self.order!r}; choose one of {list(ORDERS)}")
        if self.kmeans_iters < 0 or self.refine_passes < 0 or self.min_last_s < 0:
            raise ConfigError("kmeans_iters, refine_passes and min_last_s must be >= 0")


@dataclass(frozen=True)
class ThoughtLayout:
    """How [segments, levels] codes become one flat token sequence, and back."""

    levels: int
    codebook_size: int
    order: str = "coarse_to_fine"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ConfigError(f"unknown thought order {self.order!r}; choose one of {list(ORDERS)}")

    @property
    def vocab_size(self) -> int:
        return self.levels * self.codebook_size

    def _levels(self, num_levels: int | None) -> int:
        n = self.levels if num_levels is None else num_levels
        if not 1 <= n <= self.levels:
            raise ConfigError(f"num_levels must be in 1..{self.levels}, got {n}")
        return n

    def flatten(self, codes: torch.Tensor) -> torch.Tensor:
        """[..., S, n] codes of the coarsest n <= L levels -> [..., S*n] level-offset ids."""
        n = self._levels(codes.shape[-1])
        offsets = torch.arange(n, device=codes.device) * self.codebook_size
        ids = codes.long() + offsets
        if self.order == "coarse_to_fine":
            ids = ids.transpose(-1, -2)
        return ids.reshape(*codes.shape[:-2], -1)

    def unflatten(self, ids: torch.Tensor, num_levels: int | None = None) -> torch.Tensor:
        """Inverse of :meth:`flatten`: [..., S*n] ids -> [..., S, n] codes."""
        n = self._levels(num_levels)
        if ids.shape[-1] % n:
            raise ConfigError(
                f"{ids.shape[-1]} thought tokens are not a whole number of {n}-level segments"
            )
        s = ids.shape[-1] // n
        if self.order == "coarse_to_fine":
            grid = ids.reshape(*ids.shape[:-1], n, s).transpose(-1, -2)
        else:
            grid = ids.reshape(*ids.shape[:-1], s, n)
        offsets = torch.arange(n, device=ids.device) * self.codebook_size
        return grid - offsets

    def segment_ids(self, num_segments: int, num_levels: int | None = None) -> torch.Tensor:
        """The plan segment of each flat position [S*n] (same order as :meth:`flatten`)."""
        n = self._levels(num_levels)
        grid = torch.arange(num_segments)[:, None].expand(num_segments, n)
        if self.order == "coarse_to_fine":
            grid = grid.transpose(0, 1)
        return grid.reshape(-1)

    def level_ids(self, num_segments: int, num_levels: int | None = None) -> torch.Tensor:
        """The RVQ level of each flat position [S*n]; sampling keeps each to its level's ids."""
        n = self._levels(num_levels)
        return self.flatten(torch.zeros(num_segments, n, dtype=torch.long)) // self.codebook_size


def _sq_dists(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(-1, keepdim=True) - 2 * x @ c.t() + (c * c).sum(-1)[None, :]


def kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding, then Lloyd iterations; empty clusters re-seed on the worst-fit points."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centroids = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(-1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than codes: duplicate with a tiny jitter
            idx = int(torch.randint(n, (1,), generator=generator))
            jitter = torch.randn(x.shape[1], generator=generator, dtype=x.dtype) * 1e-4
            centroids.append(x[idx] + jitter)
        else:
            idx = int(torch.multinomial(d2 / total, 1, generator=generator))
            centroids.append(x[idx])
        d2 = torch.minimum(d2, ((x - centroids[-1]) ** 2).sum(-1))
    c = torch.stack(centroids)
    for _ in range(iters):
        dist = _sq_dists(x, c)
        assign = dist.argmin(-1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        filled = counts > 0
        c[filled] = sums[filled] / counts[filled, None]
        empty = int((~filled).sum())
        if empty:
            worst = dist.gather(1, assign[:, None]).squeeze(1).topk(min(empty, n)).indices
            c[~filled] = x[worst].repeat(math.ceil(empty / len(worst)), 1)[:empty]
    return c


class ResidualVQ(torch.nn.Module):
    """L codebooks applied greedily to the residual: level l quantises what levels < l missed."""

    def __init__(self, codebooks: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("codebooks", codebooks.float().contiguous())  # [L, K, D]

    def encode(self, x: torch.Tensor, num_levels: int | None = None) -> torch.Tensor:
        residual = x
        codes = []
        for level in range(num_levels or self.codebooks.shape[0]):
            book = self.codebooks[level]
            idx = _sq_dists(residual, book).argmin(-1)
            codes.append(idx)
            residual = residual - book[idx]
        return torch.stack(codes, -1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(*codes.shape[:-1], self.codebooks.shape[-1], device=self.codebooks.device)
        for level in range(codes.shape[-1]):
            out = out + self.codebooks[level][codes[..., level]]
        return out

    def mse(self, x: torch.Tensor) -> float:
        return float(((x - self.decode(self.encode(x))) ** 2).sum(-1).mean())


def train_rvq(
    x: torch.Tensor,
    levels: int,
    size: int,
    kmeans_iters: int,
    refine_passes: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """k-means on each level's residual, then joint refinement; returns codebooks [L, K, D].

    Refinement re-encodes greedily (as inference does) and moves each level's codewords to
    the mean of what the other levels leave over; the best pass (lowest MSE) is kept, so
    refinement can only help.
    """
    books = []
    residual = x
    for _ in range(levels):
        book = kmeans(residual, size, kmeans_iters, generator)
        books.append(book)
        residual = residual - book[_sq_dists(residual, book).argmin(-1)]
    rvq = ResidualVQ(torch.stack(books))
    best, best_mse = rvq.codebooks.clone(), rvq.mse(x)
    for _ in range(refine_passes):
        codes = rvq.encode(x)
        for level in range(levels):
            others = rvq.decode(codes) - rvq.codebooks[level][codes[:, level]]
            target = x - others
            sums = torch.zeros(size, x.shape[1]).index_add_(0, codes[:, level], target)
            counts = torch.bincount(codes[:, level], minlength=size)
            used = counts > 0
            rvq.codebooks[level, used] = sums[used] / counts[used, None].to(x.dtype)
        mse = rvq.mse(x)
        if mse < best_mse:
            best, best_mse = rvq.codebooks.clone(), mse
    return best


class ThoughtTokenizer(hub.Pretrained):
    """Window embeddings [S, D] <-> thought codes [S, L], plus flattening for the LM."""

    def __init__(self, config: ThoughtConfig, codebooks: torch.Tensor | None = None) -> None:
        self.config = config
        shape = (config.levels, config.codebook_size, config.embed_dim)
        if codebooks is None:  # untrained: random codewords, the baseline a fit must beat
            g = torch.Generator().manual_seed(config.seed)
            codebooks = torch.randn(shape, generator=g) / math.sqrt(config.embed_dim)
        if tuple(codebooks.shape) != shape:
            raise CheckpointError(
                f"thought codebooks have shape {tuple(codebooks.shape)}, the config says {shape}"
            )
        self.rvq = ResidualVQ(codebooks)
        self.layout = ThoughtLayout(config.levels, config.codebook_size, config.order)

    @classmethod
    def fit(cls, embeddings: torch.Tensor, config: ThoughtConfig) -> ThoughtTokenizer:
        """Train the RVQ on corpus window embeddings [N, D]."""
        x = cls._prepare(embeddings, config)
        g = torch.Generator().manual_seed(config.seed)
        books = train_rvq(
            x, config.levels, config.codebook_size, config.kmeans_iters, config.refine_passes, g
        )
        return cls(config, books)

    @staticmethod
    def _prepare(embeddings: torch.Tensor, config: ThoughtConfig) -> torch.Tensor:
        x = torch.as_tensor(embeddings).detach().float().cpu()
        if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] != config.embed_dim:
            raise ConfigError(f"embeddings must be [N>0, {config.embed_dim}], got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ConfigError("embeddings contain NaN or Inf")
        return torch.nn.functional.normalize(x, dim=-1) if config.normalize else x

    # -- windows -----------------------------------------------------------------------
    def window_bounds(self, num_samples: int, sample_rate: int) -> list[tuple[int, int]]:
        """Sample spans [start, end) of the windows to embed; the last one may be shorter."""
        if num_samples <= 0 or sample_rate <= 0:
            raise ConfigError(
                f"need a positive length and sample rate, got {num_samples}, {sample_rate}"
            )
        win, hop = round(self.config.window_s * sample_rate), round(self.config.hop_s * sample_rate)
        min_last = round(self.config.min_last_s * sample_rate)
        bounds: list[tuple[int, int]] = []
        start = 0
        while start < num_samples:
            end = min(start + win, num_samples)
            if bounds and end - start < min_last:
                break
            bounds.append((start, end))
            if end == num_samples:
                break
            start += hop
        return bounds

    def num_segments(self, duration_s: float) -> int:
        """How many thought segments a piece of `duration_s` seconds has (see window_bounds)."""
        if duration_s <= 0:
            raise ConfigError(f"duration must be > 0 s, got {duration_s}")
        return len(self.window_bounds(max(1, round(duration_s * 1000)), 1000))

    # -- codes -------------------------------------------------------------------------
    def encode(self, embeddings: torch.Tensor, num_levels: int | None = None) -> torch.Tensor:
        """[S, D] window embeddings -> [S, L] codes (or the coarsest `num_levels`)."""
        x = self._prepare(embeddings, self.config).to(self.rvq.codebooks.device)
        return self.rvq.encode(x, self.layout._levels(num_levels))

    def decode(self, codes: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """[..., S, n] codes (n <= L levels) -> [..., S, D] dequantised embeddings."""
        codes = torch.as_tensor(codes).long().to(self.rvq.codebooks.device)
        self.layout._levels(codes.shape[-1])
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.config.codebook_size):
            raise ConfigError(f"thought codes must be in 0..{self.config.codebook_size - 1}")
        out = self.rvq.decode(codes)
        return torch.nn.functional.normalize(out, dim=-1) if normalize else out

    def fidelity(self, embeddings: torch.Tensor) -> list[float]:
        """Mean cosine(original, dequantised) using the first 1, 2, ..., L levels."""
        x = self._prepare(embeddings, self.config).to(self.rvq.codebooks.device)
        codes = self.rvq.encode(x)
        return [
            float(
                torch.nn.functional.cosine_similarity(
                    x, self.rvq.decode(codes[:, :n]), dim=-1
                ).mean()
            )
            for n in range(1, self.config.levels + 1)
        ]

    def flatten(self, codes: torch.Tensor) -> torch.Tensor:
        """[..., S, n] codes -> [..., S*n] LM token ids, in the configured order."""
        return self.layout.flatten(codes)

    def unflatten(self, ids: torch.Tensor, num_levels: int | None = None) -> torch.Tensor:
        return self.layout.unflatten(ids, num_levels)

    # -- hub ---------------------------------------------------------------------------
    config_class = ThoughtConfig
    hub_kind = "thought tokenizer"

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> ThoughtTokenizer:
        self.rvq.to(device=device, dtype=dtype)
        return self

    def eval(self) -> ThoughtTokenizer:
        return self

    def hub_state_dict(self) -> dict[str, torch.Tensor]:
        return {"codebooks": self.rvq.codebooks}

    @classmethod
    def _from_folder(
        cls, path: Path, *, device: torch.device | str | None, dtype: torch.dtype | None
    ) -> ThoughtTokenizer:
        config = hub.load_config(path, ThoughtConfig)
        state = hub.load_weights(path)
        if set(state) != {"codebooks"}:
            raise CheckpointError(
                f"weights in {path} are not a thought tokenizer (keys {sorted(state)})"
            )
        return hub.place(cls(config, state["codebooks"]), device, dtype)
