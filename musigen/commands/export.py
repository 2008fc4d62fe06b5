"""`musigen export codec|clap|instructme|compact ...`: training runs to shippable folders.

Lightning checkpoints carry optimiser state and are pickles; what `Codec.from_pretrained`,
`load_embedder` and the pipelines load is `config.json` plus safetensors.  Each subcommand
only parses its arguments and calls the exporter in `musigen.training` (or
`musigen.pipeline_compact`), so the same step is one function call from Python.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `export` command group."""
    p = sub.add_parser("export", help="export a training checkpoint to a model or pipeline "
                       "folder, or compact a pipeline folder for shipping")
    esub = p.add_subparsers(dest="export_command", metavar="SUBCOMMAND")

    c = esub.add_parser(
        "codec", help="a CodecModule .ckpt -> a codec folder (Codec.from_pretrained)",
        description="Write config.json + model.safetensors (fp16 by default) of a codec run, "
        "e.g. runs/codec_demo/checkpoints/last.ckpt -> checkpoints/codec_demo.")
    _checkpoint_args(c, "a CodecModule .ckpt (e.g. runs/codec_demo/checkpoints/last.ckpt)",
                     "folder to write config.json + model.safetensors into")
    c.add_argument("--dtype", default="float16", choices=DTYPES,
                   help="dtype of the written weights (default float16)")
    c.set_defaults(func=_codec)

    a = esub.add_parser(
        "clap", help="a ClapModule .ckpt -> a musigen_clap embedder folder",
        description="Write the shipped form (config.json + safetensors, fp16 by default) of a "
        "CLAP run, e.g. runs/clap_demo/checkpoints/last.ckpt -> checkpoints/clap_demo.")
    _checkpoint_args(a, "a ClapModule .ckpt", "embedder folder to write")
    a.add_argument("--dtype", default="float16", choices=DTYPES,
                   help="dtype of the written weights (default float16)")
    a.set_defaults(func=_clap)

    i = esub.add_parser(
        "instructme", help="an InstructMEModule .ckpt -> a pipeline folder (musigen edit --model)",
        description="The pipeline gets the EMA U-Net (--raw for the trained weights), the "
        "latent statistics of the training data, the codec and text encoder that pre-encoded "
        "that data (recorded in the checkpoint) and a copy of the chord recogniser.")
    _checkpoint_args(i, "an InstructMEModule .ckpt", "pipeline folder to write")
    i.add_argument("--codec", default=None, help="codec folder/preset (default: the run's)")
    i.add_argument("--raw", action="store_true", help="export the raw weights, not the EMA")
    i.add_argument("--chords", type=Path, default=None,
                   help="chord model folder (default: the shipped checkpoints/chords)")
    i.set_defaults(func=_instructme)

    m = esub.add_parser(
        "compact", help="make an exported pipeline folder small enough to ship (in place)",
        description="Store the pipeline's float32 weights as float16 and replace its private "
        "codec copy by a codec preset when the encoder and codebooks are the preset's.")
    m.add_argument("directory", type=Path, help="a MusiCoT or InstructME pipeline folder")
    m.add_argument("--codec", default="demo", help="codec preset to share ('' keeps the copy)")
    m.set_defaults(func=_compact)

    p.set_defaults(func=lambda args: p.print_help() or 2)


def _checkpoint_args(p: argparse.ArgumentParser, checkpoint: str, out_dir: str) -> None:
    p.add_argument("checkpoint", type=Path, help=checkpoint)
    p.add_argument("out_dir", type=Path, help=out_dir)


def _codec(args: argparse.Namespace) -> int:
    from musigen.training.export_codec import export

    out = export(args.checkpoint, args.out_dir, args.dtype)
    print(f"exported {args.checkpoint} -> {out}")
    return 0


def _clap(args: argparse.Namespace) -> int:
    from musigen.training.clap_module import export

    out = export(args.checkpoint, args.out_dir, args.dtype)
    print(f"exported {args.checkpoint} -> {out}")
    return 0


def _instructme(args: argparse.Namespace) -> int:
    from musigen.training.export_instructme import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out_dir, args.codec, args.raw, args.chords)
    print(f"exported {args.checkpoint} -> {out}")
    return 0


def _compact(args: argparse.Namespace) -> int:
    from musigen.pipeline_compact import compact

    result = compact(args.directory, args.codec or None)
    shared = f", codec shared as {args.codec}" if result["codec_shared"] else ""
    print(f"{args.directory}: {int(result['bytes_saved']) / 2**20:.1f} MB saved{shared}")
    return 0
