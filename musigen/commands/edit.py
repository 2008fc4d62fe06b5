"""`musigen edit in.wav --instruction "remove drums" [--instruction "add piano" ...]`.

Edits a piece with InstructME, one round per instruction, and writes the result plus a
JSON sidecar (instructions, seed, model, parameters, chords of every round).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musigen.edits import SECTIONS
from musigen.output_paths import add_overwrite_flag
from musigen.threads import EDIT_THREADS


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `edit` command."""
    p = sub.add_parser(
        "edit", help="edit or remix a piece from text instructions (InstructME)",
        description="Edit a piece with InstructME. Several --instruction flags edit in rounds, "
                    "each applied to the previous result.",
    )
    p.add_argument("audio", type=Path, help="input audio file (wav, flac, ogg, mp3)")
    p.add_argument("--instruction", "-i", action="append", required=True,
                   help='e.g. "remove drums", "replace piano with organ", "remix to funk genre"; '
                        "repeat for multi-round editing")
    p.add_argument("--out", "-o", type=Path, default=None,
                   help="output WAV (default: the first free name of <input stem>_edit.wav, "
                        "<input stem>_edit-2.wav, ... in the current folder); an existing file "
                        "or sidecar is refused unless --overwrite, the input always")
    p.add_argument("--model", type=Path, default=None,
                   help="InstructME pipeline folder (default: checkpoints/instructme_demo)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's pipeline.json; demo 25)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    p.add_argument("--guidance-text", type=float, default=None,
                   help="instruction guidance scale (default: the model's pipeline.json; demo 1.25)")
    p.add_argument("--guidance-source", type=float, default=None,
                   help="source guidance scale (default: the model's pipeline.json; demo 1.0)")
    p.add_argument("--sampler", choices=("dpmsolver++", "ddim"), default=None,
                   help="diffusers sampler (default: the model's pipeline.json; demo ddim)")
    p.add_argument("--output-mode", choices=("decoded", "source_delta", "masked_delta", "auto"), default=None,
                   help="decoded: the edited latents, decoded; source_delta: the input plus what "
                        "the edit changed (keeps untouched parts at full fidelity); masked_delta: "
                        "as source_delta, but the input's codec error is kept only where the edit "
                        "kept the energy (removed parts do not leak back); auto: "
                        "source_delta for add/remove/replace, decoded for extract/remix. "
                        "Default: the model's pipeline.json (demo: masked_delta)")
    p.add_argument("--strength", type=float, default=None,
                   help="in (0, 1]: the fraction of the sampler's steps that run. 1 starts at the "
                        "top of the schedule (pure noise with --sampling-start noise, the fully "
                        "inverted input with --sampling-start inversion); lower starts part way "
                        "down, from the input carried to that noise level (random noise: "
                        "SDEdit; or DDIM inversion), keeping more of it and changing less. "
                        "Default: the model's pipeline.json")
    p.add_argument("--match-source-stats", action=argparse.BooleanOptionalAction, default=None,
                   help="match the edited latents' per-channel mean and std to the input's before "
                        "decoding (undoes guidance overshoot: edits no louder than they should "
                        "be). Default: the model's pipeline.json")
    p.add_argument("--sampling-start", choices=("noise", "inversion"), default=None,
                   help="noise: sample from fresh noise (the paper); inversion: start from the "
                        "DDIM-inverted input, so only the instruction moves the result (keeps "
                        "more of what the edit leaves alone; one or two more U-Net passes per "
                        "step). Default: the model's pipeline.json. ('--start noise' and "
                        "'--start inversion' still mean this)")
    p.add_argument("--start", dest="range_start", default=None, metavar="TIME",
                   help="edit only from this time on (seconds, 45.5, or m:ss, 0:45); outside "
                        "the range the output equals the input sample for sample, the seams "
                        "cross-fade over 50 ms inside it. Applies to every round")
    p.add_argument("--end", dest="range_end", default=None, metavar="TIME",
                   help="edit only up to this time (seconds or m:ss; default: the end of the "
                        "file). Applies to every round")
    p.add_argument("--section", default=None, metavar="NAME",
                   help=f"edit only this section ({', '.join(SECTIONS)}) of the piece "
                        "(found by a self-similarity analysis of the input; every span of it, "
                        "e.g. each chorus); the same "
                        "as ending an instruction with 'in the chorus'. Not with --start/--end")
    p.add_argument("--threads", type=int, default=EDIT_THREADS,
                   help=f"CPU threads, at most the core count (default {EDIT_THREADS}: measured "
                        "faster than every core on a 2-core machine, docs/speed.md)")
    p.add_argument("--progress", action="store_true", help="show a progress bar per round")
    add_overwrite_flag(p)
    p.set_defaults(func=_edit)


def _edit(args: argparse.Namespace) -> int:
    from musigen.audio import audio_info, load_audio, save_audio
    from musigen.edits import parse_instructions
    from musigen.errors import CheckpointError, ConfigError
    from musigen.limits import check_input_duration, check_threads
    from musigen.output_paths import audio_bytes, check_folder, check_output, free_name

    # Cheap checks first, before torch and diffusers are imported (seconds on a CPU box):
    # bad instructions and bad audio fail at once.
    ops = parse_instructions(args.instruction)
    if args.range_start in ("noise", "inversion"):  # the older name of --sampling-start
        if args.sampling_start is not None:
            raise ConfigError("give --sampling-start once (--start noise|inversion is its "
                              "older name)")
        args.sampling_start, args.range_start = args.range_start, None
    check_threads(args.threads)
    from musigen.instructme.edit_range import EditRange

    if args.section is not None and (args.range_start is not None or args.range_end is not None):
        raise ConfigError("give --section or --start/--end, not both")
    edit_range = EditRange(args.range_start, args.range_end, args.section)
    if not edit_range.is_whole and any(op.section for op in ops):
        raise ConfigError("an instruction names its own section ('... in the chorus'); "
                          "drop --start/--end/--section")
    from musigen.instructme.edit_params import EditParams

    # the flags the user gave, checked now; unset ones (None) take the model's pipeline.json
    flags = dict(steps=args.steps, guidance_text=args.guidance_text,
                 guidance_source=args.guidance_source, sampler=args.sampler, seed=args.seed,
                 output=args.output_mode, strength=args.strength,
                 match_source_stats=args.match_source_stats, start=args.sampling_start)
    EditParams().replace(**flags)
    # the output is settled (free name, or refused: taken, the input, a read-only folder)
    # before the audio is decoded and long before any editing
    out = args.out if args.out is not None else free_name(Path(f"{args.audio.stem}_edit.wav"),
                                                          sidecar=True)
    check_output(out, inputs=[args.audio], overwrite=args.overwrite, sidecar=True)
    info = audio_info(args.audio)
    check_input_duration(info, what="the input")
    if edit_range.section is None and not edit_range.is_whole:
        edit_range.spans(info.duration)  # a range outside the file fails before the model loads
    wav, sr = load_audio(args.audio)
    from musigen.checkpoints import default_checkpoint
    from musigen.instructme.pipeline import DEMO_NAME, InstructMEPipeline

    model = (args.model if args.model is not None
             else default_checkpoint(DEMO_NAME, "pass --model DIR"))
    if not model.is_dir():
        raise CheckpointError(f"InstructME model folder not found: {model}")
    import torch

    torch.set_num_threads(args.threads)
    pipe = InstructMEPipeline.from_pretrained(model)
    check_folder(out, audio_bytes(info.duration, pipe.sample_rate, wav.shape[0]))
    result = pipe(wav, sr, args.instruction, pipe.config.params.replace(**flags),
                  threads=args.threads,
                  progress=args.progress, ranges=None if edit_range.is_whole else edit_range)
    provenance = {
        "command": "edit", "input": str(args.audio), "instructions": result.instructions,
        "ops": [op.canonical_text() for op in result.ops], "model": str(model),
        **result.parameters,
        "chords": [[[s, e, lab] for s, e, lab in round_chords] for round_chords in result.chords],
    }
    save_audio(out, result.audio, result.sample_rate, provenance=provenance)
    print(f"wrote {out} ({len(result.rounds)} round{'s' if len(result.rounds) > 1 else ''}, "
          f"{result.audio.shape[-1] / result.sample_rate:.1f} s at {result.sample_rate} Hz)")
    return 0
