"""KL divergence between a classifier's label posteriors on reference and generated audio.

The field (audiocraft, stable-audio-metrics) runs PaSST on both clips, turns its logits
into a distribution over labels and reports KL(reference || generated), averaged over
pairs.  We do the same with the instrument judge's instrument + genre logits, and name the
classifier next to the number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musigen.errors import MusigenError

MODES: tuple[str, ...] = ("softmax", "sigmoid")


@dataclass(frozen=True)
class KlResult:
    """Mean KL over pairs, the per-pair values and what produced the posteriors."""

    value: float
    per_item: list[float]
    classifier: str
    mode: str

    def as_dict(self) -> dict[str, object]:
        return {"value": self.value, "classifier": self.classifier, "mode": self.mode, "n": len(self.per_item)}


def label_distribution(logits: np.ndarray, mode: str = "softmax") -> np.ndarray:
    """Logits [N, C] -> label posteriors [N, C].

    `softmax` normalises over all labels (audiocraft's PaSST KL); `sigmoid` keeps the
    independent per-label probabilities (AudioLDM's "KL_sigmoid"), renormalised to sum to one.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise MusigenError(f"logits must be [N, C], got shape {z.shape}")
    if mode == "softmax":
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
    elif mode == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-z))
    else:
        raise MusigenError(f"unknown KL mode {mode!r}; known: {', '.join(MODES)}")
    return p / p.sum(axis=1, keepdims=True)


def kl_divergence(p_reference: np.ndarray, p_test: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Row-wise KL(p_reference || p_test) in nats for distributions [N, C]."""
    p = np.asarray(p_reference, dtype=np.float64)
    q = np.asarray(p_test, dtype=np.float64)
    if p.shape != q.shape:
        raise MusigenError(f"KL needs equal shapes, got {p.shape} and {q.shape}")
    return np.sum(p * (np.log(p + eps) - np.log(q + eps)), axis=-1)


def kl_from_logits(reference_logits: np.ndarray, test_logits: np.ndarray, classifier: str,
                   mode: str = "softmax") -> KlResult:
    """Mean KL(reference || test) over paired clips, from clip-level logits [N, C]."""
    per = kl_divergence(label_distribution(reference_logits, mode), label_distribution(test_logits, mode))
    return KlResult(float(per.mean()), [float(v) for v in per], classifier, mode)
