"""`musigen eval` subcommands for the studies whose modules import torch at load time.

Their options are declared here, with the standard library only, so `musigen --help` stays
fast; each handler imports its study when it runs.  (Studies whose modules import only the
standard library declare their own options: see `musigen/commands/eval.py`.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musigen.output_paths import add_overwrite_flag, check_output


def register(esub: argparse._SubParsersAction) -> None:
    """Add `eval musicot`, `eval clap`, `eval chords` and `eval codec-corpus`."""
    m = esub.add_parser("musicot", help="MusiCoT on a generation set: plan adherence, reference use, copying")
    m.add_argument("--model", required=True, help="MusiCoT pipeline folder")
    m.add_argument("--compare", default=None, help="a second pipeline folder (e.g. the no-CoT ablation)")
    m.add_argument("--set", dest="set_dir", required=True, help="generation set folder (or make-sets root)")
    m.add_argument("--out", required=True, help="report folder (metrics.json, report.md)")
    m.add_argument("--n", type=int, default=None, help="only the first N items")
    m.add_argument("--duration", type=float, default=None, help="seconds per piece (default: the set's)")
    m.add_argument("--seed", type=int, default=0, help="item i uses seed + i")
    m.add_argument("--clap", default="pipeline",
                   help="embedder for the reference cosine: 'pipeline' (the --model's own) or a "
                        "load_embedder spec (demo, a folder)")
    m.add_argument("--threads", type=int, default=1, help="torch threads, at most the core count")
    m.add_argument("--prompt", default=None,
                   help="replace every caption by this text (e.g. 'music'): reference-only steering")
    m.add_argument("--sampling", action="append", default=[], metavar="FIELD=NUMBER",
                   help="override a default sampling setting of every model (repeatable), e.g. plan_cfg=2")
    m.set_defaults(func=_musicot)

    c = esub.add_parser("clap", help="an audio-text embedder on a held-out manifest: retrieval and tag AP")
    c.add_argument("--model", default="demo", help="embedder: preset, folder or CLAP hub id")
    c.add_argument("--manifest", type=Path, required=True, help="held-out manifest.jsonl")
    c.add_argument("--window", type=float, default=10.0, help="window seconds (default 10)")
    c.add_argument("--hop", type=float, default=5.0, help="window hop in seconds (default 5)")
    c.add_argument("--candidates", type=int, default=100,
                   help="retrieval candidates per query (default 100)")
    c.add_argument("--seed", type=int, default=0, help="seed of the candidate draws (default 0)")
    c.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    add_overwrite_flag(c)
    c.set_defaults(func=_clap)

    h = esub.add_parser("chords", help="the chord recogniser (mir_eval) on freshly rendered held-out pieces")
    h.add_argument("--n", type=int, default=50, help="number of pieces (>= 50 for the targets)")
    h.add_argument("--seed", type=int, default=90000, help="first seed; keep disjoint from training")
    h.add_argument("--renderer", choices=("builtin", "fluidsynth"), default="builtin",
                   help="how the held-out pieces are rendered (default builtin)")
    h.add_argument("--duration", type=float, default=30.0, help="seconds per piece")
    h.add_argument("--method", choices=("auto", "model", "templates"), default="auto",
                   help="model: the learned recogniser; templates: no model; auto (default): the "
                        "learned one if found, else templates")
    h.add_argument("--checkpoint", default=None, help="learned model folder (default: shipped)")
    h.add_argument("--out", type=Path, default=None, help="JSON report path")
    add_overwrite_flag(h)
    h.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    h.set_defaults(func=_chords)

    k = esub.add_parser("codec-corpus",
                        help="a codec at every bandwidth on held-out corpus pieces (report.json, spectrograms)")
    k.add_argument("--model", default="demo", help="codec preset, folder or hub id")
    k.add_argument("--out", type=Path, required=True, help="folder for report.json and spectrograms.png")
    k.add_argument("--corpus", type=Path, default=Path("data/corpus_codec_eval"),
                   help="held-out corpus folder (rendered if absent)")
    k.add_argument("--n", type=int, default=16, help="pieces to render when the corpus is absent")
    k.add_argument("--duration", type=float, default=20.0,
                   help="seconds per rendered piece (default 20)")
    k.add_argument("--seed", type=int, default=900_000,
                   help="first seed of the rendered pieces (default 900000, disjoint from training)")
    k.add_argument("--rebuild", action="store_true", help="re-render the held-out corpus")
    k.add_argument("--threads", type=int, default=1,
                   help="torch threads, at most the core count (default 1)")
    k.add_argument("--chord-codebooks", type=int, nargs="*", default=[],
                   help="lower bandwidths to score chords on too (e.g. 4: what the demo LM decodes)")
    k.set_defaults(func=_codec_corpus)


def _musicot(args: argparse.Namespace) -> int:
    from musigen.eval.studies.musicot_eval import run_from_args
    from musigen.limits import check_threads

    check_threads(args.threads)

    return run_from_args(args)


def _clap(args: argparse.Namespace) -> int:
    from musigen.eval.studies.clap_eval import run_from_args

    if args.out is not None:
        check_output(args.out, inputs=[args.manifest], overwrite=args.overwrite)

    return run_from_args(args)


def _chords(args: argparse.Namespace) -> int:
    from musigen.eval.studies.chord_eval import run_from_args

    if args.out is not None:
        check_output(args.out, overwrite=args.overwrite)

    return run_from_args(args)


def _codec_corpus(args: argparse.Namespace) -> int:
    from musigen.limits import check_threads

    check_threads(args.threads)
    import torch

    from musigen.codec import Codec
    from musigen.eval.harness.codec import ensure_eval_corpus, evaluate, format_summary

    torch.set_num_threads(args.threads)
    manifest = ensure_eval_corpus(args.corpus, args.n, args.duration, args.seed, args.rebuild)
    report = evaluate(Codec.from_pretrained(args.model), manifest, args.out, max_items=args.n,
                      chord_codebooks=args.chord_codebooks)
    print(format_summary(report))
    print(f"wrote {args.out / 'report.json'} and {report['png']}")
    return 0
