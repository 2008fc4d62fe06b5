"""`musigen train fit|validate|chords ...`: every training entry a user runs.

The big models train through Lightning recipes: ``musigen train fit --config
recipes/<model>/<size>.yaml [--ckpt_path last]`` hands every argument after ``fit`` unchanged
to the LightningCLI (:mod:`musigen.training.cli`), so a recipe's own comments, overrides and
``--print_config`` work exactly as there.  ``chords`` is a small trainer that needs no recipe.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _seed_range(text: str) -> range:
    """``start:stop`` -> range(start, stop); argparse reports a ValueError as a usage error."""
    start, sep, stop = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected start:stop, got {text!r}")
    try:
        seeds = range(int(start), int(stop))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers start:stop, got {text!r}") from None
    if not len(seeds):
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return seeds


#: LightningCLI subcommands offered here; the rest of the line is the LightningCLI's.
LIGHTNING_SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("fit", "train a Lightning recipe: --config recipes/<model>/<size>.yaml [--ckpt_path last]"),
    ("validate", "run a recipe's validation loop on a checkpoint (--ckpt_path)"),
)

#: ChordTrainConfig and ChordModelConfig fields that the command line can set.
_TRAIN_OPTIONS: tuple[tuple[str, type], ...] = (
    ("steps", int), ("batch_size", int), ("crop_frames", int), ("lr", float),
    ("weight_decay", float), ("grad_clip", float), ("seed", int), ("log_every", int),
)
_MODEL_OPTIONS: tuple[tuple[str, type], ...] = (("hidden", int), ("self_transition", float))


def _given(args: argparse.Namespace, options: tuple[tuple[str, type], ...]) -> dict[str, object]:
    return {name: getattr(args, name) for name, _ in options if getattr(args, name) is not None}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` command group."""
    p = sub.add_parser("train", help="train a model: a Lightning recipe (fit, validate) or the "
                       "chord recogniser (chords)")
    tsub = p.add_subparsers(dest="train_command", metavar="SUBCOMMAND")
    for name, text in LIGHTNING_SUBCOMMANDS:
        # no options of our own: `--help`, `--config`, `--print_config`... go to LightningCLI
        lp = tsub.add_parser(name, help=text, add_help=False)
        lp.set_defaults(func=_lightning, lightning_command=name, pass_through=True)

    c = tsub.add_parser(
        "chords",
        help="train the learned chord recogniser on the procedural corpus",
        description="Render corpus pieces (exact chord labels), train the recogniser and save "
        "it as a chord model folder (config.json + model.safetensors). The shipped one is "
        "checkpoints/chords: --seeds 1000:1200 --renderers builtin,fluidsynth.",
    )
    c.add_argument("--out", type=Path, required=True, help="chord model folder to write")
    c.add_argument("--seeds", type=_seed_range, default=range(1000, 1200),
                   help="training seeds start:stop (keep disjoint from eval seeds 90000+)")
    c.add_argument("--renderers", default="builtin,fluidsynth",
                   help="comma list of builtin, fluidsynth")
    c.add_argument("--duration", type=float, default=30.0, help="seconds per piece")
    c.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    c.add_argument("--threads", type=int, default=1,
                   help="torch threads, at most the core count (default 1)")
    c.add_argument("--quiet", action="store_true", help="no progress bar or loss lines")
    # Unset settings take the dataclass defaults (ChordTrainConfig, ChordModelConfig); they
    # are not imported here so that `musigen --help` does not load torch.
    for name, kind in _TRAIN_OPTIONS + _MODEL_OPTIONS:
        c.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None,
                       help="default: the config's")
    c.set_defaults(func=_train_chords)

    p.set_defaults(func=lambda args: p.print_help() or 2)


def _lightning(args: argparse.Namespace) -> int:
    """Hand the rest of the line to the LightningCLI; its exits (--help, --print_config) and
    its errors (a MusigenError, one line) come back as this command's.  A crash during
    training is not bad input: its traceback is printed before the one-line summary."""
    import traceback

    from musigen.errors import MusigenError
    from musigen.training.cli import main

    try:
        main([args.lightning_command, *getattr(args, "rest", [])], prog="musigen train")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    except MusigenError:
        raise
    except Exception:
        traceback.print_exc()
        raise
    return 0


def _train_chords(args: argparse.Namespace) -> int:
    import torch

    from musigen.chords.model import ChordModelConfig
    from musigen.limits import check_threads
    from musigen.training.chord_trainer import ChordTrainConfig, train_from_corpus

    check_threads(args.threads)
    torch.set_num_threads(args.threads)
    config = ChordModelConfig(**_given(args, _MODEL_OPTIONS))  # type: ignore[arg-type]
    train = ChordTrainConfig(**_given(args, _TRAIN_OPTIONS))  # type: ignore[arg-type]
    out = train_from_corpus(args.out, args.seeds, [r for r in args.renderers.split(",") if r],
                            args.duration, config, train, args.cache, progress=not args.quiet)
    print(f"saved {out}")
    return 0
