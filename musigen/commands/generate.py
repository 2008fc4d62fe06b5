"""`musigen generate --prompt TEXT [--ref style.wav] [--duration S] [--seed N] [--out out.wav]`.

Text-to-music with MusiCoT: plans the piece as thought tokens, then writes its audio.
Writes the WAV plus a JSON sidecar (prompt, seed, model, parameters, plan, analysis).
`--prompts jobs.jsonl` runs one job per line: {"prompt": ..., optional "out", "seed",
"duration", "ref"}.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from musigen.output_paths import add_overwrite_flag


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `generate` command."""
    p = sub.add_parser(
        "generate", help="generate music from a text prompt (MusiCoT)",
        description="Generate music with MusiCoT: a plan of CLAP 'thought' tokens, then audio.",
    )
    p.add_argument("--prompt", "-p", default=None, help='e.g. "calm jazz with piano and bass"')
    p.add_argument("--prompts", type=Path, default=None,
                   help="JSONL file, one job per line: prompt, optional out, seed, duration, ref")
    p.add_argument("--ref", type=Path, default=None, help="style reference audio (any length)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds to generate (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    p.add_argument("--out", "-o", type=Path, default=None,
                   help="output WAV (default: the first free name of generated.wav, "
                        "generated-2.wav, ...; with --prompts, generated_<n>.wav); an existing "
                        "file or sidecar is refused unless --overwrite")
    p.add_argument("--model", type=Path, default=None,
                   help="MusiCoT pipeline folder (default: checkpoints/musicot_demo)")
    p.add_argument("--temperature-thought", type=float, default=None,
                   help="sampling temperature of the plan (thought tokens); default: the model's")
    p.add_argument("--temperature-audio", type=float, default=None,
                   help="sampling temperature of the audio codes; default: the model's")
    p.add_argument("--cfg-thought", type=float, default=None, help="plan guidance scale")
    p.add_argument("--cfg-audio", type=float, default=None, help="audio guidance scale")
    p.add_argument("--cfg-ref", type=float, default=None,
                   help="plan guidance toward the --ref alone, on top of the caption's (0 = off)")
    p.add_argument("--cfg-plan", type=float, default=None,
                   help="audio guidance toward its plan (0 = off; needs an LM trained with "
                        "plan dropout)")
    p.add_argument("--cfg-ref-audio", type=float, default=None,
                   help="audio guidance toward the --ref: with against without it, plan kept (0 = off)")
    p.add_argument("--top-k", type=int, default=None, help="audio top-k (0 = off)")
    p.add_argument("--top-p", type=float, default=None, help="audio top-p (0 = off)")
    p.add_argument("--quantize", default="none", metavar="{none,int8}",
                   help="int8: dynamic int8 decoder projections (torch's quantize_dynamic), a "
                        "faster decode on CPU with logits close to float32; recorded in the "
                        "sidecar (default none)")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for loading, at most the core count (default 1). The "
                        "generation itself always runs at one thread, so the same seed gives the "
                        "same audio at any --threads (musigen.threads; docs/speed.md)")
    add_overwrite_flag(p)
    p.set_defaults(func=_generate)


def _field(job: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """`job[key]` checked against JSON's types (None when absent or null), so "seed": "abc" fails
    in one line."""
    from musigen.errors import DataError

    if job.get(key) is None:
        return None
    value = job[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        names = {str: "a string", int: "an integer", float: "a number"}
        raise DataError(f"{where}: {key!r} must be {names[kind]}, got {value!r}")
    return value


def _jobs(args: argparse.Namespace) -> list[dict[str, Any]]:
    import json

    from musigen.errors import ConfigError, DataError

    if (args.prompt is None) == (args.prompts is None):
        raise ConfigError("give exactly one of --prompt TEXT or --prompts FILE.jsonl")
    if args.prompt is not None:
        return [{"prompt": args.prompt, "out": args.out, "seed": args.seed,
                 "duration": args.duration, "ref": args.ref}]
    if not args.prompts.is_file():
        raise DataError(f"prompts file not found: {args.prompts}")
    jobs = []
    base = args.out.with_suffix("") if args.out else Path("generated")
    for n, line in enumerate(args.prompts.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{args.prompts} line {n + 1} is not JSON: {exc.msg}") from None
        if not isinstance(job, dict) or not isinstance(job.get("prompt"), str):
            raise DataError(f"{args.prompts} line {n + 1} needs a string 'prompt'")
        unknown = sorted(set(job) - {"prompt", "out", "seed", "duration", "ref"})
        if unknown:
            raise DataError(f"{args.prompts} line {n + 1} has unknown keys {unknown}")
        where = f"{args.prompts} line {n + 1}"
        ref = _field(job, "ref", str, where)
        out = _field(job, "out", str, where)
        seed = _field(job, "seed", int, where)
        duration = _field(job, "duration", float, where)
        jobs.append({"prompt": job["prompt"],
                     "out": Path(out) if out is not None else None,
                     "default_out": Path(f"{base}_{len(jobs)}.wav"),
                     "seed": args.seed if seed is None else seed,
                     "duration": args.duration if duration is None else duration,
                     # "ref": null turns off a --ref given on the command line for this job
                     "ref": Path(ref) if ref is not None else (None if "ref" in job else args.ref)})
    if not jobs:
        raise DataError(f"{args.prompts} holds no jobs")
    return jobs


def _plan_outputs(jobs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Fix every job's output before any work: explicit names checked, missing ones made free.

    An existing WAV or sidecar needs --overwrite; a reference or the prompts file is never
    written over; two jobs never share a file.
    """
    from musigen.output_paths import check_distinct, check_output, free_name

    inputs = [args.prompts] + [job["ref"] for job in jobs]
    taken: list[Path] = []
    for job in jobs:
        if job["out"] is None:
            job["out"] = free_name(job.get("default_out", Path("generated.wav")), sidecar=True,
                                   taken=taken)
        check_output(job["out"], inputs=inputs, overwrite=args.overwrite, sidecar=True)
        taken.append(job["out"])
    check_distinct(taken, sidecar=True)


def _generate(args: argparse.Namespace) -> int:
    import dataclasses

    from musigen.audio import audio_info, load_audio, require_duration, save_audio
    from musigen.errors import CheckpointError, ConfigError
    from musigen.limits import MAX_INPUT_AUDIO_S, check_input_duration, check_threads
    from musigen.output_paths import audio_bytes, check_folder

    # Cheap checks first; the jobs file, the outputs and the references fail before torch
    # is imported.
    check_threads(args.threads)
    from musigen.musicot.quantize import check_quantize

    quantize = check_quantize(args.quantize)  # before torch's model code is imported
    jobs = _jobs(args)
    _plan_outputs(jobs, args)
    for job in jobs:
        if job["ref"] is not None:
            # a missing, corrupt, too short or too long reference fails here, in one line
            check_input_duration(audio_info(job["ref"]), MAX_INPUT_AUDIO_S, "the reference")
            require_duration(*load_audio(job["ref"]), "the reference")
    from musigen.musicot.pipeline import DEMO_NAME, MAX_DURATION_S, MusiCoTPipeline

    for job in jobs:  # still before the model loads
        if not job["duration"] > 0 or job["duration"] > MAX_DURATION_S:
            raise ConfigError(f"duration must be in (0, {MAX_DURATION_S:g}] seconds, "
                              f"got {job['duration']:g}")
    from musigen.checkpoints import default_checkpoint

    model = (args.model if args.model is not None
             else default_checkpoint(DEMO_NAME, "pass --model DIR"))
    if not model.is_dir():
        raise CheckpointError(f"MusiCoT model folder not found: {model}")
    import torch

    torch.set_num_threads(args.threads)
    pipe = MusiCoTPipeline.from_pretrained(model, quantize=quantize)
    overrides = {"thought_temperature": args.temperature_thought,
                 "audio_temperature": args.temperature_audio, "thought_cfg": args.cfg_thought,
                 "audio_cfg": args.cfg_audio, "top_k": args.top_k, "top_p": args.top_p,
                 "ref_cfg": args.cfg_ref, "plan_cfg": args.cfg_plan,
                 "ref_audio_cfg": args.cfg_ref_audio}
    params = dataclasses.replace(pipe.config.sampling,
                                 **{k: v for k, v in overrides.items() if v is not None})
    # free space for every output (mono float32 WAV), before any sampling
    total = sum(audio_bytes(job["duration"], pipe.sample_rate) for job in jobs)
    for folder in {job["out"].absolute().parent: job["out"] for job in jobs}.values():
        check_folder(folder, total)
    for job in jobs:
        result = pipe(job["prompt"], ref=job["ref"], duration=job["duration"], seed=job["seed"],
                      params=params, progress=args.progress)
        provenance = {
            "command": "generate", "prompt": job["prompt"], "seed": job["seed"],
            "model": str(model), "ref": None if job["ref"] is None else str(job["ref"]),
            "parameters": result.parameters, "plan": result.thoughts[0],
            "ref_thoughts": result.ref_thoughts,
            "analysis": [seg.to_dict() for seg in result.analysis[0]],
        }
        note = pipe.config.plan_note  # a plan-free model (converted MusicGen) says so, once
        if note is not None:
            provenance["plan_note"] = note
        save_audio(job["out"], result.audio[0][None], result.sample_rate, provenance=provenance)
        plan = note if note is not None else f"{len(result.thoughts[0])} plan segments"
        print(f"wrote {job['out']} ({job['duration']:g} s at {result.sample_rate} Hz, {plan})")
        for seg in result.analysis[0]:
            print("  " + seg.line())
    return 0
