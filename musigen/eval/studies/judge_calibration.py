"""Per-instrument decision thresholds for the instrument judge, fitted on a dev split.

Why: instruction accuracy asks the judge a yes/no question per instrument on a whole clip,
and the clip presence is the *max* of the window probabilities, which runs above a single
window's calibrated probability (most for rare, soft instruments such as organ or pad).  A
fixed 0.5 then makes the judge fail exact targets (the ceiling of the metric).  Here each
instrument gets the threshold that maximises its clip-level accuracy on the sources and
targets of a **dev** edit set (`musigen eval make-sets --split dev`), whose stems give exact
truth; the held-out test items are refused, so reports stay honest.

    musigen eval calibrate-judge --set data/eval_sets_cal/edit [--judge DIR] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musigen.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from musigen.judge.calibration import Observations

def gather(analyze: Callable[[np.ndarray, int], Any], set_dirs: Sequence[str | os.PathLike[str]],
           instruments: Sequence[str], round_trip: Callable[..., np.ndarray] | None = None) -> Observations:
    """Judge the source and the target of every item of dev edit sets (with `round_trip`,
    a codec round trip such as :class:`musigen.codec_round_trip.ThroughCodec`, each
    clip is judged a second time through the codec: thresholds for a judge of codec outputs)."""
    import numpy as np

    from musigen.eval.harness.set_items import load_set
    from musigen.eval.harness.sets import DEV_FIRST
    from musigen.judge.calibration import Observations

    rng = np.random.default_rng(0)  # which codec path each clip takes

    presence, truth = [], []
    for d in set_dirs:
        eval_set = load_set(d)
        if eval_set.kind != "edit":
            raise DataError(f"{d} is a {eval_set.kind} set; calibrate on an edit set (its stems give exact truth)")
        first = int(eval_set.info.get("first_item", 0))
        if first < DEV_FIRST["edit"]:
            raise DataError(f"{d} holds held-out test items; calibrate on a dev split "
                            "(`musigen eval make-sets --split dev`)")
        for item in eval_set.items:
            for rel, known in ((item.source, item.source_truth), (item.target, item.target_truth)):
                wav = eval_set.audio(rel)
                clips = [wav] if round_trip is None else [wav, round_trip(wav, eval_set.sample_rate, rng)]
                for clip in clips:
                    a = analyze(clip, eval_set.sample_rate)
                    presence.append([a.presence[k] for k in instruments])
                    truth.append([np.nan if known.get(k) is None else float(known[k]) for k in instruments])
    if not presence:
        raise DataError("no clips to calibrate on")
    return Observations(np.asarray(presence, dtype=np.float64), np.asarray(truth, dtype=np.float64),
                        list(instruments))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `musigen eval calibrate-judge`."""
    p.add_argument("--set", dest="sets", type=Path, action="append", required=True,
                   help="a dev edit set (repeatable), e.g. from `musigen eval make-sets --split dev`")
    p.add_argument("--judge", default=None, help="judge folder (default: checkpoints/judge_codec)")
    p.add_argument("--write", action="store_true",
                   help="store the thresholds in the judge folder's config.json (otherwise only print them)")
    p.add_argument("--json", type=Path, default=None, help="also write the table and thresholds here")
    p.add_argument("--codec", default=None,
                   help="also judge every clip after a round trip through this codec folder (a judge of codec outputs)")
    p.add_argument("--codec-codebooks", type=int, action="append", default=None,
                   help="with --codec: 0 = continuous latents, k = the first k codebooks; repeat to draw per clip "
                        "(default 0)")


def run_from_args(args: argparse.Namespace) -> int:
    """Judge the dev clips, fit, print (and with --write store) the thresholds."""
    from musigen import hub
    from musigen.atomic import write_json
    from musigen.judge.calibration import accuracy_table, fit_thresholds, format_table
    from musigen.judge.model import default_judge_dir, load_judge

    judge = load_judge(args.judge)  # stored thresholds do not matter: the fit reads raw presence
    round_trip = None
    if args.codec:
        from musigen.codec_round_trip import ThroughCodec

        round_trip = ThroughCodec.from_pretrained(args.codec, args.codec_codebooks or (0,))
    obs = gather(judge.analyze, args.sets, judge.config.instruments, round_trip)
    thresholds = fit_thresholds(obs)
    rows = accuracy_table(obs, thresholds)
    through = f" (each also through {args.codec})" if args.codec else ""
    print(f"{judge.name}: {len(obs.presence)} clips from {', '.join(str(s) for s in args.sets)}{through}")
    print(format_table(rows))
    print("thresholds: " + json.dumps(thresholds))
    if args.json:
        write_json(args.json, {"judge": judge.name, "sets": [str(s) for s in args.sets], "codec": args.codec,
                               "clips": len(obs.presence), "thresholds": thresholds, "per_instrument": rows})
    if args.write:
        folder = Path(args.judge) if args.judge else default_judge_dir()
        judge.config.thresholds = thresholds
        hub.save_config(folder, judge.config)
        print(f"wrote the thresholds into {folder / hub.CONFIG_NAME}")
    return 0
