"""Evaluation metrics: pure functions on arrays, embeddings or judge outputs.

Nothing here runs a model or reads a file; the harness and the studies feed these.  Names
are imported on first use, so `import musigen.eval.metrics` stays cheap (the plan and tag
metrics need torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE: dict[str, str] = {
    **dict.fromkeys(("FadResult", "FadWarning", "GaussianStats", "fad_from_embeddings", "frechet_distance",
                     "gaussian_fit"), "musigen.eval.metrics.fad"),
    **dict.fromkeys(("KlResult", "kl_divergence", "kl_from_logits", "label_distribution"),
                    "musigen.eval.metrics.kl"),
    **dict.fromkeys(("ClapScore", "TextAudioEmbedder", "clap_score", "embedder_name"),
                    "musigen.eval.metrics.clap_score"),
    **dict.fromkeys(("si_sdr", "log_mel", "log_mel_distance"), "musigen.eval.metrics.signal_metrics"),
    "chord_scores": "musigen.eval.metrics.chord_accuracy",
    **dict.fromkeys(("Op", "InstructionCheck", "expected_state", "check_instruction", "summarise_checks",
                     "judged_state"), "musigen.eval.metrics.instruction_accuracy"),
    **dict.fromkeys(("PerInstructionCheck", "check_per_instruction", "summarise_per_instruction", "MAX_FLIPS"),
                    "musigen.eval.metrics.per_instruction"),
    **dict.fromkeys(("fit_margins", "margins_for"), "musigen.eval.metrics.per_instruction_margins"),
    **dict.fromkeys(("SharedRun", "longest_shared_run", "copy_runs", "summarise_runs"),
                    "musigen.eval.metrics.copy_detection"),
    **dict.fromkeys(("PlanComparison", "tag_texts", "top1_tags", "plan_vectors", "reanalyse", "compare_plan",
                     "summarise_plans"), "musigen.eval.metrics.plan_adherence"),
    **dict.fromkeys(("average_precision", "instrument_aps"), "musigen.embedders.tag_metrics"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
