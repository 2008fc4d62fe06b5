"""The same prompt, seed and settings give the same samples at any thread count.

The LM's float32 matrix products split their sums by the thread count, so its logits (and
the codec's output) differ in the last bits between 1 and 2 threads; guidance amplifies that
into other sampled tokens.  The sampling path therefore runs at one thread whatever the
caller set (musigen.threads); these tests hold the CLI and the Python call to that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from musigen.cli import main
from musigen.limits import core_count
from musigen.threads import SAMPLING_THREADS, sampling_threads

THREADS = sorted({1, min(2, core_count()), core_count()})


@pytest.fixture(scope="module")
def tiny_musicot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musicot_tiny import save_tiny_pipeline

    torch.set_num_threads(1)
    return save_tiny_pipeline(tmp_path_factory.mktemp("musicot"))


def test_sampling_threads_pins_and_restores() -> None:
    torch.set_num_threads(max(THREADS))
    with sampling_threads():
        assert torch.get_num_threads() == SAMPLING_THREADS
    assert torch.get_num_threads() == max(THREADS)


@pytest.mark.skipif(core_count() < 2, reason="needs two cores")
def test_python_call_gives_the_same_audio_at_any_thread_count(tiny_musicot: Path) -> None:
    from musigen.musicot.pipeline import MusiCoTPipeline

    pipe = MusiCoTPipeline.from_pretrained(tiny_musicot)
    for prompt in ("calm jazz with piano", "fast rock with drums", "funk groove"):
        results = {}
        for threads in THREADS:
            torch.set_num_threads(threads)
            results[threads] = pipe(prompt, duration=2.0, seed=3, progress=False)
            assert torch.get_num_threads() == threads  # the caller's setting is restored
        first = results[THREADS[0]]
        for threads in THREADS[1:]:
            assert results[threads].thoughts == first.thoughts
            np.testing.assert_array_equal(results[threads].audio, first.audio)


@pytest.mark.skipif(core_count() < 2, reason="needs two cores")
def test_cli_writes_the_same_file_at_any_thread_count(tiny_musicot: Path,
                                                     tmp_path: Path) -> None:
    import soundfile as sf

    outs = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}.wav"
        assert main(["generate", "--prompt", "ambient pad with strings", "--duration", "2",
                     "--seed", "7", "--model", str(tiny_musicot), "--threads", str(threads),
                     "--out", str(out)]) == 0
        outs.append(sf.read(out, dtype="float32")[0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_edit_runs_at_the_measured_default_and_restores() -> None:
    from musigen.instructme.pipeline import InstructMEPipeline
    from musigen.threads import EDIT_THREADS

    class Probe:
        seen: list[int] = []

        def _edit_call(self, *args: object, **kwargs: object) -> str:
            self.seen.append(torch.get_num_threads())
            return "edited"

    probe = Probe()
    torch.set_num_threads(max(THREADS))
    assert InstructMEPipeline.__call__(probe, "wav", 16000, "remove drums") == "edited"
    assert InstructMEPipeline.__call__(probe, "wav", 16000, "x", threads=min(THREADS)) == "edited"
    assert probe.seen == [EDIT_THREADS, min(THREADS)]
    assert torch.get_num_threads() == max(THREADS)
