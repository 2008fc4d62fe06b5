"""The edit history of one browser session: every version, which one is current, its parent.

Multi-round editing in the demo is a tree, not a list: restoring version 1 and editing it
again adds a new version whose parent is 1, and the versions edited from the old current
one stay playable.  The history is immutable (each operation returns a new one) because
Gradio keeps it as per-session state and compares old and new values to re-render.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from musigen.errors import ConfigError

Chords = tuple[tuple[float, float, str], ...]


@dataclass(frozen=True)
class Version:
    """One playable version: a WAV on disk, how it came to be, and its chords once known."""

    index: int
    path: str
    label: str
    instruction: str | None = None  # None for a source (upload or generated piece)
    parent: int | None = None
    chords: Chords | None = None

    def title(self) -> str:
        """A short heading such as ``v2 · "add piano" (from v1)``."""
        if self.instruction is None:
            return f"v{self.index} · {self.label}"
        return f'v{self.index} · "{self.instruction}" (from v{self.parent})'


@dataclass(frozen=True)
class EditHistory:
    """All versions of this session, in creation order, and the index of the current one."""

    versions: tuple[Version, ...] = field(default_factory=tuple)
    current: int = -1

    @classmethod
    def start(cls, path: str, label: str) -> EditHistory:
        """A fresh history whose only version is the source piece."""
        return cls((Version(0, str(path), label),), 0)

    @property
    def empty(self) -> bool:
        return not self.versions

    def current_version(self) -> Version:
        if self.empty:
            raise ConfigError("nothing to edit yet: upload a piece or take the generated one")
        return self.versions[self.current]

    def add(self, path: str, instruction: str, chords: Chords | None = None) -> EditHistory:
        """Append the result of editing the current version and make it current."""
        parent = self.current_version()
        version = Version(len(self.versions), str(path), "edit", instruction, parent.index, chords)
        return EditHistory(self.versions + (version,), version.index)

    def restore(self, index: int) -> EditHistory:
        """Make an earlier (or any) version current; the next edit applies to it."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise ConfigError(f"version must be an integer, got {index!r}")
        if not 0 <= index < len(self.versions):
            raise ConfigError(f"no version v{index}: the history holds v0..v{len(self.versions) - 1}"
                              if self.versions else "the history is empty")
        return dataclasses.replace(self, current=index)

    def with_chords(self, index: int, chords: Chords) -> EditHistory:
        """Remember the chords of a version (read once, shown whenever it is compared)."""
        versions = list(self.versions)
        versions[index] = dataclasses.replace(versions[index], chords=tuple(chords))
        return dataclasses.replace(self, versions=tuple(versions))

    def lineage(self, index: int) -> list[int]:
        """The chain of edits that led to a version, source first (v0 -> ... -> index)."""
        chain = [index]
        while self.versions[chain[-1]].parent is not None:
            chain.append(self.versions[chain[-1]].parent)  # type: ignore[arg-type]
        return chain[::-1]
