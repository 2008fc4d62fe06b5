"""Optional FluidSynth General MIDI backend (pyfluidsynth + libfluidsynth + a GM soundfont).

It renders each instrument's MIDI track on its own so the stems stay separate; the
soundfont defaults to the TimGM6mb.sf2 that pretty_midi ships. Used only on request:
the built-in renderer has no system dependency.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pretty_midi

from musigen.data.synth.orchestration import Orchestration
from musigen.errors import ConfigError, MusigenError

_INSTALL = (
    "install it with `apt-get install libfluidsynth3` and `pip install pyfluidsynth`, "
    "or use --renderer builtin"
)


def soundfont_path() -> Path:
    """MUSIGEN_SOUNDFONT if set, else the GM soundfont bundled with pretty_midi."""
    env = os.environ.get("MUSIGEN_SOUNDFONT")
    path = Path(env) if env else Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise ConfigError(f"soundfont {path} not found; set MUSIGEN_SOUNDFONT to a .sf2 file")
    return path


def require_fluidsynth() -> None:
    """Raise a one-line MusigenError unless pyfluidsynth and libfluidsynth both load."""
    try:
        import fluidsynth  # noqa: F401
    except ImportError as exc:  # pyfluidsynth missing, or its shared library missing
        raise MusigenError(f"the fluidsynth renderer is unavailable ({exc}); {_INSTALL}") from None
    except OSError as exc:
        raise MusigenError(f"the fluidsynth renderer is unavailable ({exc}); {_INSTALL}") from None
    if not hasattr(fluidsynth, "Synth"):
        raise MusigenError(
            f"the fluidsynth renderer is unavailable (the `fluidsynth` module is not "
            f"pyfluidsynth); {_INSTALL}"
        )
    soundfont_path()


def render_stems(
    midi: pretty_midi.PrettyMIDI, orch: Orchestration, sr: int, n: int
) -> dict[str, np.ndarray]:
    """One stem per MIDI track, rendered by FluidSynth and cut/padded to n samples."""
    require_fluidsynth()
    sf2 = str(soundfont_path())
    stems: dict[str, np.ndarray] = {}
    for inst, track in zip(orch.instruments, midi.instruments):
        audio = track.fluidsynth(fs=sr, synthesizer=sf2) if track.notes else np.zeros(0)
        out = np.zeros(n, dtype=np.float32)
        m = min(n, len(audio))
        out[:m] = np.asarray(audio[:m], dtype=np.float32)
        stems[inst] = out
    return stems
