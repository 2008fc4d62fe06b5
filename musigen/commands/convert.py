"""`musigen convert musicgen SRC OUT`: another project's checkpoint as a musigen pipeline.

SRC is a transformers-format MusicGen folder (as `MusicgenForConditionalGeneration.
save_pretrained` writes it, and as the hub's musicgen-small/medium/large hold it). OUT becomes
a plan-free MusiCoT pipeline folder that `musigen generate --model OUT` runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musigen.output_paths import add_overwrite_flag


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `convert` command group."""
    p = sub.add_parser("convert", help="convert another project's checkpoint into a musigen folder",
                       description="Convert a checkpoint of another project into a musigen "
                                   "pipeline folder.")
    kinds = p.add_subparsers(dest="convert_kind", metavar="KIND")
    m = kinds.add_parser(
        "musicgen", help="a transformers MusicGen folder -> a plan-free MusiCoT pipeline",
        description="Convert a transformers-format MusicGen folder (mono, text-to-music; "
                    "safetensors weights and its tokenizer) into a MusiCoT pipeline folder "
                    "without thought tokens. Melody and stereo MusicGen are refused.")
    m.add_argument("src", type=Path, help="MusicGen folder (config.json, *.safetensors, tokenizer)")
    m.add_argument("out", type=Path, help="pipeline folder to write (must not exist or be empty)")
    m.add_argument("--window", type=float, default=30.0,
                   help="seconds the LM writes per call; longer pieces continue window by "
                        "window (default 30, MusicGen's training length)")
    m.add_argument("--context", type=float, default=12.0,
                   help="seconds of the previous window each window continues from (default 12, "
                        "as audiocraft's 18 s extension stride)")
    add_overwrite_flag(m)
    m.set_defaults(func=_convert_musicgen)
    p.set_defaults(func=_no_kind)


def _no_kind(args: argparse.Namespace) -> int:
    from musigen.errors import ConfigError

    raise ConfigError("say what to convert: musigen convert musicgen SRC OUT")


def _convert_musicgen(args: argparse.Namespace) -> int:
    from musigen.convert.musicgen import check_source, convert_musicgen

    check_source(args.src)  # before torch/transformers load: a bad folder fails fast
    out = convert_musicgen(args.src, args.out, window_s=args.window, context_s=args.context,
                           overwrite=args.overwrite)
    print(f"wrote {out} (plan-free MusiCoT pipeline from MusicGen {args.src})")
    return 0
