"""Exception types for every public entry point.

The CLI catches :class:`MusigenError` and prints its message as one line with exit code 2,
so each subclass message must be a complete, user-facing sentence.
"""

from __future__ import annotations


class MusigenError(Exception):
    """Base class: a problem with the user's input, file or checkpoint (not a bug)."""


class AudioError(MusigenError):
    """Audio input could not be used."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio path does not exist or is a directory."""


class AudioDecodeError(AudioError):
    """The file exists but is not decodable audio (wrong format, truncated, corrupt)."""


class EmptyAudioError(AudioError):
    """The audio has zero samples."""


class NonFiniteAudioError(AudioError):
    """The audio holds NaN or Inf samples."""


class ChannelCountError(AudioError):
    """The audio has more channels than supported, or a channel count that cannot be converted."""


class SampleRateError(AudioError):
    """The sample rate is invalid or not what a model expects."""


class CheckpointError(MusigenError):
    """A checkpoint folder or file is missing, truncated, or does not match its config."""


class ConfigError(MusigenError):
    """A configuration value is invalid."""


class VocabularyError(MusigenError):
    """An instrument, genre or tag is not in the model's vocabulary."""


class DataError(MusigenError):
    """A dataset folder, manifest or shard is missing or malformed."""


def shorten(text: object, limit: int = 80) -> str:
    """`text` as repr-quoted user input cut to about `limit` characters (with an ellipsis),
    so an error about a 100k-character instruction or path stays one readable line."""
    value = str(text)
    if len(value) > limit:
        value = value[: limit - 1] + "\u2026"
    return repr(value)
