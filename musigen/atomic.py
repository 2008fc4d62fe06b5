"""Atomic file writes: write to a temporary sibling, then rename.

A crash or a bad input mid-way must never leave a half-written output or clobber an
existing good file, so every writer in musigen goes through :func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _temporary_beside(target: Path, suffix: str | None) -> Path:
    """An empty temporary file in `target`'s folder, with the permissions open() would give."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.tmp-", suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give outputs the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def _commit(targets: list[Path], tmps: list[Path]) -> None:
    """Rename every temporary onto its target, or (on any failure) leave the targets as they were.

    With several targets, a target that already exists is first moved aside and put back if
    a later rename fails, so a file and its sidecar are replaced together or not at all.
    """
    if len(targets) == 1:
        os.replace(tmps[0], targets[0])
        return
    moved_aside: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for target, tmp in zip(targets, tmps):
            if target.exists() or target.is_symlink():
                aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
                os.replace(target, aside)
                moved_aside.append((target, aside))
            os.replace(tmp, target)
            placed.append(target)
    except BaseException:
        for target in placed:
            with contextlib.suppress(OSError):
                target.unlink()
        for target, aside in moved_aside:
            with contextlib.suppress(OSError):
                os.replace(aside, target)
        raise
    for _, aside in moved_aside:
        with contextlib.suppress(OSError):
            aside.unlink()


@contextlib.contextmanager
def atomic_group(*paths: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Yield one temporary path per target; on success rename them all, on failure remove them all.

    For outputs that belong together (a WAV and its JSON sidecar): a failure at any point,
    a full disk while writing or a failed rename, leaves neither file nor any temporary.
    """
    targets = [Path(p) for p in paths]
    tmps: list[Path] = []
    try:
        for target in targets:
            tmps.append(_temporary_beside(target, None))
        yield tmps
        _commit(targets, tmps)
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    `suffix` defaults to the target's own suffix so that libraries which pick a format
    from the file extension (soundfile, safetensors) still see the right one.
    """
    target = Path(path)
    tmp = _temporary_beside(target, suffix)
    try:
        yield tmp
        _commit([target], [tmp])
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write `obj` as pretty JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
