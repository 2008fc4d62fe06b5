"""FAD and CLAP score on folders of a user's own audio (`musigen eval fad`, `musigen eval clap-score`).

Why: the held-out sets measure our systems; a user with their own renders or another
model's outputs needs the same numbers on plain folders.  Files are read through
:mod:`musigen.audio` at the embedder's rate, mixed to mono, so any rate or channel count
works.  Only audio suffixes count (so a WAV's JSON sidecar beside it is not an error);
a missing or empty folder, a file that does not decode, or prompts that do not match the
files fail with one clear :class:`~musigen.errors.MusigenError`.

Prompts for the CLAP score come in one of two forms, told apart by the file's suffix:

- ``.jsonl``: one object per line, ``{"file": "a.wav", "prompt": "..."}``, file names
  relative to the folder; every audio file of the folder must appear exactly once;
- anything else: plain text, one prompt per non-empty line, matched in order to the folder's
  audio files sorted by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musigen.errors import CheckpointError, DataError

#: Suffixes read as audio (what libsndfile decodes); other files in a folder are ignored.
AUDIO_SUFFIXES: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"})


@dataclass
class FolderEmbedder:
    """Per-window embeddings of mono audio at `sample_rate`, under a readable `name`."""

    name: str
    sample_rate: int
    embed: Callable[[np.ndarray, int], np.ndarray]


def audio_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The folder's audio files sorted by name; DataError if it is missing or holds none."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"audio folder not found: {root}")
    files = sorted(p for p in root.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise DataError(f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in {root}")
    return files


def load_mono(path: Path, sample_rate: int) -> np.ndarray:
    """One file as mono float32 [samples] at `sample_rate` (errors name the file)."""
    from musigen.audio import load_audio

    wav, _ = load_audio(path, sample_rate=sample_rate, channels=1)
    return np.asarray(wav, dtype=np.float32)[0]


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(-1, a.shape[-1])


def load_folder_embedder(spec: str = "clap") -> FolderEmbedder:
    """`clap` (the shipped demo CLAP), `judge` (the shipped instrument judge), or a folder of either.

    A folder is told apart by its config.json: a musigen or transformers CLAP, else a judge.
    """
    if spec == "judge":
        return _judge_embedder(None)
    if spec == "clap":
        return _clap_embedder("demo")
    path = Path(spec).expanduser()
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"embedder must be 'clap', 'judge' or a model folder with a config.json; got {spec}")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"corrupt {config_path}: {exc.msg}") from None
    if isinstance(config, dict) and (config.get("embedder") == "musigen_clap" or config.get("model_type") == "clap"):
        return _clap_embedder(str(path))
    return _judge_embedder(path)


def load_clap(spec: str = "clap") -> Any:
    """An audio-text embedder for the CLAP score: `clap` (the shipped demo) or a CLAP folder / hub id."""
    from musigen.embedders.clap import load_embedder

    model = load_embedder("demo" if spec == "clap" else spec)
    model.eval()
    return model


def _clap_embedder(spec: str) -> FolderEmbedder:
    import torch

    model = load_clap(spec)
    # the window a musigen CLAP was trained on (its config says); 10 s, CLAP's own, otherwise
    window = getattr(getattr(model, "config", None), "window_s", None)
    window_s = float(window) if isinstance(window, (int, float)) and window > 0 else 10.0

    def embed(wav: np.ndarray, sr: int) -> np.ndarray:
        with torch.no_grad():
            return _as_array(model.embed_audio(wav, sr, window_s=window_s))

    name = getattr(model, "name", None) or f"musigen CLAP ({spec})"
    return FolderEmbedder(str(name), int(model.sample_rate), embed)


def _judge_embedder(path: Path | None) -> FolderEmbedder:
    from musigen.judge.model import load_judge

    judge = load_judge(path)
    return FolderEmbedder(judge.name, int(judge.config.sample_rate),
                          lambda wav, sr: _as_array(judge.analyze(wav, sr).embeddings))


def folder_embeddings(folder: str | os.PathLike[str], embedder: FolderEmbedder) -> np.ndarray:
    """Every window embedding of every audio file in the folder, stacked [N, D]."""
    rows = [embedder.embed(load_mono(p, embedder.sample_rate), embedder.sample_rate)
            for p in audio_files(folder)]
    return np.concatenate(rows, axis=0)


def folder_fad(reference: str | os.PathLike[str], test: str | os.PathLike[str],
               embedder: FolderEmbedder) -> Any:
    """FAD between the window embeddings of two folders (a :class:`FadResult`)."""
    from musigen.eval.metrics.fad import fad_from_embeddings

    ref = folder_embeddings(reference, embedder)
    tst = folder_embeddings(test, embedder)
    if min(len(ref), len(tst)) < 2:
        raise DataError(f"FAD needs at least two embedding windows a side, got {len(ref)} and {len(tst)} "
                        "(add files or longer audio)")
    return fad_from_embeddings(ref, tst, embedder.name)


def read_prompts(prompts: str | os.PathLike[str], files: Sequence[Path]) -> list[str]:
    """The prompt of each file, in the order of `files` (see the module docstring for the formats)."""
    path = Path(prompts)
    if not path.is_file():
        raise DataError(f"prompts file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read prompts file {path}: {exc}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if path.suffix.lower() != ".jsonl":
        if len(lines) != len(files):
            raise DataError(f"{path} holds {len(lines)} prompts for {len(files)} audio files "
                            "(one prompt per line, in sorted file-name order)")
        return lines
    by_name: dict[str, str] = {}
    for i, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{i}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("file"), str) or not isinstance(row.get("prompt"), str):
            raise DataError(f"{path}:{i}: expected {{\"file\": ..., \"prompt\": ...}} with string values")
        if row["file"] in by_name:
            raise DataError(f"{path}:{i}: {row['file']} is listed twice")
        by_name[row["file"]] = row["prompt"]
    names = [f.name for f in files]
    missing = [n for n in names if n not in by_name]
    extra = sorted(set(by_name) - set(names))
    if missing or extra:
        raise DataError(f"{path} does not match the folder: "
                        + "; ".join(([f"no prompt for {', '.join(missing[:3])}"] if missing else [])
                                    + ([f"no audio file {', '.join(extra[:3])}"] if extra else [])))
    return [by_name[n] for n in names]


def folder_clap_score(folder: str | os.PathLike[str], prompts: str | os.PathLike[str], model: Any,
                      name: str | None = None) -> Any:
    """Mean cosine of each file's audio with its prompt (a :class:`ClapScore`), in [-1, 1]."""
    import torch

    from musigen.eval.metrics.clap_score import clap_score

    files = audio_files(folder)
    texts = read_prompts(prompts, files)
    rate = int(model.sample_rate)
    wavs = [load_mono(p, rate) for p in files]
    with torch.no_grad():
        return clap_score(model, texts, wavs, rate, name)
