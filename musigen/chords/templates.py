"""The no-training scorer: bass and treble chroma matched against binary chord templates.

Always available (nothing to load), so it is the recogniser of last resort and the one a
caller asks for explicitly with ``method="templates"``.  It confuses relative majors and
minors and suffers from drums, which is why a learned model is preferred where one exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musigen.chords.features import N_OCTAVES, ChordFeatures, semitone_spectrum
from musigen.chords.labels import CHORD_VOCAB


@dataclass(frozen=True)
class TemplateParams:
    """Knobs of the template scorer (tuned on corpus seeds disjoint from the eval seeds)."""

    bass_octaves: tuple[int, int] = (0, 2)  # C1..B2
    treble_octaves: tuple[int, int] = (2, 6)  # C3..B6
    bass_weight: float = 1.0
    seventh_penalty: float = 0.0  # > 0 makes four-note templates earn their extra note
    no_chord_score: float = 0.35
    sharpness: float = 20.0
    power: float = 1.0  # > 1 emphasises peaks over the dB floor


#: Viterbi self-transition for the template scorer (tuned with the params above).
TEMPLATE_SELF_TRANSITION = 0.995


def _chord_templates(vocab: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm binary templates [V, 12] and root one-hots [V, 12] (zeros for N)."""
    import mir_eval.chord as mc

    temps = np.zeros((len(vocab), 12), np.float32)
    roots = np.zeros((len(vocab), 12), np.float32)
    for i, label in enumerate(vocab):
        root, bits, _ = mc.encode(label)
        if root < 0:
            continue
        temps[i] = np.roll(bits, root)
        roots[i, root] = 1.0
    norms = np.linalg.norm(temps, axis=1, keepdims=True)
    return temps / np.maximum(norms, 1e-9), roots


def template_probabilities(
    features: ChordFeatures,
    vocab: tuple[str, ...] = CHORD_VOCAB,
    params: TemplateParams = TemplateParams(),
) -> np.ndarray:
    """Per-frame probabilities [T, V] from bass/treble chroma matched to chord templates."""
    return template_probabilities_from_spectrum(
        semitone_spectrum(features.logcqt), features.silent, vocab, params
    )


def template_probabilities_from_spectrum(
    semitones: np.ndarray,
    silent: np.ndarray,
    vocab: tuple[str, ...] = CHORD_VOCAB,
    params: TemplateParams = TemplateParams(),
) -> np.ndarray:
    """Template scoring on a semitone spectrum [T, 72] (split out so tuning can reuse a cache)."""
    spec = semitones**params.power  # [T, 72]
    octs = spec.reshape(spec.shape[0], N_OCTAVES, 12)
    treble = octs[:, params.treble_octaves[0] : params.treble_octaves[1]].sum(axis=1)
    bass = octs[:, params.bass_octaves[0] : params.bass_octaves[1]].sum(axis=1)
    treble = treble / np.maximum(np.linalg.norm(treble, axis=1, keepdims=True), 1e-9)
    bass = bass / np.maximum(bass.sum(axis=1, keepdims=True), 1e-9)
    temps, roots = _chord_templates(vocab)
    sizes = np.array([max(int(np.count_nonzero(t)), 3) for t in temps]) - 3
    score = (
        treble @ temps.T + params.bass_weight * (bass @ roots.T) - params.seventh_penalty * sizes
    )
    n_idx = vocab.index("N")
    score[:, n_idx] = params.no_chord_score
    score[silent] = -1.0
    score[silent, n_idx] = 1.0
    logits = params.sharpness * score
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
