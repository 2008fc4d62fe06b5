"""End-to-end speed of `musigen generate`: real-time factor and peak memory on this machine.

Two views, because a user meets both:

- the CLI as a user runs it (`musigen generate --duration D`, a fresh process each time:
  imports, model loading, plan, audio, decoding, writing the WAV); wall time, CPU time of the
  child and its peak resident memory (`ru_maxrss`);
- the pipeline call alone, in this process after loading once (what a notebook or a server
  pays per request).

RTF = seconds spent / seconds of audio (below 1 is faster than real time). Medians over
`--repeats` runs; the machines are shared, so CPU time is printed next to wall time.

    python benchmarks/generate_e2e.py --duration 10 --repeats 3 [--model DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "an energetic funk groove with drums, bass guitar and electric guitar"


def _cli_run(model: str | None, duration: float, seed: int, threads: int, out: Path) -> dict[str, float]:
    """One `musigen generate` in a child process: wall, child CPU seconds, child peak RSS."""
    cmd = [sys.executable, "-m", "musigen.cli", "generate", "--prompt", PROMPT, "--duration", str(duration),
           "--seed", str(seed), "--out", str(out)]
    if model:
        cmd += ["--model", model]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))  # torch takes its thread count from it
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": after.ru_maxrss / 1024}


def _pipeline_runs(model: str | None, duration: float, repeats: int, threads: int) -> list[dict[str, float]]:
    """The pipeline call alone, after one load and one warm-up call."""
    import torch

    from musigen.musicot.pipeline import DEMO_DIR, MusiCoTPipeline

    torch.set_num_threads(threads)
    pipe = MusiCoTPipeline.from_pretrained(model or DEMO_DIR)
    pipe(PROMPT, duration=min(duration, 2.0), seed=0, progress=False)
    runs = []
    for i in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        pipe(PROMPT, duration=duration, seed=i, progress=False)
        runs.append({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0})
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="MusiCoT pipeline folder (default: the shipped demo)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        cli = [_cli_run(args.model, args.duration, i, args.threads, Path(tmp) / f"g{i}.wav")
               for i in range(args.repeats)]
    inproc = _pipeline_runs(args.model, args.duration, args.repeats, args.threads)
    med = statistics.median
    d = args.duration
    print(f"musigen generate, {d:g} s of audio, {args.threads} thread(s), medians of {args.repeats}:")
    print(f"  CLI end to end : wall {med(r['wall_s'] for r in cli):.2f} s (RTF {med(r['wall_s'] for r in cli) / d:.2f}), "
          f"CPU {med(r['cpu_s'] for r in cli):.2f} s (RTF {med(r['cpu_s'] for r in cli) / d:.2f}), "
          f"peak RSS {max(r['peak_rss_mb'] for r in cli):.0f} MB")
    print(f"  pipeline call  : wall {med(r['wall_s'] for r in inproc):.2f} s (RTF {med(r['wall_s'] for r in inproc) / d:.2f}), "
          f"CPU {med(r['cpu_s'] for r in inproc):.2f} s (RTF {med(r['cpu_s'] for r in inproc) / d:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
