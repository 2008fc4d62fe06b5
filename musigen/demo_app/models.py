"""The models behind the demo, loaded lazily so the page serves even when one is missing.

The shipped demo checkpoints may not exist yet (they are trained in the background), and a
user may pass only one of ``--model-gen`` / ``--model-edit``.  Each tab therefore loads its
model on first use and turns a missing folder into a one-line :class:`CheckpointError` that
the page shows; the other tabs keep working.  The Analyze tab falls back to the shipped CLAP
(``checkpoints/clap_demo``) when no generation model is there to lend its thought view.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musigen.errors import CheckpointError, MusigenError


@dataclass(frozen=True)
class ModelPaths:
    """Where the two pipelines live; None means the shipped demo checkpoint (as the CLI)."""

    gen: Path | None = None
    edit: Path | None = None

    def gen_dir(self) -> Path:
        from musigen.musicot.pipeline import demo_dir

        return Path(self.gen).expanduser() if self.gen is not None else demo_dir()

    def edit_dir(self) -> Path:
        from musigen.instructme.pipeline import demo_dir

        return Path(self.edit).expanduser() if self.edit is not None else demo_dir()


def _missing(kind: str, path: Path, default: bool, flag: str) -> CheckpointError:
    if default:
        from musigen.checkpoints import missing_message

        return CheckpointError(f"the demo {kind} checkpoint: {missing_message(path.name)}, "
                               f"or start the demo with {flag} DIR")
    return CheckpointError(f"{kind} model folder not found: {path} (check {flag})")


class DemoModels:
    """Lazily loaded MusiCoT / InstructME pipelines and the analysis embedder, shared by all
    sessions (Gradio runs one event at a time per handler, and loading is under a lock)."""

    def __init__(self, paths: ModelPaths, device: str = "cpu") -> None:
        self.paths, self.device = paths, device
        self._lock = threading.Lock()
        self._gen: Any = None
        self._edit: Any = None
        self._analyzer: tuple[Any, Any] | None = None

    def generator(self) -> Any:
        """The MusiCoT pipeline (CheckpointError when its folder is missing or broken)."""
        from musigen.musicot.pipeline import MusiCoTPipeline

        with self._lock:
            if self._gen is None:
                path = self.paths.gen_dir()
                if not path.is_dir():
                    raise _missing("MusiCoT", path, self.paths.gen is None, "--model-gen")
                self._gen = MusiCoTPipeline.from_pretrained(path, device=self.device)
            return self._gen

    def editor(self) -> Any:
        """The InstructME pipeline (CheckpointError when its folder is missing or broken)."""
        from musigen.instructme.pipeline import InstructMEPipeline

        with self._lock:
            if self._edit is None:
                path = self.paths.edit_dir()
                if not path.is_dir():
                    raise _missing("InstructME", path, self.paths.edit is None, "--model-edit")
                self._edit = InstructMEPipeline.from_pretrained(path, device=self.device)
            return self._edit

    def analyzer(self) -> tuple[Any, Any]:
        """(embedder, thought tokenizer or None): the generator's thought view when it
        exists, else the shipped demo CLAP."""
        from musigen.musicot.pipeline import load_analyzer

        with self._lock:
            if self._analyzer is None:
                if self._gen is not None:
                    self._analyzer = (self._gen.embedder, self._gen.tokenizer)
                else:
                    path = self.paths.gen_dir()
                    self._analyzer = load_analyzer(path if path.is_dir() else None)
            return self._analyzer

    def status(self) -> list[tuple[str, str, bool]]:
        """(role, folder, present) per model, for the page's banner; loads nothing."""
        rows = []
        for role, path in (("generation (MusiCoT)", self.paths.gen_dir()),
                           ("editing (InstructME)", self.paths.edit_dir())):
            rows.append((role, str(path), (path / "pipeline.json").is_file()))
        return rows

    def preload(self) -> list[str]:
        """Load every model that is present; returns one line per problem (for the console)."""
        problems = []
        for load in (self.generator, self.editor, self.analyzer):
            try:
                load()
            except MusigenError as exc:
                problems.append(str(exc))
        return problems

    def sampling_defaults(self) -> Any:
        """The generator's default SamplingParams, read from pipeline.json without weights."""
        from musigen import hub
        from musigen.musicot.pipeline import PIPELINE_NAME, MusiCoTPipelineConfig

        path = self.paths.gen_dir()
        try:
            return hub.load_config(path, MusiCoTPipelineConfig, PIPELINE_NAME).sampling
        except MusigenError:
            return MusiCoTPipelineConfig().sampling

    def edit_defaults(self) -> Any:
        """The editor's default EditParams (steps, guidance scales, ...), without weights."""
        from musigen import hub
        from musigen.instructme.pipeline import PIPELINE_NAME, InstructMEPipelineConfig

        try:
            folder = self.paths.edit_dir()
            return hub.load_config(folder, InstructMEPipelineConfig, PIPELINE_NAME).params
        except MusigenError:
            return InstructMEPipelineConfig().params
