"""One call per `musigen eval` command: resolve the set and the systems, run, report.

The CLI only parses arguments and calls these, so every evaluation the command line can
run is also one Python call away.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from musigen.errors import DataError
from musigen.eval.harness.context import build_context
from musigen.eval.harness.report import ReportPaths
from musigen.eval.harness.set_items import EvalSet, load_set, resolve_set
from musigen.eval.harness.systems import codec_baselines as _codec_baselines
from musigen.eval.harness.systems import default_baselines, resolve_system

log = logging.getLogger(__name__)


def _expect(eval_set: EvalSet, kind: str, message: str) -> EvalSet:
    if eval_set.kind != kind:
        raise DataError(f"{eval_set.root} is a {eval_set.kind!r} set; {message}")
    return eval_set


def run_edit_eval(model: str, set_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  variant: str = "builtin", seed: int = 0, judge: str | None = None, clap: str | None = "demo",
                  chords: bool = True, baselines: bool = True, n_listen: int = 2,
                  codec_baselines: bool = True) -> ReportPaths:
    """Evaluate an edit system and (by default) the edit baselines on an edit set.

    When the system has a codec (a latent editor) and `codec_baselines` is on, the exact
    target and the source are also round-tripped through that codec (`target-codec`,
    `identity-codec`): the best and the do-nothing output a latent model can produce.
    """
    from musigen.eval.harness.evaluate import evaluate_edit

    eval_set = _expect(load_set(resolve_set(set_dir, "edit", variant)), "edit", "`eval edit` needs an edit set")
    ctx = build_context(judge, clap, chords)
    names = [model] + (default_baselines("edit", model) if baselines else [])
    systems = [resolve_system(n, "edit", eval_set) for n in names]
    if baselines and codec_baselines:
        systems += _codec_baselines(systems[0][1], eval_set)
    return evaluate_edit(systems, eval_set, out_dir, ctx, seed=seed, n_listen=n_listen,
                         title=f"musigen edit evaluation: {systems[0][0]}")


def run_generation_eval(model: str, set_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                        variant: str = "builtin", seed: int = 0, judge: str | None = None,
                        clap: str | None = "demo", baselines: bool = True, n_listen: int = 4) -> ReportPaths:
    """Evaluate a generation system and (by default) the generation baselines on a gen set."""
    from musigen.eval.harness.evaluate import evaluate_generation

    eval_set = _expect(load_set(resolve_set(set_dir, "gen", variant)), "gen", "`eval generate` needs a generation set")
    ctx = build_context(judge, clap, chords=False)
    names = [model] + (default_baselines("generate", model) if baselines else [])
    systems = [resolve_system(n, "generate", eval_set) for n in names]
    return evaluate_generation(systems, eval_set, out_dir, ctx, seed=seed, n_listen=n_listen,
                               title=f"musigen generation evaluation: {systems[0][0]}")


def run_codec_eval(model: str, set_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                   variant: str = "builtin", judge: str | None = None, chords: bool = True,
                   limit: int | None = None, n_listen: int = 3) -> ReportPaths:
    """Round-trip a set's ground-truth mixes through a codec (preset, folder or hub id)."""
    from musigen.codec import Codec
    from musigen.eval.harness.codec import evaluate_codec

    root = Path(set_dir)
    try:
        eval_set = load_set(resolve_set(root, "gen", variant))
    except DataError:  # an edit set works too (its sources are the clips)
        eval_set = load_set(resolve_set(root, "edit", variant))
    codec = Codec.from_pretrained(model)
    codec.eval()
    ctx = build_context(judge, clap=None, chords=chords)
    return evaluate_codec(codec, Path(model).name or str(model), eval_set, out_dir, ctx, n_listen=n_listen,
                          limit=limit)
