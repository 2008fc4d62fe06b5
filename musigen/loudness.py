"""Integrated loudness after ITU-R BS.1770 (LUFS-like), for levels and normalisation.

Kept apart from :mod:`musigen.audio` because it is a measurement, not I/O.  What it does:
K-weighting (a +4 dB high shelf near 1.68 kHz and a 38 Hz high pass, bilinear-transformed
from the analog prototype so that any sample rate works; at 48 kHz it reproduces the
standard's coefficients), mean square in 400 ms blocks with 75 % overlap, an absolute
gate at -70 LUFS and a relative gate 10 LU below the gated mean.  Every channel weighs
1.0 (BS.1770's surround weights are not applied), so it is exact for mono and stereo.
"""

from __future__ import annotations

import math

import numpy as np


def k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two K-weighting biquads ``[(b, a), (b, a)]`` for `sample_rate`.

    Parameters follow B. De Man's derivation (AES 2018) of the standard's filters.
    """
    # Stage 1: high shelf, about +4 dB above ~1.68 kHz (head diffraction).
    fc, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * fc / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    b1 = np.array([vh + vb * k / q + k * k, 2.0 * (k * k - vh), vh - vb * k / q + k * k]) / a0
    a1 = np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / q + k * k]) / a0
    # Stage 2: high pass at ~38 Hz (RLB weighting).
    fc, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * fc / sample_rate)
    a0 = 1.0 + k / q + k * k
    b2 = np.array([1.0, -2.0, 1.0])
    a2 = np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / q + k * k]) / a0
    return [(b1, a1), (b2, a2)]


def integrated_loudness(wav: np.ndarray, sample_rate: int) -> float:
    """Gated loudness of float ``[channels, samples]`` audio in LUFS; -inf below the gate.

    Audio shorter than one 400 ms block is measured as a single block.
    """
    from scipy.signal import lfilter

    arr = np.asarray(wav, dtype=np.float64)
    for b, a in k_weighting(sample_rate):
        arr = lfilter(b, a, arr, axis=-1)
    power = np.atleast_2d(arr**2)
    block, hop = int(round(0.4 * sample_rate)), int(round(0.1 * sample_rate))
    n = power.shape[1]
    if n <= block:
        energies = np.array([power.mean(axis=1).sum()])
    else:
        csum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1)], axis=1)
        starts = np.arange(0, n - block + 1, hop)
        energies = ((csum[:, starts + block] - csum[:, starts]) / block).sum(axis=0)
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10.0 * np.log10(energies)
    gated = energies[levels > -70.0]
    if gated.size == 0:
        return -math.inf
    relative = -0.691 + 10.0 * math.log10(gated.mean()) - 10.0
    final = gated[levels[levels > -70.0] > relative]
    return -0.691 + 10.0 * math.log10(final.mean())


class LoudnessMeter:
    """:func:`integrated_loudness` fed block by block, so a long file is never held whole.

    The K-weighting filters carry their state across blocks, and the cumulative power is
    kept only at the 400 ms blocks' edges (every 100 ms), so memory is a few numbers per
    100 ms of audio and the result equals the whole-array measurement.
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        from scipy.signal import lfilter_zi

        self.filters = k_weighting(sample_rate)
        self.state = [np.zeros((channels, len(lfilter_zi(b, a))), np.float64)
                      for b, a in self.filters]
        self.block, self.hop = int(round(0.4 * sample_rate)), int(round(0.1 * sample_rate))
        self.frames = 0
        self.total = 0.0  # sum over channels and samples of the weighted power so far
        self.marks: dict[int, float] = {0: 0.0}  # cumulative power at block starts and ends

    def add(self, block: np.ndarray) -> None:
        """Feed float ``[channels, samples]`` audio, the next samples of the stream."""
        from scipy.signal import lfilter

        arr = np.asarray(block, dtype=np.float64)
        for i, (b, a) in enumerate(self.filters):
            arr, self.state[i] = lfilter(b, a, arr, axis=-1, zi=self.state[i])
        csum = self.total + np.cumsum((arr**2).sum(axis=0))
        first, last = self.frames + 1, self.frames + csum.size  # csum[j] is mark first + j
        hop = self.hop
        starts = np.arange(-(-first // hop) * hop, last + 1, hop)
        lo = max(first, self.block)
        ends = self.block + np.arange(-(-(lo - self.block) // hop) * hop,
                                      last - self.block + 1, hop)
        for index in np.union1d(starts, ends):
            self.marks[int(index)] = float(csum[int(index) - first])
        if csum.size:
            self.total = float(csum[-1])
        self.frames += csum.size

    def integrated(self) -> float:
        """The gated loudness of everything fed so far, in LUFS (-inf below the gate)."""
        n, block = self.frames, self.block
        if n == 0:
            return -math.inf
        if n <= block:
            energies = np.array([self.total / n])
        else:
            starts = range(0, n - block + 1, self.hop)
            energies = np.array([(self.marks[s + block] - self.marks[s]) / block for s in starts])
        with np.errstate(divide="ignore"):
            levels = -0.691 + 10.0 * np.log10(energies)
        gated = energies[levels > -70.0]
        if gated.size == 0:
            return -math.inf
        relative = -0.691 + 10.0 * math.log10(gated.mean()) - 10.0
        final = gated[levels[levels > -70.0] > relative]
        return -0.691 + 10.0 * math.log10(final.mean())
