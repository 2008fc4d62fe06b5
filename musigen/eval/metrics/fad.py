"""Fréchet audio distance between Gaussian fits of embeddings.

FAD is only meaningful with many more embeddings than dimensions: with fewer, the
covariance is singular and the number mostly measures the sample count.  Every result
therefore carries its sample counts, the embedder's name and a warning when the counts are
too small, so a table never shows a bare number that cannot be trusted.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from musigen.errors import MusigenError

log = logging.getLogger(__name__)


class FadWarning(UserWarning):
    """The FAD was computed from too few embeddings to be reliable."""


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of a set of embeddings, plus how many there were."""

    mean: np.ndarray
    cov: np.ndarray
    n: int


@dataclass(frozen=True)
class FadResult:
    """A FAD value with everything needed to judge it."""

    value: float
    embedder: str
    n_reference: int
    n_test: int
    dim: int
    regularisation: float
    warning: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "value": self.value, "embedder": self.embedder, "n_reference": self.n_reference,
            "n_test": self.n_test, "dim": self.dim, "regularisation": self.regularisation,
            "warning": self.warning,
        }


def gaussian_fit(embeddings: np.ndarray) -> GaussianStats:
    """Fit a Gaussian to `embeddings` [N, D] (float64 for a stable covariance)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise MusigenError(f"FAD needs a [N, D] embedding array with N >= 2, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise MusigenError("FAD embeddings contain NaN or Inf")
    return GaussianStats(mean=x.mean(axis=0), cov=np.cov(x, rowvar=False), n=x.shape[0])


def _sqrt_psd(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix (negative eigenvalues from round-off are clipped)."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _trace_sqrt_product(c1: np.ndarray, c2: np.ndarray) -> float:
    """tr(sqrt(c1 @ c2)) through the symmetric form sqrt(c1) c2 sqrt(c1), which stays real."""
    h = _sqrt_psd(c1)
    m = h @ c2 @ h
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(a: GaussianStats, b: GaussianStats, eps: float = 1e-6) -> tuple[float, float]:
    """Fréchet distance between two Gaussians; returns (distance, regularisation used).

    The symmetric eigen route is tried first; if it fails or yields a non-finite value, `eps`
    times the mean variance is added to both diagonals (growing tenfold per retry).
    """
    if a.mean.shape != b.mean.shape:
        raise MusigenError(f"FAD embeddings differ in dimension: {a.mean.shape[0]} vs {b.mean.shape[0]}")
    diff = a.mean - b.mean
    dim = a.mean.shape[0]
    scale = max(float(np.trace(a.cov) + np.trace(b.cov)) / (2 * dim), 1e-12)
    offset = 0.0
    for attempt in range(6):
        try:
            eye = np.eye(dim) * offset
            tr_covmean = _trace_sqrt_product(a.cov + eye, b.cov + eye)
            value = float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * tr_covmean)
            if np.isfinite(value):
                return max(value, 0.0), offset
        except np.linalg.LinAlgError:
            pass
        offset = eps * scale * (10.0**attempt)
        log.warning("FAD: matrix square root unstable; regularising with %.3g", offset)
    raise MusigenError("FAD: the matrix square root did not converge even with regularisation")


def fad_from_embeddings(
    reference: np.ndarray, test: np.ndarray, embedder: str, min_samples: int | None = None
) -> FadResult:
    """FAD between two embedding sets [N, D]; warns when either set is small.

    `min_samples` defaults to twice the dimension: below it the covariance estimate is
    dominated by noise and FAD is biased upwards.
    """
    ref, tst = gaussian_fit(reference), gaussian_fit(test)
    value, reg = frechet_distance(ref, tst)
    dim = ref.mean.shape[0]
    need = min_samples if min_samples is not None else 2 * dim
    warning = None
    if min(ref.n, tst.n) < need:
        warning = (
            f"FAD from only {ref.n} reference / {tst.n} test embeddings of dimension {dim} "
            f"(want >= {need}); compare it only with FADs of the same counts"
        )
        warnings.warn(warning, FadWarning, stacklevel=2)
    return FadResult(value, embedder, ref.n, tst.n, dim, reg, warning)
