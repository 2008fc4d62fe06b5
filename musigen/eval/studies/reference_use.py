"""Does a MusiCoT LM read its style reference?  Held-out losses with and without it.

An LM can learn to ignore the reference thoughts prepended to its sequence (its loss is
fine without them), and then `--ref style.wav` silently does nothing.  This measures it
directly: teacher-forced thought and audio losses on held-out excerpts, with the
reference that training would give (another excerpt of the same piece: `own`), with NULL
tokens instead (`none`, the same length, so positions do not move) and with another
row's reference (`other`: the reference rolled by one in the batch), each with the
caption kept and dropped (without a caption the reference is the only style cue, so its
effect should be largest there).  Every condition sees the same batches, so the
differences none-minus-own and other-minus-own are paired per batch; their standard
error is over batches.  A model that reads its reference has none > own and other > own.

One step further, whether the *audio* reads its plan: the audio loss with the plan replaced
by NULL tokens (`own, plan dropped`; same positions, own reference) against `own`. An LM
whose audio ignores its plan shows ~0 here, and then nothing the plan takes from a
reference can reach the sound (plan guidance, `plan_cfg`, needs an LM trained with plan
dropout to know the no-plan mode it contrasts with).

    musigen eval reference-use --model checkpoints/musicot_demo \\
        --data data/musicot/val --out runs/reference_use
"""

from __future__ import annotations

import argparse
import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from musigen.errors import CheckpointError, ConfigError

CAPTIONS = ("kept", "dropped")
REFERENCES = ("own", "none", "other")
PLAN_DROPPED = "own, plan dropped"
LOSSES = ("thought_loss", "audio_loss")
_FIT = ("num_codebooks", "codebook_size", "thought_levels", "thought_codebook_size", "text_dim")


def _mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean (None with fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _load(model: Path) -> tuple[Any, Any]:
    """The pipeline's config and its LM (a no-CoT model takes no reference: ConfigError)."""
    from musigen import hub
    from musigen.musicot.lm import MusiCoTLM
    from musigen.musicot.pipeline import MusiCoTPipelineConfig

    if not model.is_dir():
        raise CheckpointError(f"MusiCoT pipeline folder not found: {model}")
    config = hub.load_config(model, MusiCoTPipelineConfig, "pipeline.json")
    if not config.use_thoughts:
        raise ConfigError(f"{model} is a no-CoT pipeline (use_thoughts false): its LM takes no "
                          "reference, so there is nothing to measure")
    return config, MusiCoTLM.from_pretrained(hub.inside(model, config.lm, "lm"))


def measure_reference_use(model: str | Path, data: str | Path, batches: int = 8, batch_size: int = 8,
                          seed: int = 0, crop_s: float | None = None, ref_segments: int | None = None,
                          ref_levels: int | None = None) -> dict[str, Any]:
    """Mean losses per (caption, reference) condition and the paired differences to `own`.

    The reference shape defaults to the pipeline's (`max_ref_segments` x `ref_levels`, what
    an exported LM was trained with) and the excerpt length to its `window_s`.
    """
    import torch

    from musigen.encode.musicot_dataset import (
        MusiCoTShards,
        PhaseBatchSampler,
        collate,
    )

    if batches < 1 or batch_size < 2:
        raise ConfigError(f"need batches >= 1 and batch_size >= 2 (the 'other' reference comes from "
                          f"another row), got {batches} and {batch_size}")
    config, lm = _load(Path(model))
    crop = config.window_s if crop_s is None else crop_s
    segs = config.max_ref_segments if ref_segments is None else ref_segments
    levels = config.ref_levels if ref_levels is None else ref_levels
    if crop <= 0 or segs < 1 or levels < 1:
        raise ConfigError(f"need crop_s > 0, ref_segments >= 1, ref_levels >= 1; got {crop}, {segs}, {levels}")
    ds = MusiCoTShards(data, crop, segs, levels, seed)
    mismatch = [f"{k}: data {ds.index[k]}, LM {getattr(lm.config, k)}" for k in _FIT
                if ds.index[k] != getattr(lm.config, k)]
    if mismatch:
        raise CheckpointError(f"{data} was not encoded for this LM ({'; '.join(mismatch)})")
    if levels > lm.config.thought_levels:
        raise ConfigError(f"ref_levels {levels} exceeds the LM's {lm.config.thought_levels} thought levels")
    sampler = PhaseBatchSampler(len(ds), batch_size, seed)
    per: dict[tuple[str, str], dict[str, list[float]]] = {
        (c, r): {k: [] for k in LOSSES} for c in CAPTIONS for r in (*REFERENCES, PLAN_DROPPED)}
    lm.eval()
    done = 0
    with torch.no_grad():
        while done < batches:
            for index in sampler:  # a new epoch (new crops) if `batches` outruns the folder
                if done >= batches:
                    break
                batch = collate([ds[i] for i in index])
                _score_batch(lm, batch, seed * 1_000_003 + done, per)
                done += 1
    rows = []
    for (cap, ref), vals in per.items():
        rows.append({"caption": cap, "reference": ref,
                     **{k: _mean_se(v)[0] if v else None for k, v in vals.items()},
                     **{f"{k}_per_batch": v for k, v in vals.items()}})
    diffs = []
    for cap in CAPTIONS:
        for ref in ("none", "other"):
            entry: dict[str, Any] = {"caption": cap, "comparison": f"{ref}-minus-own"}
            for k in LOSSES:
                d = [a - b for a, b in zip(per[(cap, ref)][k], per[(cap, "own")][k])]
                entry[k], entry[f"{k}_se"] = _mean_se(d)
            diffs.append(entry)
        d = [a - b for a, b in zip(per[(cap, PLAN_DROPPED)]["audio_loss"], per[(cap, "own")]["audio_loss"])]
        mean, se = _mean_se(d)
        diffs.append({"caption": cap, "comparison": "plan-dropped-minus-own", "thought_loss": None,
                      "thought_loss_se": None, "audio_loss": mean, "audio_loss_se": se})
    return {"model": str(model), "data": str(data), "batches": batches, "batch_size": batch_size, "seed": seed,
            "crop_s": crop, "ref_segments": segs, "ref_levels": levels, "rows": rows, "differences": diffs}


def _score_batch(lm: Any, batch: dict[str, Any], torch_seed: int,
                 per: dict[tuple[str, str], dict[str, list[float]]]) -> None:
    """All six conditions on one batch, each from the same torch seed (paired)."""
    import torch

    codes = batch["codes"]
    b = codes.shape[0]
    ref = batch["ref"].masked_fill(batch["ref"] < 0, lm.null_id)
    yes, no = torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)
    from musigen.musicot.plan_alignment import batch_alignment

    # a plan-aligned LM also needs each excerpt's place in its plan
    aligned = batch_alignment(batch) if lm.config.plan_aligned else {}
    for cap in CAPTIONS:
        for name, r, drop in (("own", ref, no), ("none", ref, yes), ("other", ref.roll(1, 0), no)):
            torch.manual_seed(torch_seed)
            out = lm(codes, batch["text_states"], batch["text_mask"], plan=batch["plan"], ref=r,
                     drop_text=yes if cap == "dropped" else no, drop_ref=drop, **aligned)
            per[(cap, name)]["thought_loss"].append(float(out.thought_loss))
            per[(cap, name)]["audio_loss"].append(float(out.audio_loss))
        torch.manual_seed(torch_seed)
        out = lm(codes, batch["text_states"], batch["text_mask"], plan=batch["plan"], ref=ref,
                 drop_text=yes if cap == "dropped" else no, drop_ref=no, drop_plan=yes, **aligned)
        per[(cap, PLAN_DROPPED)]["audio_loss"].append(float(out.audio_loss))


def _pm(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:+.4f}" + ("" if se is None else f" ± {se:.4f}")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def render_markdown(result: dict[str, Any]) -> str:
    """Two short tables: mean losses per condition, then the paired differences."""
    setup = (f"{result['batches']} batches x {result['batch_size']} excerpts of {result['crop_s']} s "
             f"from {result['data']}; reference {result['ref_segments']} segments x "
             f"{result['ref_levels']} levels; seed {result['seed']}.")
    lines = [f"# Reference use: {result['model']}", "", setup, "",
             "| caption | reference | thought loss | audio loss |", "|---|---|---|---|"]
    lines += [f"| {r['caption']} | {r['reference']} | {_num(r['thought_loss'])} | {_num(r['audio_loss'])} |"
              for r in result["rows"]]
    lines += ["", "Paired differences (mean ± standard error over batches; > 0: the own reference, or "
              "the plan, helps)", "",
              "| caption | comparison | Δ thought loss | Δ audio loss |", "|---|---|---|---|"]
    lines += [f"| {d['caption']} | {d['comparison']} | {_pm(d['thought_loss'], d['thought_loss_se'])} | "
              f"{_pm(d['audio_loss'], d['audio_loss_se'])} |" for d in result["differences"]]
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options, of `musigen eval reference-use`."""
    p.add_argument("--model", type=Path, required=True, help="exported MusiCoT pipeline folder")
    p.add_argument("--data", type=Path, required=True, help="pre-encoded MusiCoT folder (e.g. data/musicot/val)")
    p.add_argument("--out", type=Path, required=True, help="report folder (reference_use.json, reference_use.md)")
    p.add_argument("--batches", type=int, default=8, help="held-out batches to score")
    p.add_argument("--batch-size", type=int, default=8, help="items per batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the crops and reference draws")
    p.add_argument("--crop-s", type=float, default=None, help="excerpt seconds (default: the pipeline's window_s)")
    p.add_argument("--ref-segments", type=int, default=None, help="default: the pipeline's max_ref_segments")
    p.add_argument("--ref-levels", type=int, default=None, help="default: the pipeline's ref_levels")
    p.add_argument("--threads", type=int, default=1, help="torch threads")


def _command_line(args: argparse.Namespace) -> str:
    parts = ["musigen", "eval", "reference-use"]
    for name in ("model", "data", "out", "batches", "batch_size", "seed", "crop_s", "ref_segments",
                 "ref_levels", "threads"):
        if getattr(args, name) is not None:
            parts += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return shlex.join(parts)


def run_from_args(args: argparse.Namespace) -> int:
    """Measure, write JSON + markdown atomically, print the table."""
    import torch

    from musigen.atomic import write_json, write_text

    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out must be a folder, {args.out} is a file")
    torch.set_num_threads(args.threads)
    result = measure_reference_use(args.model, args.data, args.batches, args.batch_size, args.seed,
                                   args.crop_s, args.ref_segments, args.ref_levels)
    result["command"] = _command_line(args)
    text = render_markdown(result)
    write_json(args.out / "reference_use.json", result)
    write_text(args.out / "reference_use.md", text + f"\n`{result['command']}`\n")
    print(text + f"wrote {args.out / 'reference_use.json'}\n      {args.out / 'reference_use.md'}", flush=True)
    return 0
