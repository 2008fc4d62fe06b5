"""Chord recognition front: audio -> features -> frame scores -> Viterbi -> Harte segments.

Two scorers share one front end (:mod:`~musigen.chords.features`) and one decoder
(:mod:`~musigen.chords.decoding`):

- the learned recogniser (:mod:`~musigen.chords.model`), preferred because templates alone
  confuse relative majors and minors and suffer from drums;
- the template scorer (:mod:`~musigen.chords.templates`), which needs nothing on disk.

Which one runs is the caller's `method`: ``"model"`` (a given recogniser, a given folder, or
the shipped default, else a CheckpointError naming where it comes from), ``"templates"``, or
``"auto"`` (the learned one when it can be found, else templates, with a warning saying so).
A pipeline that depends on its recogniser carries it (the InstructME pipeline's ``chords/``
component) and passes it in as `model`, so it never depends on where the source tree is.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from musigen.checkpoints import CHECKPOINTS_ENV, expected_checkpoint
from musigen.chords.decoding import path_to_segments, viterbi_decode
from musigen.chords.features import chord_features
from musigen.chords.labels import CHORD_VOCAB
from musigen.chords.model import ChordRecognizer
from musigen.chords.templates import TEMPLATE_SELF_TRANSITION, template_probabilities
from musigen.errors import CheckpointError, ConfigError

#: The ways of choosing a scorer (see the module docstring).
METHODS: tuple[str, ...] = ("auto", "model", "templates")
#: Environment variable that points the default recogniser elsewhere.
CHECKPOINT_ENV = "MUSIGEN_CHORDS_CHECKPOINT"
#: Environment variable naming a folder laid out as the repository's checkpoints/.
CHECKPOINTS_ROOT_ENV = CHECKPOINTS_ENV


def default_checkpoint() -> Path:
    """Where the shipped learned recogniser lives: ``$MUSIGEN_CHORDS_CHECKPOINT``, else
    ``chords`` found as every default checkpoint is (:mod:`musigen.checkpoints`: under
    ``$MUSIGEN_CHECKPOINTS``, then the source checkout's ``checkpoints/``).  When it is in
    neither, the first place looked (callers fall back to the templates or say so).

    The repository's folder sits beside the package in a source checkout and is not part of
    an installed wheel.
    """
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        return Path(env)
    return expected_checkpoint("chords")


def missing_default_message(folder: Path) -> str:
    """One line saying the default recogniser is absent, where it comes from and what to do."""
    return (
        f"no learned chord model at {folder}: the shipped one is checkpoints/chords in the "
        "musigen repository's checkpoints/ folder (an installed package does not carry it); "
        f"pass a chord model folder, set {CHECKPOINT_ENV} (or {CHECKPOINTS_ROOT_ENV} to a copy "
        "of that checkpoints/ folder), or use the 'templates' method"
    )


_MODEL_CACHE: dict[tuple[str, float], ChordRecognizer] = {}


def cached_chord_model(folder: str | os.PathLike[str]) -> ChordRecognizer:
    """Load a learned recogniser once per folder and weights mtime (eval calls this per piece)."""
    path = Path(folder)
    weights = path / "model.safetensors"
    key = (str(path.resolve()), weights.stat().st_mtime if weights.is_file() else -1.0)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = ChordRecognizer.from_pretrained(path)
    return _MODEL_CACHE[key]


def resolve_recognizer(
    method: str = "auto",
    checkpoint: str | os.PathLike[str] | None = None,
    model: ChordRecognizer | None = None,
) -> ChordRecognizer | None:
    """The learned recogniser `method` asks for, or None for templates.

    A given `model` wins, then a given `checkpoint` (which must load); only the default
    location may be absent, and then "model" is an error and "auto" warns and uses templates.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be 'auto', 'model' or 'templates', got {method!r}")
    if method == "templates":
        return None
    if model is not None:
        return model
    if checkpoint is not None:
        return cached_chord_model(checkpoint)
    folder = default_checkpoint()
    if (folder / "model.safetensors").is_file():
        return cached_chord_model(folder)
    if method == "model":
        raise CheckpointError(missing_default_message(folder))
    warnings.warn(
        missing_default_message(folder) + "; using the template recogniser", stacklevel=3
    )
    return None


def recognize_chords(
    wav: np.ndarray,
    sample_rate: int,
    *,
    method: str = "auto",
    checkpoint: str | os.PathLike[str] | None = None,
    model: ChordRecognizer | None = None,
    self_transition: float | None = None,
) -> list[tuple[float, float, str]]:
    """Recognise chords in audio; returns contiguous (start_s, end_s, harte_label) segments.

    `method` is "auto", "model" or "templates" (see :func:`resolve_recognizer`); `model` is
    an already loaded recogniser (a pipeline's own), `checkpoint` a folder to load one from.
    Audio is float32 mono or [channels, samples].
    """
    if method not in METHODS:
        raise ConfigError(f"method must be 'auto', 'model' or 'templates', got {method!r}")
    features = chord_features(wav, sample_rate)
    recognizer = resolve_recognizer(method, checkpoint, model)
    if recognizer is not None:
        probs = recognizer.frame_probabilities(features)
        vocab = recognizer.vocab
        stay = recognizer.config.self_transition if self_transition is None else self_transition
    else:
        vocab = CHORD_VOCAB
        probs = template_probabilities(features, vocab)
        stay = TEMPLATE_SELF_TRANSITION if self_transition is None else self_transition
    path = viterbi_decode(probs, stay)
    return path_to_segments(path, features.frame_rate, features.duration, vocab)
