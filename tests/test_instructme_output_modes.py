"""Output modes of an edit round: decoded, source_delta, masked_delta (musigen.instructme.output_modes)."""

from __future__ import annotations

import numpy as np
import pytest

from musigen.errors import ConfigError
from musigen.instructme.output_modes import combine

SR = 16000


def _tone(freq: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / SR)
    return float(spec[(f >= lo) & (f <= hi)].sum())


def test_an_unchanged_edit_gives_the_input_back_in_every_delta_mode() -> None:
    rng = np.random.default_rng(0)
    wav = (_tone(220) * 0.5 + 0.05 * rng.standard_normal(2 * SR)).astype(np.float32)
    same = (wav * 0.8 + 0.02 * rng.standard_normal(wav.size)).astype(np.float32)  # a lossy round trip
    assert np.array_equal(combine("decoded", wav, same, None), same)
    for mode in ("source_delta", "masked_delta"):
        np.testing.assert_allclose(combine(mode, wav, same, same), wav, atol=1e-5)


def test_masked_delta_drops_the_residue_of_a_removed_instrument_and_keeps_the_rest() -> None:
    kept, removed = 0.5 * _tone(300), 0.5 * _tone(2000)
    same = kept + removed  # the decoded input holds both instruments
    wav = same + 0.3 * removed + 0.1 * kept  # the input; its codec error holds both too
    edited = kept.copy()  # the decoded edit removed the 2 kHz instrument
    delta = combine("source_delta", wav, edited, same)
    masked = combine("masked_delta", wav, edited, same)
    target = _band_energy(wav, 1900, 2100)
    assert _band_energy(delta, 1900, 2100) > 0.05 * target  # source_delta lets the residue back
    assert _band_energy(masked, 1900, 2100) < 1e-3 * target  # masked_delta does not
    # where the edit kept the energy, the input's own fidelity comes back as in source_delta
    np.testing.assert_allclose(_band_energy(masked, 250, 350), _band_energy(delta, 250, 350), rtol=1e-3)
    # an added instrument (energy the input lacks) is kept in full, as in source_delta
    added = kept + removed + 0.5 * _tone(800)
    m_add, d_add = combine("masked_delta", wav, added, same), combine("source_delta", wav, added, same)
    for lo, hi in ((250, 350), (750, 850), (1900, 2100)):
        np.testing.assert_allclose(_band_energy(m_add, lo, hi), _band_energy(d_add, lo, hi), rtol=1e-2)


def test_output_modes_reject_unknown_names_and_missing_inputs_and_take_short_clips() -> None:
    wav = _tone(440, 0.5)
    with pytest.raises(ConfigError, match="unknown output mode 'wet'"):
        combine("wet", wav, wav, wav)
    with pytest.raises(ConfigError, match="needs the decoded input"):
        combine("masked_delta", wav, wav, None)
    short = wav[:300]  # shorter than one STFT frame: the residual is kept whole
    np.testing.assert_allclose(combine("masked_delta", short, 0.5 * short, 0.9 * short),
                               combine("source_delta", short, 0.5 * short, 0.9 * short))
