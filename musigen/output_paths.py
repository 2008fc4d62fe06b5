"""Where a command may write: never over the user's files unless asked, never onto an input.

Every command that writes files goes through here *before* its work starts, so a taken
name, an output that is also an input, a read-only folder or a full disk is a one-line
error (exit 2) and not a surprise after minutes of sampling.  The rules:

- An existing output **or its sidecar** (the ``.json`` beside a WAV) is refused unless the
  user passed ``--overwrite``.
- Writing onto an input (the audio, the reference, the codes file, the prompts file) is
  refused even with ``--overwrite``: paths are compared resolved and with
  :func:`os.path.samefile`, so symlinks and hard links are caught too.
- Without an explicit output, :func:`free_name` picks the first free name
  (``x_edit.wav``, ``x_edit-2.wav``, ...), checking sidecars as well.
- The output folder must be writable (or creatable) and hold the estimated bytes.

The write itself is atomic and all-or-nothing (:func:`musigen.atomic.atomic_group`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from musigen.errors import ConfigError

#: Slack on top of a size estimate: sidecars, headers, filesystem rounding.
SPACE_MARGIN_BYTES: int = 1 << 20
#: Most numbered alternatives :func:`free_name` tries before giving up.
MAX_FREE_NAME_TRIES: int = 10_000
OVERWRITE_HELP = ("replace existing output files (and their .json sidecars); an input file "
                  "is never overwritten")


class OutputError(ConfigError):
    """An output path is taken, is an input, or cannot be written."""


def add_overwrite_flag(parser: argparse.ArgumentParser) -> None:
    """The shared ``--overwrite`` flag of every command that writes files."""
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def audio_sidecar(path: Path) -> Path:
    """The provenance sidecar of an audio output (same stem, ``.json``)."""
    return Path(path).with_suffix(".json")


def _same_file(a: Path, b: Path) -> bool:
    """True when `a` and `b` name one file: equal resolved paths, or (both existing) one inode."""
    try:
        if a.resolve() == b.resolve():
            return True
    except OSError:  # a symlink loop: compare by inode below
        pass
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _existing_ancestor(path: Path) -> Path:
    """The nearest folder at or above `path`'s parent that exists (where it will be created)."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_folder(path: Path, need_bytes: int = 0) -> None:
    """Refuse an output whose folder cannot be created or written, or lacks `need_bytes` free."""
    folder = _existing_ancestor(path)
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: {folder} is not a folder")
    try:  # a real probe: permission bits say nothing for root or a read-only mount
        fd, probe = tempfile.mkstemp(prefix=".musigen-write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: the folder {folder} is not writable "
                          f"({exc.strerror or exc})") from None
    if need_bytes > 0:
        free = shutil.disk_usage(folder).free
        if free < need_bytes + SPACE_MARGIN_BYTES:
            raise OutputError(
                f"not enough free space for {path}: about {_mb(need_bytes + SPACE_MARGIN_BYTES)} "
                f"needed, {_mb(free)} free in {folder}")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def check_output(path: Path, *, inputs: Iterable[Path | None] = (), overwrite: bool = False,
                 sidecar: bool = False, need_bytes: int = 0, flag: str = "--out") -> Path:
    """Check that `path` (and with `sidecar`, its ``.json``) may be written; return `path`.

    Raises :class:`OutputError` (one line) if it is an input (always), exists without
    `overwrite`, is a folder, or its folder is read-only or too full for `need_bytes`.
    """
    path = Path(path)
    targets = [path] + ([audio_sidecar(path)] if sidecar and audio_sidecar(path) != path else [])
    given = [Path(p) for p in inputs if p is not None]
    for target in targets:
        for source in given:
            if _same_file(target, source):
                what = "" if target == path else f" (the sidecar of {flag} {path})"
                raise OutputError(f"refusing to write {target}{what}: it is an input of this "
                                  "command; choose another output name")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder ({flag} needs a file name)")
    if not overwrite:
        for target in targets:
            if target.exists() or target.is_symlink():
                what = "" if target == path else f" (the sidecar of {path})"
                raise OutputError(f"{target}{what} already exists; pass --overwrite to replace "
                                  "it, or choose another name")
    check_folder(path, need_bytes)
    return path


def check_folder_output(folder: Path, *, overwrite: bool = False, flag: str = "--out") -> Path:
    """An output *folder* whose files a command writes: refused if it already holds any."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{flag} {folder} exists and is not a folder")
    if not overwrite and folder.is_dir() and any(folder.iterdir()):
        raise OutputError(f"{flag} folder {folder} is not empty; pass --overwrite to write into "
                          "it anyway, or choose another folder")
    check_folder(folder / "probe")
    return folder


def free_name(base: Path, *, sidecar: bool = False, taken: Iterable[Path] = ()) -> Path:
    """`base` if it (and with `sidecar`, its ``.json``) is free, else ``<stem>-2<suffix>``, ...

    `taken` holds names already promised to other outputs of the same run.
    """
    base = Path(base)
    promised = {p.absolute() for p in taken}
    for n in range(1, MAX_FREE_NAME_TRIES + 1):
        candidate = base if n == 1 else base.with_name(f"{base.stem}-{n}{base.suffix}")
        names = [candidate] + ([audio_sidecar(candidate)] if sidecar else [])
        if not any(p.exists() or p.is_symlink() or p.absolute() in promised for p in names):
            return candidate
    raise OutputError(f"no free output name like {base} after {MAX_FREE_NAME_TRIES} tries; "
                      "pass --out")


def check_distinct(paths: Sequence[Path], sidecar: bool = False) -> None:
    """Refuse two outputs of one run that would land on the same file (or sidecar)."""
    seen: dict[Path, Path] = {}
    for path in paths:
        names = [Path(path)] + ([audio_sidecar(Path(path))] if sidecar else [])
        for name in names:
            key = name.absolute()
            if key in seen:
                raise OutputError(f"two outputs of this run would both write {name} "
                                  f"({seen[key]} and {path}); give them different names")
            seen[key] = Path(path)


def audio_bytes(duration_s: float, sample_rate: int, channels: int = 1,
                bytes_per_sample: int = 4) -> int:
    """Size estimate of an uncompressed audio output (float32 WAV by default)."""
    return int(max(0.0, duration_s) * sample_rate * channels * bytes_per_sample) + 4096
