"""`musigen eval ...`: build held-out sets and evaluate generation, editing and codecs."""

from __future__ import annotations

import argparse
from pathlib import Path

from musigen.output_paths import add_overwrite_flag


def _common(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("--model", required=True,
                   help="a baseline name, a pipeline folder, or package.module:Factory"
                   if kind != "codec" else "codec preset (demo, encodec_32khz), folder or hub id")
    p.add_argument("--set", dest="set_dir", type=Path, required=True,
                   help="a set folder, or the root written by `eval make-sets`")
    p.add_argument("--out", type=Path, required=True, help="report folder (metrics.json, report.md, index.html)")
    p.add_argument("--variant", choices=("builtin", "fluidsynth"), default="builtin",
                   help="which render of the sets when --set is a make-sets root")
    p.add_argument("--judge", default=None, help="instrument judge folder (default: checkpoints/judge_codec)")
    p.add_argument("--listen", type=int, default=None, help="items per task on the listening page")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `eval` command group."""
    p = sub.add_parser("eval", help="held-out sets, metrics and listening reports")
    esub = p.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")

    m = esub.add_parser("make-sets", help="build the standard held-out evaluation sets")
    m.add_argument("--out", type=Path, required=True, help="root folder of the sets")
    m.add_argument("--n-gen", type=int, default=40, help="generation prompts")
    m.add_argument("--n-edit", type=int, default=20, help="triplets per edit task")
    m.add_argument("--duration", type=float, default=10.0, help="seconds per clip")
    m.add_argument("--sample-rate", type=int, default=16000,
                   help="sample rate of the rendered sets in Hz (default 16000)")
    m.add_argument("--fluidsynth", choices=("auto", "yes", "no"), default="auto",
                   help="also build the FluidSynth-rendered variant (auto: when available)")
    m.add_argument("--split", choices=("test", "dev"), default="test",
                   help="test: the held-out items reports use; dev: other pieces, to tune settings on")
    m.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    m.set_defaults(func=_make_sets)

    for kind, helptext in (("generate", "evaluate a text-to-music system"), ("edit", "evaluate an edit system")):
        e = esub.add_parser(kind, help=helptext)
        _common(e, kind)
        e.add_argument("--seed", type=int, default=0, help="item i uses seed + i (default 0)")
        e.add_argument("--clap", default="demo", help="CLAP embedder for the CLAP score ('none' to skip)")
        e.add_argument("--no-baselines", action="store_true", help="score only --model")
        if kind == "edit":
            e.add_argument("--no-chords", action="store_true", help="skip chord recognition")
        e.set_defaults(func=_edit if kind == "edit" else _generate)

    c = esub.add_parser("codec", help="evaluate a codec's code and latent round trips")
    _common(c, "codec")
    c.add_argument("--limit", type=int, default=None, help="only the first N clips")
    c.add_argument("--no-chords", action="store_true", help="skip chord recognition")
    c.set_defaults(func=_codec)

    j = esub.add_parser("judge", help="measure the instrument judge on a corpus manifest (AP, AUC, mAP)")
    j.add_argument("--manifest", type=Path, required=True, help="held-out corpus manifest.jsonl")
    j.add_argument("--judge", default=None, help="judge folder (default: checkpoints/judge_codec)")
    j.add_argument("--subsets", type=int, default=0, help="also score N random stem sub-mixes per piece")
    j.add_argument("--no-full-mix", action="store_true", help="score only the sub-mixes")
    j.add_argument("--hop", type=float, default=1.5, help="window hop in seconds")
    j.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    add_overwrite_flag(j)
    j.add_argument("--codec", default=None,
                   help="score the windows after a round trip through this codec folder (codec outputs)")
    j.add_argument("--codec-codebooks", type=int, default=0,
                   help="with --codec: 0 = continuous latents (InstructME), k = the first k codebooks (MusiCoT)")
    j.set_defaults(func=_judge)

    # these import only the standard library at module level, so --help stays fast
    from musigen.commands import _eval_folders, _eval_studies
    from musigen.eval.harness import paired_compare
    from musigen.eval.studies import (
        analysis_eval,
        edit_denoise,
        edit_sweep,
        judge_calibration,
        per_instruction_margins,
        reference_use,
    )

    w = esub.add_parser("sweep-edit", help="choose InstructME sampling settings on a dev edit set")
    edit_sweep.add_arguments(w)
    w.set_defaults(func=_sweep_edit)

    d = esub.add_parser("edit-denoise",
                        help="does an InstructME U-Net know more than the source? (clean-estimate error per task)")
    edit_denoise.add_arguments(d)
    d.set_defaults(func=_edit_denoise)

    k = esub.add_parser("calibrate-judge",
                        help="fit the judge's per-instrument thresholds on a dev edit set")
    judge_calibration.add_arguments(k)
    k.set_defaults(func=lambda args: judge_calibration.run_from_args(args))

    g = esub.add_parser("fit-margins",
                        help="fit the per-instruction accuracy's presence margins on a dev edit set")
    per_instruction_margins.add_arguments(g)
    g.set_defaults(func=lambda args: per_instruction_margins.run_from_args(args))

    r = esub.add_parser("reference-use", help="does a MusiCoT LM read its style reference? (held-out losses)")
    reference_use.add_arguments(r)
    r.set_defaults(func=_reference_use)

    a = esub.add_parser("analysis", help="score `musigen analyze` per segment against the exact stems")
    analysis_eval.add_arguments(a)
    a.set_defaults(func=lambda args: analysis_eval.run_from_args(args))

    s = esub.add_parser("sections", help="score the song-section analysis against a manifest's "
                                         "exact sections (mir_eval boundary detection)")
    s.add_argument("manifest", type=Path, help="a manifest.jsonl whose items carry sections "
                                                "(e.g. from `musigen data synth`)")
    s.add_argument("--window", type=float, default=3.0,
                   help="boundary hit window in seconds (default 3, as in docs/editing.md)")
    s.set_defaults(func=_sections)

    q = esub.add_parser("compare", help="paired per-item differences between edit reports, per task")
    paired_compare.add_arguments(q)
    q.set_defaults(func=lambda args: paired_compare.run_from_args(args))

    _eval_studies.register(esub)
    _eval_folders.register(esub)

    p.set_defaults(func=lambda args: p.print_help() or 2)


def _done(paths: object) -> int:
    print(f"wrote {paths.html}\n      {paths.metrics}\n      {paths.markdown}")  # type: ignore[attr-defined]
    return 0


def _make_sets(args: argparse.Namespace) -> int:
    from musigen.eval.harness.sets import make_sets

    built = make_sets(args.out, n_gen=args.n_gen, n_edit=args.n_edit, duration=args.duration,
                      sample_rate=args.sample_rate, fluidsynth=args.fluidsynth, progress=not args.no_progress,
                      on_note=print, split=args.split)
    for name, path in built.items():
        print(f"{name}: {path}")
    return 0


def _edit(args: argparse.Namespace) -> int:
    from musigen.eval.harness.runner import run_edit_eval

    return _done(run_edit_eval(args.model, args.set_dir, args.out, variant=args.variant, seed=args.seed,
                               judge=args.judge, clap=None if args.clap == "none" else args.clap,
                               chords=not args.no_chords, baselines=not args.no_baselines,
                               n_listen=2 if args.listen is None else args.listen))


def _generate(args: argparse.Namespace) -> int:
    from musigen.eval.harness.runner import run_generation_eval

    return _done(run_generation_eval(args.model, args.set_dir, args.out, variant=args.variant, seed=args.seed,
                                     judge=args.judge, clap=None if args.clap == "none" else args.clap,
                                     baselines=not args.no_baselines,
                                     n_listen=4 if args.listen is None else args.listen))


def _codec(args: argparse.Namespace) -> int:
    from musigen.eval.harness.runner import run_codec_eval

    return _done(run_codec_eval(args.model, args.set_dir, args.out, variant=args.variant, judge=args.judge,
                                chords=not args.no_chords, limit=args.limit,
                                n_listen=3 if args.listen is None else args.listen))


def _judge(args: argparse.Namespace) -> int:
    from musigen.atomic import write_json
    from musigen.judge.data import format_judge_metrics, measure_judge
    from musigen.judge.model import load_judge

    from musigen.output_paths import check_output

    if args.json:
        check_output(args.json, inputs=[args.manifest], overwrite=args.overwrite, flag="--json")
    judge = load_judge(args.judge)
    round_trip, where = None, str(args.manifest)
    if args.codec:
        from musigen.codec_round_trip import ThroughCodec

        round_trip = ThroughCodec.from_pretrained(args.codec, (args.codec_codebooks,))
        path = "latents" if args.codec_codebooks == 0 else f"{args.codec_codebooks} codebooks"
        where += f", through {args.codec} ({path})"
    result = measure_judge(judge, args.manifest, subsets=args.subsets, full_mix=not args.no_full_mix, hop_s=args.hop,
                           round_trip=round_trip)
    print(format_judge_metrics(result, f"{judge.name} on {where}"))
    if args.json:
        write_json(args.json, result)
    return 0


def _sweep_edit(args: argparse.Namespace) -> int:
    from musigen.eval.studies.edit_sweep import run_from_args
    from musigen.limits import check_threads

    check_threads(args.threads)
    return run_from_args(args)


def _edit_denoise(args: argparse.Namespace) -> int:
    from musigen.eval.studies.edit_denoise import run_from_args
    from musigen.limits import check_threads

    check_threads(args.threads)
    return run_from_args(args)


def _reference_use(args: argparse.Namespace) -> int:
    from musigen.eval.studies.reference_use import run_from_args
    from musigen.limits import check_threads

    check_threads(args.threads)
    return run_from_args(args)


def _sections(args: argparse.Namespace) -> int:
    from musigen.errors import ConfigError
    from musigen.structure.evaluate import score_manifest

    if not args.window > 0:
        raise ConfigError(f"--window must be > 0 seconds, got {args.window}")
    print(score_manifest(args.manifest, args.window).line())
    return 0
