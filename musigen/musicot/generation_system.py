"""MusiCoT behind the evaluation harness's generation protocol (`musigen.eval.harness.protocols`).

The harness scores any system with `generate(prompts, refs, duration, seed)`; this adapter
lets `musigen eval generate --model checkpoints/musicot_demo` score a MusiCoT pipeline folder
and draw its plan (`last_thoughts`) in the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class MusiCoTGenerationSystem:
    """Generates one clip per prompt, each with its own (optional) style reference."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.sample_rate = int(pipeline.sample_rate)
        #: per prompt of the last call: (start_s, end_s, label) plan segments
        self.last_thoughts: list[list[tuple[float, float, str]]] = []

    def generate(self, prompts: list[str], refs: list[np.ndarray | None], duration: float,
                 seed: int) -> list[np.ndarray]:
        """Prompt i uses seed + i, so results do not depend on how items are batched.

        A no-CoT model (trained without thought tokens) has no way to take a style
        reference; it is scored from the prompt alone, as MusicGen-style baselines are.
        """
        outputs, self.last_thoughts = [], []
        takes_ref = bool(getattr(self.pipeline.config, "use_thoughts", True))
        for i, (prompt, ref) in enumerate(zip(prompts, refs, strict=True)):
            ref = ref if takes_ref else None
            result = self.pipeline(prompt, ref=ref, ref_sample_rate=self.sample_rate if ref is not None else None,
                                   duration=duration, seed=seed + i, progress=False)
            outputs.append(np.asarray(result.audio[0], dtype=np.float32))
            self.last_thoughts.append([
                (seg.start, seg.end, " / ".join(pairs[0][0] for pairs in seg.tags.values() if pairs))
                for seg in result.analysis[0]])
        return outputs
