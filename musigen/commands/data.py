"""`musigen data ...`: build the procedural corpus and import real stem datasets.

`musigen data encode` is `musigen encode shards` under its earlier name (see
:mod:`musigen.commands.encode`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musigen.output_paths import add_overwrite_flag


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `data` command group."""
    p = sub.add_parser("data", help="build or import datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    s = dsub.add_parser("synth", help="render the procedural multitrack corpus")
    s.add_argument("--n", type=int, required=True, help="number of pieces")
    s.add_argument("--duration", type=float, default=20.0, help="seconds per piece")
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument("--seed", type=int, default=0, help="corpus seed; piece i uses seed+i")
    s.add_argument("--renderer", choices=("builtin", "fluidsynth"), default="builtin",
                   help="builtin: numpy synthesis, always available (default); fluidsynth: "
                        "General MIDI soundfont rendering (needs FluidSynth and a soundfont)")
    s.add_argument("--sample-rate", type=int, default=16000,
                   help="sample rate of the rendered audio in Hz (default 16000)")
    s.add_argument("--genres", nargs="*", default=None, help="restrict to these genres")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.add_argument("--overwrite", action="store_true",
                   help="render into an --out folder that already holds files (they may be "
                        "replaced)")
    s.set_defaults(func=_synth)

    i = dsub.add_parser("import", help="write a manifest for a real stem dataset")
    i.add_argument("dataset", choices=("slakh", "musdb", "moisesdb"),
                   help="which dataset layout ROOT holds")
    i.add_argument("root", type=Path, help="dataset root in its native layout")
    i.add_argument("--out", type=Path, required=True, help="manifest.jsonl to write")
    i.add_argument("--split", default=None, help="train / validation / test where defined")
    i.add_argument(
        "--activity",
        action="store_true",
        help="measure per-stem activity from the audio (decodes every stem; slower)",
    )
    add_overwrite_flag(i)
    i.set_defaults(func=_import)

    from musigen.commands.encode import register_shards

    register_shards(dsub, "encode")  # the earlier name of `musigen encode shards`

    p.set_defaults(func=lambda args: p.print_help() or 2)


def _synth(args: argparse.Namespace) -> int:
    from musigen.data.synth.corpus import build_corpus
    from musigen.output_paths import check_folder_output

    check_folder_output(args.out, overwrite=args.overwrite)
    manifest = build_corpus(
        out_dir=args.out,
        n=args.n,
        duration=args.duration,
        seed=args.seed,
        renderer=args.renderer,
        sample_rate=args.sample_rate,
        genres=args.genres,
        progress=not args.no_progress,
    )
    print(f"wrote {args.n} pieces; manifest: {manifest}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from musigen.data.stems import build_manifest, require_dir
    from musigen.output_paths import check_output

    require_dir(args.root, args.dataset)  # the input's error first
    check_output(args.out, inputs=[args.root], overwrite=args.overwrite)
    n = build_manifest(args.dataset, args.root, args.out, split=args.split, activity=args.activity)
    print(f"wrote {n} items to {args.out}")
    return 0
