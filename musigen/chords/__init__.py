"""Chords: audio -> Harte chord labels, and labels -> a chord matrix at any frame rate.

The modules, bottom up (each imports only those above it)::

    labels     the chord alphabet (Harte labels, vocabularies, normalisation)
    features   audio -> log-CQT -> semitone chroma (the shared front end)
    templates  the no-training scorer
    decoding   frame probabilities -> segments (sticky-HMM Viterbi)
    model      the learned scorer (network, save/load as config.json + safetensors)
    recognize  the front: method "auto" / "model" / "templates"
    matrix     labels -> one-hot chord matrix (InstructME's chord condition)
    lab        .lab files

This package sits in a low layer: it imports no model, eval or training code.  Training the
learned scorer lives in :mod:`musigen.training.chord_trainer` (``musigen train chords``).
"""

from musigen.chords.decoding import path_to_segments, viterbi_decode
from musigen.chords.features import (
    ANALYSIS_RATE,
    FRAME_RATE,
    HOP_LENGTH,
    N_OCTAVES,
    ChordFeatures,
    chord_features,
    semitone_spectrum,
)
from musigen.chords.lab import read_lab, write_lab
from musigen.chords.labels import (
    CHORD_VOCAB,
    MAJMIN_VOCAB,
    QUALITIES,
    QUALITY_INTERVALS,
    ROOTS,
    majmin_label,
    normalize_label,
)
from musigen.chords.matrix import chord_matrix
from musigen.chords.model import (
    ChordModelConfig,
    ChordNet,
    ChordRecognizer,
    load_chord_model,
    model_input,
)
from musigen.chords.recognize import (
    CHECKPOINT_ENV,
    CHECKPOINTS_ROOT_ENV,
    METHODS,
    cached_chord_model,
    default_checkpoint,
    missing_default_message,
    recognize_chords,
    resolve_recognizer,
)
from musigen.chords.templates import (
    TEMPLATE_SELF_TRANSITION,
    TemplateParams,
    template_probabilities,
    template_probabilities_from_spectrum,
)

__all__ = [
    "ANALYSIS_RATE",
    "CHECKPOINT_ENV",
    "CHECKPOINTS_ROOT_ENV",
    "CHORD_VOCAB",
    "FRAME_RATE",
    "HOP_LENGTH",
    "MAJMIN_VOCAB",
    "METHODS",
    "N_OCTAVES",
    "QUALITIES",
    "QUALITY_INTERVALS",
    "ROOTS",
    "TEMPLATE_SELF_TRANSITION",
    "ChordFeatures",
    "ChordModelConfig",
    "ChordNet",
    "ChordRecognizer",
    "TemplateParams",
    "cached_chord_model",
    "chord_features",
    "chord_matrix",
    "default_checkpoint",
    "load_chord_model",
    "majmin_label",
    "missing_default_message",
    "model_input",
    "normalize_label",
    "path_to_segments",
    "read_lab",
    "recognize_chords",
    "resolve_recognizer",
    "semitone_spectrum",
    "template_probabilities",
    "template_probabilities_from_spectrum",
    "viterbi_decode",
    "write_lab",
]
