"""Training-time residual vector quantisation for `transformers.EncodecModel`.

transformers ships EnCodec's RVQ for inference only: nearest-neighbour lookup, no
straight-through gradient, no codebook learning.  Training needs what EnCodec itself did,
written here against the same buffers (`embed`, `embed_avg`, `cluster_size`) so that the
trained model saves and loads as a plain `EncodecModel`:

- codebooks learned by exponential moving averages of the vectors assigned to them
  (no codebook gradient, stable on small batches);
- a data-driven start (k-means on the first batch) and replacement of dead codes by
  fresh encoder outputs, because small CPU batches otherwise leave most codes unused;
- a straight-through estimator and a commitment loss that pulls the encoder to its codes;
- a per-step number of active codebooks (quantiser dropout), so every prefix of the code
  stack decodes to usable audio (variable bandwidth);
- frozen leading levels (`frozen_levels`), so a trained code stack can be extended with finer
  levels without changing the codes that models were already trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class QuantizerTrainingConfig:
    """EMA codebook settings.

    `dead_code_threshold` is in vectors per step (EMA of usage).  It must be well below the
    mean usage, batch_frames / codebook_size: EnCodec's 2.0 suits its ~3000-frame batches,
    but with 8 x 1 s at 50 Hz (400 frames for 1024 codes, mean 0.39) it would declare every
    code dead every step and the codebook would be resampled from the current batch.
    """

    decay: float = 0.99
    epsilon: float = 1e-5
    kmeans_iters: int = 10
    dead_code_threshold: float = 0.02


@dataclass
class QuantizerOutput:
    """Straight-through quantised latents, codes `[B, K, T]` and the commitment loss."""

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    """Sum over data-parallel ranks, so every rank learns the same codebook from all data."""
    if _distributed():
        torch.distributed.all_reduce(t)
    return t


def _broadcast(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's tensor everywhere (codebook initialisation and revived codes)."""
    if _distributed():
        torch.distributed.broadcast(t, src=0)
    return t


def _kmeans(samples: torch.Tensor, k: int, iters: int) -> torch.Tensor:
    """Plain k-means (Euclidean) used once, to start a codebook from real encoder outputs."""
    n = samples.shape[0]
    idx = torch.randint(0, n, (k,), device=samples.device) if n < k else torch.randperm(n, device=samples.device)[:k]
    means = samples[idx].clone()
    for _ in range(iters):
        assign = torch.cdist(samples, means).argmin(dim=-1)
        onehot = F.one_hot(assign, k).to(samples.dtype)
        counts = onehot.sum(0)
        sums = onehot.T @ samples  # a matmul: much faster than index_add_ on CPU
        filled = counts > 0
        means[filled] = sums[filled] / counts[filled, None]
    return means


class EMAResidualQuantizer(nn.Module):
    """Trains the codebooks that live inside an `EncodecResidualVectorQuantizer`.

    It owns no parameters: it reads and updates the EnCodec model's codebook buffers in
    place, so nothing has to be converted after training.
    """

    def __init__(self, rvq: nn.Module, config: QuantizerTrainingConfig) -> None:
        super().__init__()
        # Held outside the module tree: the buffers belong to (and are saved with) the EnCodec
        # model, and moving that model moves them.
        self._rvq = [rvq]
        self.config = config
        self.frozen_levels = 0  # leading levels neither initialised nor updated here
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @property
    def rvq(self) -> nn.Module:
        return self._rvq[0]

    @property
    def num_codebooks(self) -> int:
        return len(self.rvq.layers)

    @torch.no_grad()
    def _init_codebooks(self, latents: torch.Tensor) -> None:
        """k-means each level on the residual left by the levels above it (rank 0's result).

        Frozen levels keep their codebooks; they only take their share off the residual.
        """
        residual = latents.detach().permute(0, 2, 1).reshape(-1, latents.shape[1])
        for level, layer in enumerate(self.rvq.layers):
            book = layer.codebook
            if level < self.frozen_levels:
                residual = residual - F.embedding(book.quantize(residual), book.embed)
                continue
            means = _broadcast(_kmeans(residual, book.embed.shape[0], self.config.kmeans_iters).contiguous())
            book.embed.copy_(means)
            book.embed_avg.copy_(means)
            book.cluster_size.fill_(1.0)
            residual = residual - means[torch.cdist(residual, means).argmin(-1)]
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, book: nn.Module, flat: torch.Tensor, idx: torch.Tensor) -> None:
        cfg = self.config
        k = book.embed.shape[0]
        onehot = F.one_hot(idx, k).to(flat.dtype)
        counts = _all_reduce(onehot.sum(0))
        sums = _all_reduce(onehot.T @ flat)
        book.cluster_size.mul_(cfg.decay).add_(counts, alpha=1 - cfg.decay)
        book.embed_avg.mul_(cfg.decay).add_(sums, alpha=1 - cfg.decay)
        n = book.cluster_size.sum()
        smoothed = (book.cluster_size + cfg.epsilon) / (n + k * cfg.epsilon) * n
        book.embed.copy_(book.embed_avg / smoothed[:, None])
        dead = book.cluster_size < cfg.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead:
            # A revived code starts at the average usage, not at the threshold: it then has
            # about ln(mean / threshold) / (1 - decay) steps to win vectors before it is
            # declared dead again, instead of being resampled every step.
            grace = max(float(cfg.dead_code_threshold), float(book.cluster_size.mean()))
            fresh = _broadcast(flat[torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)].contiguous())
            book.embed[dead] = fresh
            book.embed_avg[dead] = fresh * grace
            book.cluster_size[dead] = grace

    def forward(self, latents: torch.Tensor, num_codebooks: int | None = None) -> QuantizerOutput:
        """Quantise `[B, D, T]` latents with the first `num_codebooks` codebooks.

        In training mode codebooks are updated by EMA; in eval mode they are left alone.
        """
        k_active = self.num_codebooks if num_codebooks is None else num_codebooks
        b, d, t = latents.shape
        if self.training and not bool(self.initialized):
            self._init_codebooks(latents)

        residual = latents
        quantized_sum = torch.zeros_like(latents)
        commitment = latents.new_zeros(())
        codes = []
        for level, layer in enumerate(self.rvq.layers[:k_active]):
            book = layer.codebook
            flat = residual.detach().permute(0, 2, 1).reshape(-1, d)
            idx = book.quantize(flat)
            q = F.embedding(idx, book.embed).view(b, t, d).permute(0, 2, 1)
            commitment = commitment + F.mse_loss(residual, q.detach())
            if self.training and level >= self.frozen_levels:
                self._ema_update(book, flat, idx)
            quantized_sum = quantized_sum + q.detach()
            residual = residual - q.detach()
            codes.append(idx.view(b, t))
        # One straight-through estimate for the whole stack (a per-level one would scale the
        # encoder's gradient by the number of active codebooks).
        quantized = latents + (quantized_sum - latents).detach()
        return QuantizerOutput(quantized=quantized, codes=torch.stack(codes, dim=1),
                               commitment=commitment / max(1, k_active))
