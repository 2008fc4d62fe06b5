"""`musigen chords song.wav [--lab out.lab]`: print the chord timeline, optionally save a .lab.

The learned recogniser comes from ``--model`` (a chord model folder, or an InstructME
pipeline folder, whose own ``chords/`` component is then used) or else the shipped
``checkpoints/chords``.  Training one is ``musigen train chords``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from musigen.output_paths import add_overwrite_flag


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `chords` command."""
    p = sub.add_parser("chords", help="recognise chords in an audio file")
    p.add_argument("audio", type=Path, help="audio file (wav, flac, ogg, mp3)")
    p.add_argument("--lab", type=Path, default=None, help="also write a three-column .lab file")
    p.add_argument(
        "--method",
        choices=("model", "auto", "templates"),
        default="model",
        help="model (default): the learned recogniser, an error if there is none; auto: the "
        "learned one if found, else templates (and says so); templates: no model",
    )
    p.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        type=Path,
        default=None,
        help="chord model folder, or an InstructME pipeline folder (its chords/ component); "
        "default: the shipped checkpoints/chords",
    )
    add_overwrite_flag(p)
    p.set_defaults(func=_chords)


def chord_model_folder(folder: Path) -> Path:
    """The chord model folder that `folder` names: itself, or a pipeline's chord component."""
    from musigen.errors import CheckpointError
    from musigen.instructme.pipeline import PIPELINE_NAME, chord_model_dir

    if not folder.is_dir():
        raise CheckpointError(f"chord model folder not found: {folder}")
    if (folder / PIPELINE_NAME).is_file():
        return chord_model_dir(folder)
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"{folder} is neither a chord model folder (config.json + model.safetensors) "
            "nor an InstructME pipeline folder"
        )
    return folder


def _chords(args: argparse.Namespace) -> int:
    from musigen.audio import load_audio
    from musigen.chords import (
        ChordRecognizer,
        default_checkpoint,
        missing_default_message,
        recognize_chords,
        write_lab,
    )

    from musigen.audio import audio_info
    from musigen.limits import check_input_duration
    from musigen.output_paths import check_output

    if args.lab is not None:
        check_output(args.lab, inputs=[args.audio], overwrite=args.overwrite, flag="--lab")
    check_input_duration(audio_info(args.audio), what="the audio")  # header only
    wav, sr = load_audio(args.audio, channels=1)
    method = args.method
    model = None
    if method != "templates":
        if args.model is not None:
            model = ChordRecognizer.from_pretrained(chord_model_folder(args.model))
        elif (default_checkpoint() / "model.safetensors").is_file():
            model = ChordRecognizer.from_pretrained(default_checkpoint())
        elif method == "auto":
            print(f"musigen: note: {missing_default_message(default_checkpoint())}; "
                  "using the template recogniser", file=sys.stderr)
            method = "templates"
        else:
            from musigen.errors import CheckpointError

            raise CheckpointError(missing_default_message(default_checkpoint()))
    chords = recognize_chords(wav, sr, method=method, model=model)
    for start, end, label in chords:
        print(f"{start:8.3f} {end:8.3f}  {label}")
    if args.lab is not None:
        write_lab(args.lab, chords)
        print(f"wrote {args.lab}")
    return 0
