"""End-to-end speed of `musigen generate`: real-time factor and peak memory on this machine.

Three views, because a user meets all of them:

- the CLI as a user runs it (`musigen generate --duration D`, a fresh process each time:
  imports, model loading, plan, audio, decoding, writing the WAV and its sidecar); wall
  time, CPU time of the child and its peak resident memory (`ru_maxrss`);
- the CLI with a `--prompts` file of several jobs (start-up paid once, then per job);
- the pipeline call alone, in this process after loading once (what a notebook or a server
  pays per request).

Plus where a fresh process spends its CPU time (`--breakdown`): a child that does what the
CLI does, step by step (import torch, import the transformers models the codec and the text
encoder are built on, load the pipeline, call it, write the WAV), timed with process CPU
time so that other jobs on a shared machine do not inflate it.

RTF = seconds spent / seconds of audio (below 1 is faster than real time). Medians over
`--repeats` runs; the machines are shared, so CPU time is printed next to wall time.

    python benchmarks/generate_e2e.py --duration 10 --repeats 3 [--model DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "an energetic funk groove with drums, bass guitar and electric guitar"

#: Run in a child: the CLI's steps, each timed in process CPU seconds (printed as JSON).
_BREAKDOWN = r"""
import json, sys, time
marks = {}
last = [time.process_time()]
def mark(name):
    now = time.process_time(); marks[name] = now - last[0]; last[0] = now
import torch
mark("import torch")
from transformers import EncodecModel, AutoModel, AutoTokenizer
mark("import transformers models")
from musigen.audio import save_audio
from musigen.musicot.pipeline import MusiCoTPipeline, demo_dir
mark("import musigen")
torch.set_num_threads(int(sys.argv[4]))
pipe = MusiCoTPipeline.from_pretrained(sys.argv[1] or demo_dir())
mark("load pipeline")
result = pipe(sys.argv[2], duration=float(sys.argv[3]), seed=0, progress=False)
mark("pipeline call")
save_audio(sys.argv[5], result.audio[0][None], result.sample_rate,
           provenance={"plan": result.thoughts[0]})
mark("write wav")
marks["total (incl. interpreter start)"] = time.process_time()
print(json.dumps(marks))
"""


def cli_run(model: str | None, duration: float, seed: int, threads: int, out: Path,
            jobs: int = 1) -> dict[str, float]:
    """One `musigen generate` in a child process: wall, child CPU seconds, child peak RSS.

    With `jobs` > 1 it runs one `--prompts` file of that many jobs of `duration` seconds.
    """
    cmd = [sys.executable, "-m", "musigen.cli", "generate", "--duration", str(duration),
           "--seed", str(seed), "--out", str(out), "--threads", str(threads)]
    if jobs > 1:
        lines = [json.dumps({"prompt": PROMPT, "seed": seed + i}) for i in range(jobs)]
        prompts = out.with_suffix(".jsonl")
        prompts.write_text("\n".join(lines) + "\n")
        cmd += ["--prompts", str(prompts)]
    else:
        cmd += ["--prompt", PROMPT]
    if model:
        cmd += ["--model", model]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own usage, not all children's
    wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024}


def pipeline_runs(model: str | None, duration: float, repeats: int,
                  threads: int) -> list[dict[str, float]]:
    """The pipeline call alone, after one load and one warm-up call."""
    import torch

    from musigen.musicot.pipeline import MusiCoTPipeline, demo_dir

    torch.set_num_threads(threads)
    pipe = MusiCoTPipeline.from_pretrained(model or demo_dir())
    pipe(PROMPT, duration=min(duration, 2.0), seed=0, progress=False)
    runs = []
    for i in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        pipe(PROMPT, duration=duration, seed=i, progress=False)
        runs.append({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0})
    return runs


def breakdown(model: str | None, duration: float, threads: int, repeats: int) -> dict[str, float]:
    """Median CPU seconds per start-up/generation step of a fresh process (see module doc)."""
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, "-c", _BREAKDOWN, model or "", PROMPT, str(duration), str(threads),
                 str(Path(tmp) / "b.wav")],
                check=True, capture_output=True, text=True,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def bench_e2e(args: argparse.Namespace) -> dict[str, Any]:
    d, n = args.duration, args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        cli = [cli_run(args.model, d, i, args.threads, Path(tmp) / f"g{i}.wav") for i in range(n)]
        batch = ([cli_run(args.model, d, 0, args.threads, Path(tmp) / "batch.wav", args.jobs)]
                 if args.jobs > 1 else [])
    result: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k != "func"},
        "cli": cli, "cli_batch": batch,
        "pipeline_call": pipeline_runs(args.model, d, n, args.threads),
    }
    if args.breakdown:
        result["breakdown_cpu_s"] = breakdown(args.model, d, args.threads, n)
    return result


def print_e2e(result: dict[str, Any]) -> None:
    cfg = result["config"]
    d, med = cfg["duration"], statistics.median

    def line(name: str, runs: list[dict[str, float]], seconds: float) -> str:
        wall, cpu = med(r["wall_s"] for r in runs), med(r["cpu_s"] for r in runs)
        text = (f"  {name:26s}: wall {wall:6.2f} s (RTF {wall / seconds:.2f}), "
                f"CPU {cpu:6.2f} s (RTF {cpu / seconds:.2f})")
        if "peak_rss_mb" in runs[0]:
            text += f", peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB"
        return text

    print(f"musigen generate, {d:g} s of audio, {cfg['threads']} thread(s), "
          f"medians of {cfg['repeats']}:")
    print(line("CLI end to end", result["cli"], d))
    if result["cli_batch"]:
        print(line(f"CLI, {cfg['jobs']} jobs in one file", result["cli_batch"], d * cfg["jobs"]))
    print(line("pipeline call (loaded)", result["pipeline_call"], d))
    if "breakdown_cpu_s" in result:
        print("  fresh-process CPU seconds by step:")
        for name, secs in result["breakdown_cpu_s"].items():
            print(f"    {name:32s} {secs:6.2f}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="MusiCoT pipeline folder (default: the shipped demo)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=3,
                        help="jobs in the one-process --prompts run (1 = skip it)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip the per-step CPU breakdown of a fresh process")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--json", type=str, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    result = bench_e2e(args)
    print_e2e(result)
    if args.json:
        from musigen.atomic import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
