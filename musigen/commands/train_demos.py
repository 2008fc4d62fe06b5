"""`musigen train-demos`: train the whole demo chain under one wall-time budget (resumable)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-demos",
        help="train codec, CLAP, thoughts, MusiCoT LM (+ no-CoT twin) and InstructME U-Net under one budget",
        description="Build the corpus, train every demo model under one wall-time budget, export the "
                    "pipeline folders and evaluate them on held-out sets beside the shipped checkpoints. "
                    "Rerun the same command to resume after any stop, kill -9 included.")
    p.add_argument("--budget", required=True,
                   help="wall time for the whole chain: seconds or a duration such as 90m, 2h30m, 36h")
    p.add_argument("--size", default="demo", help="debug (minutes, CPU) or demo (the shipped scale)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: bf16 autocast, fused AdamW, data workers, corpus rendered in parallel")
    p.add_argument("--out", type=Path, required=True, help="run folder (state, data, checkpoints, exports)")
    p.add_argument("--workers", type=int, default=None,
                   help="corpus rendering processes (default: 1 on cpu, every core on cuda)")
    p.add_argument("--stop-after", default=None, help="stop after this stage (corpus, codec, clap, "
                   "encode_lm, lm, lm_nocot, unet, eval)")
    p.add_argument("--plan", action="store_true", help="print the budget schedule and exit")
    p.add_argument("--curves", action="store_true",
                   help="write <out>/curves.md and curves.png (validation loss against hours spent) and exit")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from musigen.errors import ConfigError
    from musigen.training.demos.schedule import parse_budget, plan_lines
    from musigen.training.demos.sizes import get_size

    size = get_size(args.size)
    budget = parse_budget(args.budget)
    cores = os.cpu_count() or 1
    workers = args.workers if args.workers is not None else (cores if args.device == "cuda" else 1)
    if not 1 <= workers <= max(1, cores):
        raise ConfigError(f"--workers must be between 1 and the {cores} cores here, got {workers}")
    if args.plan:
        print("\n".join(plan_lines(size, budget)))
        return 0
    if args.curves:
        from musigen.training.demos.curves import write_curves

        if not (args.out / "state.json").is_file():
            raise ConfigError(f"{args.out} is not a train-demos run folder (no state.json)")
        for path in write_curves(args.out):
            if path is not None:
                print(f"wrote {path}")
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is visible to torch here")
    from musigen.training.demos.runner import run
    from musigen.training.demos.stages import StageFailed

    try:
        run(size, args.out, args.device, budget, workers, stop_after=args.stop_after)
    except StageFailed as exc:
        print(f"musigen train-demos: {exc}", flush=True)
        return 1
    report = args.out / "report.md"
    print(f"done: {report}" if report.is_file() else f"stopped; rerun to continue ({args.out / 'state.json'})")
    return 0
