"""Real-time factor of the corpus renderers on one CPU core (target: builtin >= 20x).

Usage: python benchmarks/synth_speed.py [--pieces 16] [--duration 20] [--sample-rate 16000]
       [--repeats 3] [--fluidsynth]

Pins the process to one core and one BLAS thread, renders the same pieces in several
passes and reports the median seconds per piece and the real-time factor (audio seconds
per wall second). The first pass runs with empty note caches ("cold"), later ones warm, as
in a long corpus build. Writing files is excluded: only composition, arrangement and
rendering are timed.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402


def _time_pass(seeds: list[int], duration: float, sr: int, renderer: str) -> list[float]:
    from musigen.data.synth.corpus import piece_genre, render_seed
    from musigen.vocab import GENRES

    out = []
    for s in seeds:
        t = time.perf_counter()
        render_seed(s, duration, piece_genre(s, list(GENRES)), sr, renderer)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pieces", type=int, default=16)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fluidsynth", action="store_true", help="also time the FluidSynth backend")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from musigen.data.synth import instruments

    seeds = list(range(1000, 1000 + args.pieces))
    renderers = ["builtin"] + (["fluidsynth"] if args.fluidsynth else [])
    print(f"{args.pieces} pieces x {args.duration:g} s at {args.sample_rate} Hz, one core")
    print(f"{'renderer':<11} {'pass':<6} {'median s/piece':>15} {'x real time':>12}")
    for renderer in renderers:
        instruments._CACHE.clear()
        instruments._CACHE_BYTES[0] = 0
        for rep in range(args.repeats):
            times = _time_pass(seeds, args.duration, args.sample_rate, renderer)
            med = statistics.median(times)
            label = "cold" if rep == 0 else f"warm{rep}"
            print(f"{renderer:<11} {label:<6} {med:>15.3f} {args.duration / med:>12.1f}")


if __name__ == "__main__":
    main()
