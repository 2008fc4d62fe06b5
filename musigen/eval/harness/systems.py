"""Resolve `--model` specs to systems, and build the baselines a set needs.

A spec is a baseline name (`identity`, `random-stem`, `target`, `random-clip`,
`reference`), a pipeline folder (MusiCoT for generation, InstructME for editing), or
`package.module:Factory` for any object implementing the protocols.  Pipelines are
imported lazily here, so the metrics themselves never depend on them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from musigen.errors import ConfigError
from musigen.eval.harness.baselines import (
    CodecRoundTrip,
    IdentityEdit,
    RandomClipGenerator,
    RandomStemEdit,
    ReferenceGenerator,
    TargetEdit,
    fingerprint,
)
from musigen.eval.harness.protocols import EditSystem, GenerationSystem
from musigen.eval.harness.set_items import EvalSet

EDIT_BASELINES: tuple[str, ...] = ("identity", "random-stem", "target")
GEN_BASELINES: tuple[str, ...] = ("random-clip", "reference")
#: kind -> (module, class) of the pipeline a folder spec loads
PIPELINES: dict[str, tuple[str, str]] = {
    "edit": ("musigen.instructme.pipeline", "InstructMEPipeline"),
    "generate": ("musigen.musicot.pipeline", "MusiCoTPipeline"),
}


def edit_baseline(name: str, eval_set: EvalSet) -> EditSystem:
    if name == "identity":
        return IdentityEdit()
    if name == "random-stem":
        table = {fingerprint(eval_set.audio(it.source)): {k: eval_set.audio(p) for k, p in it.stems.items()}
                 for it in eval_set.items}
        return RandomStemEdit(table)
    if name == "target":
        return TargetEdit({(fingerprint(eval_set.audio(it.source)), tuple(it.instructions)): eval_set.audio(it.target)
                           for it in eval_set.items})
    raise ConfigError(f"unknown edit baseline {name!r}; known: {', '.join(EDIT_BASELINES)}")


def codec_baselines(system: Any, eval_set: EvalSet) -> list[tuple[str, EditSystem]]:
    """`target-codec` and `identity-codec` through `system`'s codec; none if it has no codec.

    A latent editor (the InstructME pipeline: `.codec`, and `.stats` for its latent
    normalisation) cannot beat its codec's reconstruction of the exact target, so that
    round trip is the ceiling its SI-SDR and log-mel must be read against.
    """
    codec = getattr(system, "codec", None)
    if codec is None or not callable(getattr(codec, "encode_latents", None)):
        return []
    stats = getattr(system, "stats", None)
    out = [("target-codec", CodecRoundTrip(edit_baseline("target", eval_set), codec, "target-codec", stats)),
           ("identity-codec", CodecRoundTrip(IdentityEdit(), codec, "identity-codec", stats))]
    output = getattr(getattr(system, "config", None), "output", "decoded")
    if output != "decoded":
        # the system outputs source + what changed: its own ceiling (its floor is `identity`)
        out.append(("target-codec-delta", CodecRoundTrip(edit_baseline("target", eval_set), codec,
                                                         "target-codec-delta", stats, delta=True)))
    if output == "masked_delta":
        out.append(("target-codec-masked", CodecRoundTrip(edit_baseline("target", eval_set), codec,
                                                          "target-codec-masked", stats, delta=True, masked=True)))
    return out


def generation_baseline(name: str, eval_set: EvalSet) -> GenerationSystem:
    sr = eval_set.sample_rate
    if name == "random-clip":
        pool = eval_set.info.get("pool") or []
        return RandomClipGenerator([eval_set.audio(p) for p in pool], sr)
    if name == "reference":
        return ReferenceGenerator({it.prompt: eval_set.audio(it.target) for it in eval_set.items}, sr)
    raise ConfigError(f"unknown generation baseline {name!r}; known: {', '.join(GEN_BASELINES)}")


def _factory(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import model {spec!r}: {exc}") from None
    return obj() if callable(obj) else obj


def resolve_system(spec: str, kind: str, eval_set: EvalSet) -> tuple[str, Any]:
    """`--model` -> (display name, system) for kind "edit" or "generate"."""
    if kind not in PIPELINES:
        raise ConfigError(f"kind must be 'edit' or 'generate', got {kind!r}")
    baselines = EDIT_BASELINES if kind == "edit" else GEN_BASELINES
    if spec in baselines:
        build = edit_baseline if kind == "edit" else generation_baseline
        return spec, build(spec, eval_set)
    if ":" in spec and not Path(spec).exists():
        system = _factory(spec)
        name = spec
    else:
        path = Path(spec)
        if not path.is_dir():
            raise ConfigError(f"--model {spec!r} is neither a baseline ({', '.join(baselines)}) nor a folder")
        module, cls = PIPELINES[kind]
        try:
            pipeline_cls = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load {cls} to read {path}: {exc}") from None
        system = pipeline_cls.from_pretrained(path)
        name = path.name
    adapter = getattr(system, "as_edit_system" if kind == "edit" else "as_generation_system", None)
    if callable(adapter):
        system = adapter()
    method = "edit" if kind == "edit" else "generate"
    if not callable(getattr(system, method, None)):
        raise ConfigError(f"model {spec!r} has no {method}() method of the {kind} protocol (musigen.eval.harness.protocols)")
    if kind == "generate" and not getattr(system, "sample_rate", None):
        raise ConfigError(f"model {spec!r} does not declare its output sample_rate")
    return name, system


def default_baselines(kind: str, model: str) -> list[str]:
    """The floors (and ceiling) reported next to `model` (not repeating it)."""
    names = EDIT_BASELINES if kind == "edit" else GEN_BASELINES
    return [n for n in names if n != model]

