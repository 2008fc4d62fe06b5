"""Write rendered pieces to disk and build a whole corpus with its JSONL manifest.

Layout: ``DIR/manifest.jsonl`` and, per piece, ``DIR/<name>/mix.wav``,
``DIR/<name>/<instrument>.wav`` and ``DIR/<name>/<name>.mid``. Audio is 32-bit float WAV so
stems sum to the mix exactly; the WAV writer is our own because libsndfile stamps the
time into float files, and the same seed must give the same bytes.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musigen.atomic import atomic_path, write_text
from musigen.data.synth.composition import compose
from musigen.data.synth.orchestration import orchestrate
from musigen.data.synth.render import RENDERERS, RenderedPiece, render
from musigen.errors import ConfigError, DataError, SampleRateError
from musigen.vocab import GENRES, canonical_genre

MANIFEST = "manifest.jsonl"


def write_float_wav(path: Path, wav: np.ndarray, sample_rate: int) -> Path:
    """Mono IEEE-float WAV (fmt + fact + data), byte-for-byte deterministic, atomic."""
    data = np.ascontiguousarray(wav, dtype="<f4").tobytes()
    n = len(wav)
    fmt = struct.pack("<HHIIHHH", 3, 1, sample_rate, sample_rate * 4, 4, 32, 0)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<II", 4, n)
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _r(x: float) -> float:
    return round(float(x), 6)


def write_piece(piece: RenderedPiece, out_dir: Path, name: str) -> dict[str, Any]:
    """Write mix, stems and MIDI of `piece` under ``out_dir/name``; return its manifest record."""
    out_dir = Path(out_dir)
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"invalid piece name {name!r}")
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    sr = piece.sample_rate
    write_float_wav(folder / "mix.wav", piece.mix, sr)
    stems = {}
    for inst, wav in piece.stems.items():
        write_float_wav(folder / f"{inst}.wav", wav, sr)
        stems[inst] = f"{name}/{inst}.wav"
    with atomic_path(folder / f"{name}.mid") as tmp:
        piece.midi.write(str(tmp))
    return {
        "path": f"{name}/mix.wav",
        "stems": stems,
        "midi": f"{name}/{name}.mid",
        "chords": [[_r(s), _r(e), lab] for s, e, lab in piece.chords],
        "sections": [[_r(s), _r(e), lab] for s, e, lab in piece.sections],
        "stem_activity": {
            k: [[_r(s), _r(e)] for s, e in v] for k, v in piece.stem_activity.items()
        },
        "caption": piece.caption,
        "genre": piece.genre,
        "tempo": _r(piece.tempo),
        "key": piece.key,
        "mood": piece.mood,
        "instruments": list(piece.instruments),
        "duration": _r(piece.duration),
        "sample_rate": sr,
        "seed": piece.seed,
        "renderer": piece.renderer,
    }


def piece_genre(seed: int, genres: Sequence[str]) -> str:
    """Genre of the piece with `seed`: cycles through `genres` so a corpus is balanced."""
    return genres[seed % len(genres)]


def render_seed(
    seed: int, duration: float, genre: str, sample_rate: int, renderer: str
) -> RenderedPiece:
    """The piece a corpus builds for `seed` (compose, orchestrate in its genre, render)."""
    comp = compose(seed, duration, genre)
    orch = orchestrate(comp, genre, None, seed)
    return render(comp, orch, sample_rate, renderer)


def build_corpus(
    out_dir: Path,
    n: int,
    duration: float,
    seed: int,
    renderer: str = "builtin",
    sample_rate: int = 16000,
    genres: list[str] | None = None,
    progress: bool = True,
) -> Path:
    """Render `n` pieces (piece i uses seed `seed + i`) and write ``out_dir/manifest.jsonl``."""
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"--n must be a positive integer, got {n!r}")
    if (
        not isinstance(duration, (int, float))
        or not math.isfinite(duration)
        or not 0.5 <= duration <= 3600
    ):
        raise ConfigError(f"--duration must be between 0.5 and 3600 seconds, got {duration!r}")
    if not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 96000:
        raise SampleRateError(
            f"--sample-rate must be an integer from 8000 to 96000 Hz, got {sample_rate!r}"
        )
    if renderer not in RENDERERS:
        raise ConfigError(f"unknown renderer {renderer!r}; choose from {', '.join(RENDERERS)}")
    if renderer == "fluidsynth":
        from musigen.data.synth.fluidsynth import require_fluidsynth

        require_fluidsynth()
    chosen = list(GENRES) if not genres else list(dict.fromkeys(canonical_genre(g) for g in genres))
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"output path {out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    lines = []
    for i in tqdm(range(n), desc="synth", unit="piece", disable=not progress):
        s = seed + i
        piece = render_seed(s, float(duration), piece_genre(s, chosen), sample_rate, renderer)
        record = write_piece(piece, out_dir, f"{i:05d}")
        lines.append(json.dumps(record, sort_keys=True))
    manifest = out_dir / MANIFEST
    write_text(manifest, "\n".join(lines) + "\n")
    return manifest
