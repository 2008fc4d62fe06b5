"""Training throughput in samples/s and tokens/s for any musigen batch (Lightning's monitor).

Lightning's :class:`~lightning.pytorch.callbacks.ThroughputMonitor` does the timing, the
rolling window, the world-size scaling and (when the module defines `flops_per_batch`) the
MFU; it only needs to be told how big a batch is.  musigen batches are dicts, so this
subclass reads their sizes by key, which keeps recipes free of Python callables:

- MusiCoT (`codes` [B, K, T] + `plan` [B, N]): tokens = every predicted token, K*T + N;
- InstructME (`target` [B, D, T] latents): tokens = latent frames T;
- codec / CLAP (`wav` [B, (C,) S]): tokens = S / `wav_hop` (the codec's or mel hop), so the
  figure reads as codec frames/s or mel frames/s rather than raw samples/s.

Metrics are logged by the trainer's logger as ``train|samples_per_sec``,
``train|items_per_sec`` (tokens), and their ``device/`` variants.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import ThroughputMonitor

from musigen.errors import ConfigError


def batch_samples(batch: Any) -> int:
    """Rows in a musigen batch (the leading size of its first tensor)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        for key in ("codes", "target", "wav"):
            if isinstance(batch.get(key), torch.Tensor):
                return int(batch[key].shape[0])
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return int(value.shape[0])
    if isinstance(batch, (list, tuple)) and batch:
        return batch_samples(batch[0])
    raise ConfigError(f"cannot tell the batch size of a {type(batch).__name__} batch")


def batch_tokens(batch: Any, wav_hop: int = 1) -> int:
    """Tokens the model is trained on in this batch (see the module docstring)."""
    if isinstance(batch, dict):
        if isinstance(batch.get("codes"), torch.Tensor):
            plan = batch.get("plan")
            return int(batch["codes"].numel()) + (int(plan.numel()) if isinstance(plan, torch.Tensor) else 0)
        if isinstance(batch.get("target"), torch.Tensor):
            t = batch["target"]
            return int(t.shape[0] * t.shape[-1])
        if isinstance(batch.get("wav"), torch.Tensor):
            w = batch["wav"]
            return int(w.shape[0] * w.shape[-1]) // max(1, wav_hop)
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0] * batch.shape[-1]) // max(1, wav_hop)
    return batch_samples(batch)


class _Sizes:
    """Picklable callables for ThroughputMonitor (it takes functions, recipes give numbers)."""

    def __init__(self, wav_hop: int) -> None:
        self.wav_hop = wav_hop

    def samples(self, batch: Any) -> int:
        return batch_samples(batch)

    def tokens(self, batch: Any) -> int:
        return batch_tokens(batch, self.wav_hop)


class TrainThroughput(ThroughputMonitor):
    """ThroughputMonitor for musigen batches; `window_size` batches per rolling average.

    Recipe use::

        - class_path: musigen.training.throughput.TrainThroughput
          init_args: {window_size: 50, wav_hop: 640}
    """

    def __init__(self, window_size: int = 50, wav_hop: int = 1) -> None:
        if window_size < 2 or wav_hop < 1:
            raise ConfigError("TrainThroughput needs window_size >= 2 and wav_hop >= 1")
        sizes = _Sizes(wav_hop)
        super().__init__(batch_size_fn=sizes.samples, length_fn=sizes.tokens,
                         window_size=window_size)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:  # type: ignore[override]
        # Modules without a FLOP count get samples/s and tokens/s without a warning per run;
        # MFU is measured by benchmarks/train_throughput.py.
        if not hasattr(pl_module, "flops_per_batch"):
            self._module_has_flops = False
        super().on_train_start(trainer, pl_module)
