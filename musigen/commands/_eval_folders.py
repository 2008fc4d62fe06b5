"""`musigen eval fad` and `musigen eval clap-score`: metrics on folders of a user's own audio.

Declared with the standard library only; the handlers import the models when they run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musigen.output_paths import add_overwrite_flag, check_output


def register(esub: argparse._SubParsersAction) -> None:
    """Add `eval fad` and `eval clap-score`."""
    f = esub.add_parser("fad", help="Frechet audio distance between two folders of audio files",
                        description="FAD between the window embeddings of every audio file in REF_DIR and "
                                    "in TEST_DIR (any sample rate or channel count; resampled, mixed to mono).")
    f.add_argument("ref_dir", type=Path, metavar="REF_DIR", help="reference audio folder")
    f.add_argument("test_dir", type=Path, metavar="TEST_DIR", help="audio folder to compare with it")
    f.add_argument("--embedder", default="clap",
                   help="clap (the shipped demo CLAP, default), judge (the shipped instrument judge), "
                        "or a CLAP or judge model folder")
    f.add_argument("--json", type=Path, default=None, help="also write the result here")
    add_overwrite_flag(f)
    f.set_defaults(func=_fad)

    c = esub.add_parser("clap-score", help="mean audio-text cosine of a folder of audio files and their prompts",
                        description="CLAP score of every audio file in DIR against its prompt. --prompts is "
                                    "either a .jsonl file of {\"file\": NAME, \"prompt\": TEXT} lines (file "
                                    "names relative to DIR, every audio file once) or a text file with one "
                                    "prompt per line, matched in order to DIR's audio files sorted by name.")
    c.add_argument("dir", type=Path, metavar="DIR", help="audio folder")
    c.add_argument("--prompts", type=Path, required=True, metavar="FILE",
                   help=".jsonl with file + prompt per line, or text with one prompt per line (sorted file order)")
    c.add_argument("--embedder", default="clap",
                   help="clap (the shipped demo CLAP, default), a CLAP folder or a CLAP hub id")
    c.add_argument("--json", type=Path, default=None, help="also write the result (with per-file scores) here")
    add_overwrite_flag(c)
    c.set_defaults(func=_clap_score)


def _fad(args: argparse.Namespace) -> int:
    import warnings

    from musigen.atomic import write_json
    from musigen.eval.harness.folders import folder_fad, load_folder_embedder
    from musigen.eval.metrics.fad import FadWarning

    if args.json:
        check_output(args.json, overwrite=args.overwrite, flag="--json")
    embedder = load_folder_embedder(args.embedder)
    with warnings.catch_warnings():  # said once below, as a note, not as a Python warning
        warnings.simplefilter("ignore", FadWarning)
        result = folder_fad(args.ref_dir, args.test_dir, embedder)
    print(f"FAD {result.value:.6g} ({embedder.name}; {result.n_reference} reference / {result.n_test} test "
          f"windows of dimension {result.dim})")
    if result.warning:
        print(f"note: {result.warning}")
    if args.json:
        write_json(args.json, {"reference": str(args.ref_dir), "test": str(args.test_dir), **result.as_dict()})
        print(f"wrote {args.json}")
    return 0


def _clap_score(args: argparse.Namespace) -> int:
    from musigen.atomic import write_json
    from musigen.eval.harness.folders import audio_files, folder_clap_score, load_clap

    if args.json:
        check_output(args.json, inputs=[args.prompts], overwrite=args.overwrite, flag="--json")
    model = load_clap(args.embedder)
    result = folder_clap_score(args.dir, args.prompts, model)
    print(f"CLAP score {result.value:.4f} ({result.embedder}; {len(result.per_item)} files)")
    if args.json:
        files = [p.name for p in audio_files(args.dir)]
        write_json(args.json, {"folder": str(args.dir), "prompts": str(args.prompts), **result.as_dict(),
                               "per_file": dict(zip(files, result.per_item))})
        print(f"wrote {args.json}")
    return 0
