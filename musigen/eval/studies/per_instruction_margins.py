"""Fit the per-instruction accuracy's presence margins on a dev edit split.

Why: the per-instruction accuracy counts an instrument as moved when the judge's clip
presence changes by more than the judge's own noise.  That noise is measured here, on a
**dev** edit set (`musigen eval make-sets --split dev`; test items are refused): for every
item whose instructions leave the other instruments alone (add, remove, replace, two-round),
each instrument the instructions do not name and whose exact state does not change gives
|presence(output) - presence(source)| for the exact target, and with `--codec` also for the
target and the source through the codec (what a latent editor's best and do-nothing outputs
look like).  The margin is a quantile of those movements per instrument.

    musigen eval fit-margins --set data/eval_sets_dev10/edit --codec checkpoints/codec_demo
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from musigen.errors import DataError

#: Tasks whose instructions rewrite the other instruments' state: no unchanged instruments there.
REWRITING = ("extract", "remix_genre", "remix_instruments")


def gather_movements(analyze: Callable[..., Any], set_dirs: Sequence[str | Path],
                     round_trip: Callable[..., Any] | None = None) -> dict[str, list[float]]:
    """Instrument -> presence movements on dev items where it should not have moved."""
    import numpy as np

    from musigen.eval.harness.set_items import load_set
    from musigen.eval.harness.sets import DEV_FIRST
    from musigen.eval.metrics.instruction_accuracy import Op

    rng = np.random.default_rng(0)
    moves: dict[str, list[float]] = {}
    for d in set_dirs:
        eval_set = load_set(d)
        if eval_set.kind != "edit":
            raise DataError(f"{d} is a {eval_set.kind} set; fit margins on an edit set")
        if int(eval_set.info.get("first_item", 0)) < DEV_FIRST["edit"]:
            raise DataError(f"{d} holds held-out test items; fit on a dev split "
                            "(`musigen eval make-sets --split dev`)")
        sr = eval_set.sample_rate
        for item in eval_set.items:
            ops = [Op.from_dict(o) for o in item.ops]
            if any(op.task in REWRITING for op in ops):
                continue
            named = set().union(*(op.named for op in ops))
            source, target = eval_set.audio(item.source), eval_set.audio(item.target)
            src = analyze(source, sr).presence
            outs = [target]
            if round_trip is not None:
                outs += [round_trip(target, sr, rng), round_trip(source, sr, rng)]
            for out in outs:
                p = analyze(out, sr).presence
                for k in p:
                    before, after = item.source_truth.get(k), item.target_truth.get(k)
                    if k not in named and before is not None and before == after:
                        moves.setdefault(k, []).append(float(p[k] - src[k]))
    if not moves:
        raise DataError("no unchanged instruments to measure the judge's noise on")
    return moves


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `musigen eval fit-margins`."""
    from musigen.eval.metrics.per_instruction_margins import QUANTILE

    p.add_argument("--set", dest="sets", type=Path, action="append", required=True,
                   help="a dev edit set (repeatable), from `musigen eval make-sets --split dev`")
    p.add_argument("--judge", default=None, help="judge folder (default: checkpoints/judge_codec)")
    p.add_argument("--codec", default=None,
                   help="also measure the target and the source through this codec folder "
                        "(continuous latents)")
    p.add_argument("--quantile", type=float, default=QUANTILE,
                   help=f"the share of unchanged-instrument movements a margin exceeds "
                        f"(default {QUANTILE})")
    p.add_argument("--json", type=Path, default=None, help="also write the margins here")


def run_from_args(args: argparse.Namespace) -> int:
    """Judge the dev clips, fit and print the margins (the metric module ships them)."""
    from musigen.atomic import write_json
    from musigen.eval.metrics.per_instruction_margins import fit_margins
    from musigen.judge.model import load_judge

    judge = load_judge(args.judge)
    round_trip = None
    if args.codec:
        from musigen.codec_round_trip import ThroughCodec

        round_trip = ThroughCodec.from_pretrained(args.codec, (0,))
    moves = gather_movements(judge.analyze, args.sets, round_trip)
    margins = fit_margins(moves, args.quantile)
    sets = ", ".join(str(s) for s in args.sets)
    print(f"{judge.name}: movements of unchanged instruments on {sets}"
          + (f" (clean and through {args.codec})" if args.codec else ""))
    for k in sorted(moves):
        print(f"  {k:8s} n={len(moves[k]):4d} margin={margins.get(k, 'default')}")
    print("margins: " + json.dumps(margins, sort_keys=True))
    if args.json:
        write_json(args.json, {"judge": judge.name, "sets": [str(s) for s in args.sets],
                               "codec": args.codec,
                               "quantile": args.quantile, "margins": margins,
                               "movements": {k: len(v) for k, v in moves.items()}})
    return 0
