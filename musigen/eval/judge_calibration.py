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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musigen.errors import DataError

if TYPE_CHECKING:
    import numpy as np

#: Fewer clips than this on either side (present / absent) of an instrument: keep 0.5.
MIN_PER_SIDE = 5
#: Thresholds are kept inside this range, so one odd clip cannot push a class to always-on.
LOW, HIGH = 0.05, 0.95


@dataclass
class Observations:
    """Clip presence [N, I] and exact truth [N, I] (1 present, 0 absent, NaN ambiguous); numpy arrays."""

    presence: np.ndarray
    truth: np.ndarray
    instruments: list[str]


def gather(analyze: Callable[[np.ndarray, int], Any], set_dirs: Sequence[str | os.PathLike[str]],
           instruments: Sequence[str], round_trip: Callable[..., np.ndarray] | None = None) -> Observations:
    """Judge the source and the target of every item of dev edit sets (with `round_trip`,
    a codec round trip such as :class:`musigen.eval.codec_round_trip.ThroughCodec`, each
    clip is judged a second time through the codec: thresholds for a judge of codec outputs)."""
    import numpy as np

    from musigen.eval.set_items import load_set
    from musigen.eval.sets import DEV_FIRST

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


def best_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The threshold in [LOW, HIGH] with the best accuracy of `p >= t` against `y`; ties go to 0.5's side."""
    import numpy as np

    grid = np.sort(p)
    cands = np.unique(np.clip(np.concatenate([[0.5], (grid[1:] + grid[:-1]) / 2]), LOW, HIGH))
    acc = np.array([np.mean((p >= t) == y) for t in cands])
    best = cands[acc >= acc.max() - 1e-12]
    return float(best[np.argmin(np.abs(best - 0.5))])


def fit_thresholds(obs: Observations, min_per_side: int = MIN_PER_SIDE) -> dict[str, float]:
    """One threshold per instrument with enough clips on both sides; the rest stay at 0.5 (omitted)."""
    import numpy as np

    out: dict[str, float] = {}
    for c, name in enumerate(obs.instruments):
        known = ~np.isnan(obs.truth[:, c])
        p, y = obs.presence[known, c], obs.truth[known, c].astype(bool)
        if y.sum() < min_per_side or (~y).sum() < min_per_side:
            continue
        out[name] = round(best_threshold(p, y), 4)
    return out


def accuracy_table(obs: Observations, thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """Per instrument: clips, share present, accuracy at 0.5 and at the fitted threshold."""
    import numpy as np

    rows = []
    for c, name in enumerate(obs.instruments):
        known = ~np.isnan(obs.truth[:, c])
        p, y = obs.presence[known, c], obs.truth[known, c].astype(bool)
        t = thresholds.get(name, 0.5)
        rows.append({"instrument": name, "clips": int(known.sum()), "present": float(y.mean()) if len(y) else None,
                     "threshold": t, "acc_at_0.5": float(np.mean((p >= 0.5) == y)) if len(y) else None,
                     "acc_at_threshold": float(np.mean((p >= t) == y)) if len(y) else None})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The per-instrument rows as a Markdown table (what the command prints)."""

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["| instrument | clips | present | threshold | accuracy at 0.5 | accuracy at threshold |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['instrument']} | {r['clips']} | {f(r['present'])} | {r['threshold']:.3f} | "
              f"{f(r['acc_at_0.5'])} | {f(r['acc_at_threshold'])} |" for r in rows]
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by `musigen eval calibrate-judge` and `python -m`."""
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
    from musigen.eval.judge import default_judge_dir, load_judge

    judge = load_judge(args.judge)  # stored thresholds do not matter: the fit reads raw presence
    round_trip = None
    if args.codec:
        from musigen.eval.codec_round_trip import ThroughCodec

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


def main(argv: Sequence[str] | None = None) -> int:
    from musigen.module_cli import guarded

    p = argparse.ArgumentParser(prog="python -m musigen.eval.judge_calibration",
                                description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    return guarded(p.prog, lambda: run_from_args(args))


if __name__ == "__main__":
    raise SystemExit(main())
