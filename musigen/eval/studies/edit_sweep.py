"""Choose InstructME sampling settings on the dev split, by a stated rule.

Steps, the two guidance scales, the scheduler and the output mode are not in the paper, so
we tune them on the *dev* edit set (never the test items).  Every setting runs over the
same items with the same seed and gets: mean SI-SDR to the exact target; mean chords kept
(mir_eval majmin of the output's recognised chords against the source's); mean SI-SDR to
the source (how much the edit changed); the median output/source RMS ratio (a removal
should not come out louder); SI-SDR per task; CPU seconds; and, with the instrument judge
(the shipped one by default, `--no-judge` to skip), instruction accuracy (all instruments,
its target part, and per instruction), so that a setting which keeps the source by ignoring
the instruction shows as such.  Floors, once:
identity (the source as output), identity-codec (the source through the codec's latent
round trip: what "change nothing" costs), target-codec (the target through it: about the
ceiling of the "decoded" output mode), target-codec as source_delta (the source plus
the round-tripped target minus the round-tripped source: the ceiling of "source_delta")
and as masked_delta (the ceiling of "masked_delta").

Selection rule (:data:`RULE`): among the settings whose chords kept is within 0.05 of the
best chords kept, the best mean SI-SDR.  An edit must keep the harmony and SI-SDR does not
check it, so chords gate first; the tolerance keeps chord-recogniser noise from deciding.

    musigen eval sweep-edit --model checkpoints/instructme_demo \\
        --set data/eval_sets_dev/edit --out runs/sweep.json --settings "25:3:1.5:dpmsolver++;50:3:1.5:ddim"
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musigen.errors import ConfigError
from musigen.instructme.edit_params import EditParams

if TYPE_CHECKING:
    import numpy as np

    from musigen.eval.harness.set_items import EvalSet
    from musigen.instructme.pipeline import InstructMEPipeline

CHORD_TOLERANCE = 0.05
RULE = ("best mean SI-SDR to the target among the settings whose mean chords kept is at least "
        f"the best chords kept minus {CHORD_TOLERANCE}")


@dataclass(frozen=True)
class SweepSetting:
    """One sampling setting of the pipeline call: an EditParams without its seed (the sweep
    runs each setting at several seeds), plus the label the `--settings` syntax writes."""

    steps: int
    guidance_text: float
    guidance_source: float
    sampler: str = "dpmsolver++"
    output: str = "decoded"
    strength: float = 1.0
    match_source_stats: bool = False
    start: str = "noise"

    def __post_init__(self) -> None:
        self.params(0)  # EditParams checks every field

    def params(self, seed: int) -> EditParams:
        """This setting at `seed`, as the pipeline takes it."""
        return EditParams(**asdict(self), seed=seed)

    @property
    def label(self) -> str:
        """The setting in the `--settings` syntax (round-trips through :func:`parse_settings`)."""
        label = f"{self.steps}:{self.guidance_text:g}:{self.guidance_source:g}:{self.sampler}:{self.output}"
        if self.start != "noise":
            return f"{label}:{self.strength:g}:{'match' if self.match_source_stats else 'raw'}:{self.start}"
        if self.match_source_stats:
            return f"{label}:{self.strength:g}:match"
        return label if self.strength == 1.0 else f"{label}:{self.strength:g}"


#: The default grid: guidance pairs at 25 DPM-Solver++ steps, then the step count and the
#: scheduler at the pipeline's default 3.0/1.5, then the source-delta output at that default.
DEFAULT_GRID = ("25:1:1:dpmsolver++;25:3:1.5:dpmsolver++;25:1.5:1.5:dpmsolver++;25:2:2:dpmsolver++;"
                "25:3:3:dpmsolver++;25:5:1.5:dpmsolver++;25:3:1:dpmsolver++;25:1:3:dpmsolver++;"
                "25:1:5:dpmsolver++;25:0:1:dpmsolver++;10:3:1.5:dpmsolver++;50:3:1.5:dpmsolver++;"
                "50:3:1.5:ddim;25:3:1.5:dpmsolver++:source_delta;25:3:1.5:dpmsolver++:auto")


def parse_settings(text: str) -> list[SweepSetting]:
    """`"steps:text:source:sampler[:output[:strength[:match|raw[:noise|inversion]]]];..."` ->
    settings (ConfigError on anything else).  `match`: the sampled latents take the source's
    channel statistics; `inversion`: sampling starts from the DDIM-inverted source."""
    grammar = "steps:text:source:sampler[:output[:strength[:match|raw[:noise|inversion]]]]"
    out = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        fields = part.split(":")
        if len(fields) not in (4, 5, 6, 7, 8) or (len(fields) >= 7 and fields[6] not in ("match", "raw")):
            raise ConfigError(f"bad setting {part!r}: expected {grammar}")
        try:
            steps, gt, gs = int(fields[0]), float(fields[1]), float(fields[2])
            strength = float(fields[5]) if len(fields) >= 6 else 1.0
        except ValueError:
            raise ConfigError(f"bad setting {part!r}: steps must be an integer and the guidance "
                              "scales and the strength numbers") from None
        out.append(SweepSetting(steps, gt, gs, fields[3], fields[4] if len(fields) >= 5 else "decoded",
                                strength, len(fields) >= 7 and fields[6] == "match",
                                fields[7] if len(fields) == 8 else "noise"))
    if not out:
        raise ConfigError(f"no settings in {text!r}")
    return out


def select_setting(rows: Sequence[dict[str, Any]], tolerance: float = CHORD_TOLERANCE) -> int | None:
    """Index of the chosen row under :data:`RULE`; None when no row has both metrics."""
    scored = [(i, r) for i, r in enumerate(rows) if r.get("si_sdr") is not None and r.get("chords_kept") is not None]
    if not scored:
        return None
    best_kept = max(r["chords_kept"] for _, r in scored)
    eligible = [(i, r) for i, r in scored if r["chords_kept"] >= best_kept - tolerance - 1e-12]
    return max(eligible, key=lambda ir: (ir[1]["si_sdr"], -ir[0]))[0]


def _mean(values: Sequence[float]) -> float | None:
    """NaN-aware mean as JSON-safe float (None when nothing is defined, e.g. silent targets)."""
    ok = [v for v in values if v is not None and math.isfinite(v)]
    return float(sum(ok) / len(ok)) if ok else None


def _median(values: Sequence[float]) -> float | None:
    """Median of the finite values (None if there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else None


def _rms(wav: np.ndarray) -> float:
    return float((wav.astype("float64") ** 2).mean() ** 0.5)


def _per_task(tasks: Sequence[str], values: Sequence[float]) -> dict[str, float | None]:
    return {t: _mean([v for tk, v in zip(tasks, values) if tk == t]) for t in sorted(set(tasks))}


class _Scorer:
    """Per-item audio, source chords and metric helpers shared by every setting."""

    def __init__(self, pipe: InstructMEPipeline, eval_set: EvalSet, items: list[Any], judge: Any = None) -> None:
        self.pipe, self.items, self.sr, self.judge = pipe, items, eval_set.sample_rate, judge
        self.sources = [eval_set.audio(it.source) for it in items]
        self.targets = [eval_set.audio(it.target) for it in items]
        self.tasks = [str(it.task) for it in items]
        self.chords = [self.recognize(s) for s in self.sources]

    def recognize(self, wav: np.ndarray) -> list[tuple[float, float, str]]:
        from musigen.chords import recognize_chords

        with warnings.catch_warnings():  # librosa's CQT warns about low octaves of short clips
            warnings.filterwarnings("ignore", category=UserWarning)
            return recognize_chords(wav, self.sr)

    def kept(self, i: int, wav: np.ndarray) -> float:
        from musigen.eval.metrics.chord_accuracy import chord_scores

        return chord_scores(self.chords[i], self.recognize(wav))["majmin"]

    def back(self, wav: np.ndarray, n: int) -> np.ndarray:
        """Pipeline-rate mono audio -> the set's rate, `n` samples (metrics compare there)."""
        import numpy as np

        from musigen.audio import resample

        y = np.asarray(resample(np.asarray(wav, np.float32), self.pipe.sample_rate, self.sr))
        return np.pad(y[:n], (0, max(0, n - y.size)))

    def round_trip(self, wav: np.ndarray) -> np.ndarray:
        """The codec's latent round trip (no edit): what a decoded output cannot beat."""
        import torch

        codec = self.pipe.codec
        with torch.no_grad():
            z = codec.encode_latents(torch.from_numpy(wav)[None, None], sample_rate=self.sr)
            n = round(wav.size * self.pipe.sample_rate / self.sr)
            y = codec.decode_latents(z, length=n)[0, 0].float().cpu().numpy()
        return self.back(y, wav.size)

    def instruction(self, i: int, wav: np.ndarray) -> tuple[bool, bool, bool]:
        """(success, target part, per-instruction success) of item i's output by the judge, at its
        per-instrument thresholds."""
        from musigen.eval.metrics.instruction_accuracy import Op, check_instruction
        from musigen.eval.metrics.per_instruction import check_per_instruction
        from musigen.eval.metrics.per_instruction_margins import margins_for

        it, a = self.items[i], self.judge.analyze(wav, self.sr)
        ops = [Op.from_dict(o) for o in it.ops]
        check = check_instruction(it.source_truth, it.target_truth, a.presence, ops, a.genre, threshold=a.thresholds)
        src = self.judge.analyze(self.sources[i], self.sr)
        per = check_per_instruction(it.source_truth, src.presence, a.presence, ops, a.thresholds, a.genre,
                                    margins=margins_for(self.judge.name))
        return check.success, check.target_ok, per.success

    def floors(self) -> dict[str, dict[str, Any]]:
        from musigen.eval.metrics.signal_metrics import si_sdr
        from musigen.instructme.output_modes import combine

        ident = [si_sdr(s, t) for s, t in zip(self.sources, self.targets)]
        rts = [self.round_trip(s) for s in self.sources]
        icodec = [si_sdr(r, t) for r, t in zip(rts, self.targets)]
        trts = [self.round_trip(t) for t in self.targets]
        tcodec = [si_sdr(r, t) for r, t in zip(trts, self.targets)]
        # the exact target rendered as source_delta: the source plus what the codec says changed
        tdelta = [si_sdr(s + r - q, t) for s, r, q, t in zip(self.sources, trts, rts, self.targets)]
        tmask = [si_sdr(combine("masked_delta", s, r, q), t) for s, r, q, t in zip(self.sources, trts, rts, self.targets)]
        return {
            "identity": {"si_sdr": _mean(ident), "chords_kept": 1.0,  # the source's own chords
                         "per_task": _per_task(self.tasks, ident)},
            "identity_codec": {"si_sdr": _mean(icodec), "per_task": _per_task(self.tasks, icodec),
                               "chords_kept": _mean([self.kept(i, r) for i, r in enumerate(rts)]),
                               "si_sdr_vs_source": _mean([si_sdr(r, s) for r, s in zip(rts, self.sources)])},
            "target_codec": {"si_sdr": _mean(tcodec), "per_task": _per_task(self.tasks, tcodec)},
            "target_codec_delta": {"si_sdr": _mean(tdelta), "per_task": _per_task(self.tasks, tdelta)},
            "target_codec_masked": {"si_sdr": _mean(tmask), "per_task": _per_task(self.tasks, tmask)},
        }

    def score(self, setting: SweepSetting, seed: int) -> dict[str, Any]:
        from musigen.eval.metrics.signal_metrics import si_sdr

        t0 = time.process_time()
        sd, kept, vs_src, loud, ok, target_ok, per_ok = [], [], [], [], [], [], []
        for i, it in enumerate(self.items):
            src, tgt = self.sources[i], self.targets[i]
            res = self.pipe(src, self.sr, list(it.instructions), setting.params(seed))
            out = self.back(res.audio[0], src.size)
            sd.append(si_sdr(out, tgt))
            vs_src.append(si_sdr(out, src))
            kept.append(self.kept(i, out))
            loud.append(_rms(out) / max(_rms(src), 1e-9))
            if self.judge is not None:
                success, target, per = self.instruction(i, out)
                ok.append(float(success))
                target_ok.append(float(target))
                per_ok.append(float(per))
        return {**asdict(setting), "label": setting.label, "si_sdr": _mean(sd), "chords_kept": _mean(kept),
                "si_sdr_vs_source": _mean(vs_src), "per_task": _per_task(self.tasks, sd),
                "rms_ratio": _median(loud), "instruction_accuracy": _mean(ok), "target_ok": _mean(target_ok),
                "instruction_accuracy_per_instruction": _mean(per_ok),
                "per_item": {it.id: _mean([v]) for it, v in zip(self.items, sd)},
                "cpu_s": time.process_time() - t0}


def pick_items(eval_set: EvalSet, spec: str) -> list[Any]:
    """`all`, `per-task:N` (the first N items of each task, in set order: a balanced subset of
    a large dev split) or comma-separated item ids (unknown ids: ConfigError)."""
    if eval_set.kind != "edit":
        raise ConfigError(f"{eval_set.root} is a {eval_set.kind!r} set; the sweep needs an edit set")
    if spec.strip() == "all":
        return list(eval_set.items)
    if spec.strip().startswith("per-task:"):
        n = spec.strip().split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(f"--items per-task:N needs a whole number N >= 1, got {spec!r}")
        seen: Counter[str] = Counter()
        out = []
        for it in eval_set.items:
            seen[str(it.task)] += 1
            if seen[str(it.task)] <= int(n):
                out.append(it)
        return out
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    known = {it.id for it in eval_set.items}
    missing = [w for w in wanted if w not in known]
    if missing or not wanted:
        raise ConfigError(f"unknown item ids {missing or spec!r} in {eval_set.root}")
    return [it for it in eval_set.items if it.id in wanted]


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def format_row(row: dict[str, Any]) -> str:
    """One printed line per setting, led by its `--settings` label."""
    return (f"{row['label']:34s} SI-SDR {_fmt(row['si_sdr'], '6.2f')} dB  chords kept "
            f"{_fmt(row['chords_kept'], '.3f')}  SI-SDR vs source {_fmt(row['si_sdr_vs_source'], '6.2f')}  "
            f"RMS out/in {_fmt(row.get('rms_ratio'), '.2f')}  instr. acc "
            f"{_fmt(row.get('instruction_accuracy'), '.3f')} (target ok {_fmt(row.get('target_ok'), '.3f')}; "
            f"per instruction {_fmt(row.get('instruction_accuracy_per_instruction'), '.3f')})  "
            "per task " + " ".join(f"{k} {_fmt(v, '.2f')}" for k, v in row["per_task"].items())
            + f"  ({row['cpu_s']:.0f} s CPU)")


def run_sweep(pipe: InstructMEPipeline, eval_set: EvalSet, settings: Sequence[SweepSetting],
              items: list[Any] | None = None, seed: int = 0,
              on_update: Callable[[dict[str, Any]], None] | None = None, judge: Any = None) -> dict[str, Any]:
    """Score every setting; `on_update(result)` after the floors and after each row (partial)."""
    if not settings:
        raise ConfigError("no settings to sweep")
    scorer = _Scorer(pipe, eval_set, list(eval_set.items if items is None else items), judge)
    result: dict[str, Any] = {"set": str(eval_set.root), "sample_rate": eval_set.sample_rate,
                              "items": [it.id for it in scorer.items], "seed": seed, "rule": RULE,
                              "chord_tolerance": CHORD_TOLERANCE, "floors": scorer.floors(),
                              "rows": [], "chosen": None, "complete": False}
    if on_update:
        on_update(result)
    for setting in settings:
        result["rows"].append(scorer.score(setting, seed))
        k = select_setting(result["rows"])
        result["chosen"] = None if k is None else {"index": k, "label": result["rows"][k]["label"]}
        result["complete"] = len(result["rows"]) == len(settings)
        if on_update:
            on_update(result)
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The sweep's options, of `musigen eval sweep-edit`."""
    p.add_argument("--model", type=Path, required=True, help="InstructME pipeline folder")
    p.add_argument("--set", dest="set_dir", type=Path, required=True, help="edit set folder (the dev split)")
    p.add_argument("--out", type=Path, required=True, help="JSON file for all rows, floors and the choice")
    p.add_argument("--settings", default=None,
                   help='"steps:text:source:sampler[:output[:strength[:match|raw[:noise|inversion]]]];..." '
                        "(default: the built-in grid)")
    p.add_argument("--items", default="all",
                   help="comma-separated item ids, per-task:N (the first N of each task), or all")
    p.add_argument("--seed", type=int, default=0, help="sampling seed of every setting")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--judge", default=None, help="instrument judge folder (default: checkpoints/judge_codec)")
    p.add_argument("--no-judge", action="store_true", help="skip instruction accuracy")


def _command_line(args: argparse.Namespace) -> str:
    parts = ["musigen", "eval", "sweep-edit", "--model", str(args.model), "--set", str(args.set_dir),
             "--out", str(args.out), "--items", args.items, "--seed", str(args.seed), "--threads", str(args.threads)]
    if args.settings is not None:
        parts += ["--settings", args.settings]
    if args.no_judge:
        parts += ["--no-judge"]
    elif args.judge is not None:
        parts += ["--judge", str(args.judge)]
    return shlex.join(parts)


def run_from_args(args: argparse.Namespace) -> int:
    """Load, sweep, print one line per setting and keep the JSON current after each."""
    import torch

    from musigen.atomic import write_json
    from musigen.eval.harness.set_items import load_set
    from musigen.instructme.pipeline import InstructMEPipeline

    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    settings = parse_settings(DEFAULT_GRID if args.settings is None else args.settings)
    if args.out.is_dir():
        raise ConfigError(f"--out must be a JSON file path, {args.out} is a folder")
    eval_set = load_set(args.set_dir)
    items = pick_items(eval_set, args.items)
    torch.set_num_threads(args.threads)
    pipe = InstructMEPipeline.from_pretrained(args.model)
    judge = None
    if not args.no_judge:
        from musigen.judge.model import load_judge

        judge = load_judge(args.judge)
    extra = {"model": str(args.model), "command": _command_line(args),
             "args": {k: str(getattr(args, k)) if isinstance(getattr(args, k), Path) else getattr(args, k)
                      for k in ("model", "set_dir", "out", "settings", "items", "seed", "threads", "judge", "no_judge")}}

    def update(result: dict[str, Any]) -> None:  # first call: floors only; then one new row each
        write_json(args.out, {**result, **extra})
        fl = result["floors"]
        print(format_row(result["rows"][-1]) if result["rows"] else
              f"items {result['items']}\nfloors: identity SI-SDR {_fmt(fl['identity']['si_sdr'])}  "
              f"identity-codec {_fmt(fl['identity_codec']['si_sdr'])} (chords kept "
              f"{_fmt(fl['identity_codec']['chords_kept'], '.3f')})  target-codec "
              f"{_fmt(fl['target_codec']['si_sdr'])}  target-codec as source_delta "
              f"{_fmt(fl['target_codec_delta']['si_sdr'])}  as masked_delta "
              f"{_fmt(fl['target_codec_masked']['si_sdr'])}", flush=True)

    result = run_sweep(pipe, eval_set, settings, items, seed=args.seed, on_update=update, judge=judge)
    chosen = result["chosen"]
    print(f"rule: {RULE}\nchosen: {chosen['label'] if chosen else 'none (no row had both metrics)'}\n"
          f"wrote {args.out}", flush=True)
    return 0
