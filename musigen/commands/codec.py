"""`musigen codec encode|decode`: audio <-> discrete codec codes (safetensors)."""

from __future__ import annotations

import argparse
from pathlib import Path

from musigen.output_paths import add_overwrite_flag

_MODEL_HELP = "codec: a preset (demo, encodec_32khz), a checkpoint folder or a hub id"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `codec` command group."""
    p = sub.add_parser("codec", help="encode audio to codec codes or decode codes to audio")
    csub = p.add_subparsers(dest="codec_command", metavar="SUBCOMMAND")

    e = csub.add_parser("encode", help="audio file -> codes.safetensors")
    e.add_argument("audio", type=Path, help="audio file (any rate/channels; converted for the codec)")
    e.add_argument("--out", type=Path, required=True, help="codes file to write (.safetensors)")
    e.add_argument("--model", default="demo", help=_MODEL_HELP + " (default: demo)")
    add_overwrite_flag(e)
    e.set_defaults(func=_encode)

    d = csub.add_parser("decode", help="codes.safetensors -> audio file")
    d.add_argument("codes", type=Path, help="codes file written by `musigen codec encode`")
    d.add_argument("--out", type=Path, required=True, help="audio file to write (.wav/.flac)")
    d.add_argument("--model", default=None,
                   help=_MODEL_HELP + " (default: the one recorded in the file, if it is the "
                   "shipped demo codec; any other recorded codec must be named here)")
    add_overwrite_flag(d)
    d.set_defaults(func=_decode)

    p.set_defaults(func=lambda args: p.print_help() or 2)


def _encode(args: argparse.Namespace) -> int:
    from musigen.codec_files import encode_file
    from musigen.output_paths import check_output

    check_output(args.out, inputs=[args.audio], overwrite=args.overwrite)
    out, codes = encode_file(args.audio, args.out, model=args.model)
    print(f"wrote {out}: {codes.shape[0]} codebooks x {codes.shape[1]} frames")
    return 0


def _decode(args: argparse.Namespace) -> int:
    from musigen.codec_files import read_codes_header, decode_file
    from musigen.output_paths import audio_bytes, check_output

    shape, meta = read_codes_header(args.codes)  # lengths checked before anything is decoded
    seconds = shape[1] / float(meta["frame_rate"])
    check_output(args.out, inputs=[args.codes], overwrite=args.overwrite, sidecar=True,
                 need_bytes=audio_bytes(seconds, int(meta["sample_rate"]), 2))
    out = decode_file(args.codes, args.out, model=args.model)
    print(f"wrote {out}")
    return 0
