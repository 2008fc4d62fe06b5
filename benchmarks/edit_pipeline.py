"""End-to-end speed of an InstructME edit: the real-time factor of `InstructMEPipeline`.

The pipeline is assembled from the demo-size parts with random weights (timing does not
depend on the weights): the demo codec architecture (16 kHz, 64-dim latents at 50 Hz), the
packaged MiniLM instruction encoder, the demo U-Net preset and the chord recogniser.  It
edits a `--seconds` clip (10 s by default) at `--steps` DPM-Solver++ steps (25).

Reported, medians over `--repeats` runs after one warm-up, CPU time (`time.process_time`,
robust when other jobs share the cores) and wall time:

- the whole call with two-scale CFG (3 U-Net passes per step, batched) and, side by side,
  without guidance (1 pass per step), each with its real-time factor (time / audio length;
  <= 1.0 is faster than real time); then the same call started from the DDIM-inverted
  source (`start="inversion"`), at 3 / 1.5 and at the demo model's 1.5 / 1 with DDIM;
- the stages of one round: codec encode, chord recognition, instruction encoding,
  sampling, codec decode, with their share of the total.

    python benchmarks/edit_pipeline.py                  # 10 s, 25 steps, 1 thread
    python benchmarks/edit_pipeline.py --threads 2 --repeats 5 --out edit_rtf.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


def build(args: argparse.Namespace):
    import torch

    from musigen.chords import ChordModelConfig, ChordRecognizer
    from musigen.embedders.text import shared_minilm
    from musigen.instructme.latent_stats import LatentStats
    from musigen.instructme.pipeline import InstructMEPipeline
    from musigen.encode.components import random_codec
    from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig

    codec = random_codec("demo")
    torch.manual_seed(0)
    unet = InstructMEUNet(InstructMEUNetConfig.preset(args.size, latent_channels=codec.latent_dim,
                                                      text_dim=384, chord_dim=25))
    chords = ChordRecognizer(ChordModelConfig())  # the shipped recogniser's size, random
    return InstructMEPipeline(codec, shared_minilm(), unet, LatentStats.identity(codec.latent_dim),
                              chord_model=chords)


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median CPU and wall seconds of `fn` over `repeats` runs (after one warm-up)."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall)


def run(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np
    import torch

    from musigen.chords import chord_matrix, recognize_chords
    from musigen.instructme.diffusion import EditConditions

    torch.set_num_threads(args.threads)
    pipe = build(args)
    sr = pipe.sample_rate
    t = np.arange(int(args.seconds * sr)) / sr
    wav = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
           + 0.02 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    instruction = "replace piano with organ"
    rows: dict[str, tuple[float, float]] = {}

    def edit(gt: float, gs: float, sampler: str = "dpmsolver++",
             start: str = "noise") -> Callable[[], object]:
        params = pipe.config.params.replace(steps=args.steps, guidance_text=gt,
                                            guidance_source=gs, sampler=sampler, seed=0,
                                            start=start)
        return lambda: pipe(wav, sr, instruction, params)

    with torch.inference_mode():
        rows["total (2-scale CFG)"] = measure(edit(3.0, 1.5), args.repeats)
        rows["total (no guidance)"] = measure(edit(1.0, 1.0), args.repeats)
        # DDIM inversion first walks the source up the schedule (2 passes per step at these
        # scales), then samples; the second row is the setting the demo model ships with
        rows["total (inversion, 2-scale CFG)"] = measure(edit(3.0, 1.5, start="inversion"), args.repeats)
        rows["total (inversion, text 1.5 / source 1, DDIM)"] = measure(
            edit(1.5, 1.0, "ddim", "inversion"), args.repeats)
        x = torch.from_numpy(wav)[None, None]
        z = pipe.codec.encode_latents(x)
        chords = recognize_chords(wav, sr, model=pipe.chord_model)
        cm = torch.from_numpy(chord_matrix(chords, pipe.codec.frame_rate, z.shape[-1], pipe.vocab))
        text = pipe.text_encoder.encode([instruction])
        cond = EditConditions(z, text.states, text.mask, cm[None])
        rows["codec encode"] = measure(lambda: pipe.codec.encode_latents(x), args.repeats)
        rows["chord recognition"] = measure(
            lambda: recognize_chords(wav, sr, model=pipe.chord_model), args.repeats)
        rows["instruction encoding"] = measure(
            lambda: pipe.text_encoder.encode([instruction]), args.repeats)
        rows["sampling (U-Net, CFG)"] = measure(
            lambda: pipe.diffusion.sample(pipe.unet, cond, args.steps, 3.0, 1.5, "dpmsolver++", 0),
            args.repeats)
        rows["codec decode"] = measure(lambda: pipe.codec.decode_latents(z, wav.size), args.repeats)
    return {"seconds": args.seconds, "steps": args.steps, "threads": args.threads,
            "size": args.size, "unet_parameters": pipe.unet.num_parameters(),
            "latent_frames": int(z.shape[-1]), "repeats": args.repeats,
            "rows": {k: {"cpu_s": c, "wall_s": w} for k, (c, w) in rows.items()}}


def table(result: dict[str, object]) -> str:
    rows = result["rows"]  # type: ignore[assignment]
    seconds = float(result["seconds"])  # type: ignore[arg-type]
    total = rows["total (2-scale CFG)"]["cpu_s"]
    lines = ["| stage | CPU s | wall s | RTF (CPU) | RTF (wall) | share of CFG total (CPU) |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['cpu_s']:.2f} | {r['wall_s']:.2f} | "
                     f"{r['cpu_s'] / seconds:.3f} | {r['wall_s'] / seconds:.3f} | "
                     f"{r['cpu_s'] / total:.0%} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--size", default="demo", choices=("debug", "demo", "base"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON")
    args = p.parse_args()
    result = run(args)
    print(f"InstructME edit, {args.seconds:g} s of audio, {args.steps} DPM-Solver++ steps, "
          f"{args.size} U-Net ({result['unet_parameters'] / 1e6:.1f} M), demo codec, MiniLM, "
          f"{args.threads} thread(s), medians of {args.repeats}")
    print(table(result))
    if args.out is not None:
        from musigen.atomic import write_json

        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
