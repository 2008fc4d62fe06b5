"""Where the shipped default checkpoints are found: one search order for every default.

The demo checkpoints (`codec_demo`, `clap_demo`, `musicot_demo`, `instructme_demo`, `chords`,
`judge_codec`, ...) live in the repository's `checkpoints/` folder.  A source checkout (or an
editable install) finds them beside the package; an installed wheel does not carry them, so
`$MUSIGEN_CHECKPOINTS` can point at a copy of that folder.  The search order is:

1. ``$MUSIGEN_CHECKPOINTS/<name>``;
2. ``<source checkout>/checkpoints/<name>``, when the package sits in a source checkout.

A default that is found in neither is one line that names both places.
"""

from __future__ import annotations

import os
from pathlib import Path

from musigen.errors import CheckpointError

#: Environment variable naming a folder laid out as the repository's checkpoints/.
CHECKPOINTS_ENV = "MUSIGEN_CHECKPOINTS"
#: The folder that holds the `musigen` package; a source checkout when it has pyproject.toml.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def source_checkpoints() -> Path | None:
    """The source checkout's `checkpoints/` folder, or None for an installed package."""
    if (PACKAGE_PARENT / "pyproject.toml").is_file():
        return PACKAGE_PARENT / "checkpoints"
    return None


def candidates(name: str) -> list[Path]:
    """Every place `name` is looked for, in search order."""
    roots: list[Path] = []
    env = os.environ.get(CHECKPOINTS_ENV)
    if env:
        roots.append(Path(env).expanduser())
    source = source_checkpoints()
    if source is not None:
        roots.append(source)
    return [root / name for root in roots]


def find_checkpoint(name: str) -> Path | None:
    """The first existing `<root>/<name>` folder in search order, else None."""
    return next((path for path in candidates(name) if path.is_dir()), None)


def expected_checkpoint(name: str) -> Path:
    """Where `name` is, or else where it would be looked for first (for callers that show
    the place or fall back to something else when it is absent)."""
    found = find_checkpoint(name)
    if found is not None:
        return found
    places = candidates(name)
    return places[0] if places else PACKAGE_PARENT / "checkpoints" / name


def missing_message(name: str) -> str:
    """One line: `name` is missing, where it was looked for and where it comes from."""
    env = os.environ.get(CHECKPOINTS_ENV)
    source = source_checkpoints()
    looked = [f"not in ${CHECKPOINTS_ENV}={env}" if env else f"${CHECKPOINTS_ENV} is not set",
              f"not in the source checkout's {source}" if source is not None
              else "an installed package has no checkpoints/ beside it"]
    return (f"default checkpoint {name!r} not found ({'; '.join(looked)}): the demo "
            "checkpoints come with the musigen repository's checkpoints/ folder; set "
            f"{CHECKPOINTS_ENV} to that folder (or a copy of it)")


def default_checkpoint(name: str, alternative: str | None = None) -> Path:
    """The folder of the shipped checkpoint `name`; a one-line CheckpointError when absent,
    ending with `alternative` (e.g. ``"pass --model DIR"``) when the caller has one."""
    found = find_checkpoint(name)
    if found is None:
        or_else = f", or {alternative}" if alternative else ""
        raise CheckpointError(missing_message(name) + or_else)
    return found
